package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// BackupRequesterServiceAccount is the identity of the backup Jobs in the mover
// namespace: it may only create and read WorkspaceBackups there (the chart's Role).
const BackupRequesterServiceAccount = "backup-requester"

// maxCronJobName leaves room in a CronJob's name for the suffix of its Jobs' names.
const maxCronJobName = 52

// moverCronJobName is the workspace's backup CronJob in the mover namespace, its name cut
// and made unique with a hash when the workspace's name is too long for a CronJob's.
func moverCronJobName(ws *tenancyv1alpha1.Workspace) string {
	name := "backup-" + ws.Name
	if len(name) <= maxCronJobName {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(ws.Name))
	suffix := "-" + strconv.FormatUint(uint64(h.Sum32()), 36)
	return name[:maxCronJobName-len(suffix)] + suffix
}

// desiredMoverCronJob asks the data mover for a backup of the workspace on its schedule.
// Its Job only creates a WorkspaceBackup named after itself and waits for it: the
// operator drives the snapshots and movers, so nothing here needs AWS or the volumes, and
// `kubectl create job --from=cronjob/<name>` is an on-demand backup.
func desiredMoverCronJob(ws *tenancyv1alpha1.Workspace, schedule string, cfg BackupConfig) *batchv1.CronJob {
	labels := managedLabels(ws)
	fromField := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	return &batchv1.CronJob{
		ObjectMeta: objectMeta(ws, cfg.MoverNamespace, moverCronJobName(ws)),
		Spec: batchv1.CronJobSpec{
			Schedule:                   schedule,
			TimeZone:                   ptr.To("Etc/UTC"),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    ptr.To[int64](3600),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: batchv1.JobSpec{
					// A pod lost with its node is retried, and waits for the same run, named
					// after the Job; a pod that reports the run failed is not: the run is over.
					BackoffLimit:          ptr.To[int32](2),
					ActiveDeadlineSeconds: ptr.To[int64](12 * 3600),
					PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
						Action: batchv1.PodFailurePolicyActionFailJob,
						OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
							ContainerName: ptr.To(backupContainerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{1},
						},
					}}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{
							ServiceAccountName: BackupRequesterServiceAccount,
							RestartPolicy:      corev1.RestartPolicyNever,
							SecurityContext: &corev1.PodSecurityContext{
								RunAsNonRoot:   ptr.To(true),
								RunAsUser:      ptr.To[int64](nonRootUID),
								RunAsGroup:     ptr.To[int64](nonRootUID),
								SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
							Containers: []corev1.Container{{
								Name:    backupContainerName,
								Image:   cfg.Image,
								Command: cfg.Command,
								Args:    []string{"request-backup", "--workspace", ws.Name},
								Env: []corev1.EnvVar{
									{Name: "POD_NAMESPACE", ValueFrom: fromField("metadata.namespace")},
									{Name: "JOB_NAME", ValueFrom: fromField("metadata.labels['" + batchv1.JobNameLabel + "']")},
									// The run belongs to the Job, and goes with it from the history.
									{Name: "JOB_UID", ValueFrom: fromField("metadata.labels['" + batchv1.ControllerUidLabel + "']")},
								},
								SecurityContext:          restrictedContainer(),
								TerminationMessagePolicy: corev1.TerminationMessageReadFile,
							}},
						},
					},
				},
			},
		},
	}
}

// reconcileMoverBackups schedules the workspace's backups in the mover namespace, removes
// the CronJob and identity the old path kept in the tenant's namespace, and reports how the
// last backups went. The backups themselves stay where they were: history is kept.
func (r *WorkspaceReconciler) reconcileMoverBackups(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace, schedule string) error {
	cronJob := desiredMoverCronJob(ws, schedule, r.Config.Backup)
	err := apply(ctx, r, ws, cronJob, func(live *batchv1.CronJob) {
		mergeLabels(live, cronJob.Labels)
		if !equality.Semantic.DeepDerivative(cronJob.Spec, live.Spec) {
			live.Spec = cronJob.Spec
		}
	})
	if err != nil {
		return failed("BackupScheduleFailed", fmt.Errorf("apply CronJob %s: %w", objectRef(cronJob), err))
	}
	if err := r.startRequestedBackup(ctx, ws, cronJob); err != nil {
		return failed("BackupRequestFailed", err)
	}
	if err := r.removeTenantBackupObjects(ctx, ws, namespace); err != nil {
		return failed("BackupMigrationFailed", err)
	}
	if err := r.observeBackupJobs(ctx, ws, r.Config.Backup.MoverNamespace); err != nil {
		return failed("BackupJobsUnknown", err)
	}
	var runs tenancyv1alpha1.WorkspaceBackupList
	if err := r.List(ctx, &runs, client.InNamespace(r.Config.Backup.MoverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: ws.Name}); err != nil {
		return failed("BackupJobsUnknown", fmt.Errorf("list WorkspaceBackups: %w", err))
	}
	ws.Status.Backup.Volumes = volumeBackups(ws.Status.Backup.Volumes, runs.Items)
	s, reason, message := backupHealth(ws.Status.Backup, ws.CreationTimestamp.Time, r.Clock.Now(), r.Config.Backup.StaleAfter)
	setCondition(ws, tenancyv1alpha1.ConditionBackupsHealthy, s, reason, message)
	return nil
}

// startRequestedBackup starts a backup Job from the CronJob's template for a new
// spec.backup.requestedAt, as `kubectl create job --from=cronjob/...` does. The Job's name
// comes from the request, so a request whose status write was lost finds its Job rather
// than starting a second one.
func (r *WorkspaceReconciler) startRequestedBackup(ctx context.Context, ws *tenancyv1alpha1.Workspace, cronJob *batchv1.CronJob) error {
	requested := ws.Spec.Backup.RequestedAt
	if requested == "" || requested == ws.Status.Backup.LastHandledRequest {
		return nil
	}
	job := requestedBackupJob(cronJob, requested)
	if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create backup Job %s for spec.backup.requestedAt %q: %w", objectRef(job), requested, err)
	}
	ws.Status.Backup.LastHandledRequest = requested
	r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "BackupRequested", "Backup",
		"started backup Job %s for spec.backup.requestedAt %q", objectRef(job), requested)
	return nil
}

// requestedBackupJob is the Job a backup request starts: the CronJob's template, named
// after the CronJob (cut so that the name fits a label value) and a hash of both.
func requestedBackupJob(cronJob *batchv1.CronJob, requested string) *batchv1.Job {
	h := fnv.New32a()
	_, _ = h.Write([]byte(cronJob.Name + "/" + requested))
	suffix := "-req-" + strconv.FormatUint(uint64(h.Sum32()), 36)
	base := cronJob.Name[:min(len(cronJob.Name), 63-len(suffix))]
	template := cronJob.Spec.JobTemplate.DeepCopy()
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        base + suffix,
			Namespace:   cronJob.Namespace,
			Labels:      template.Labels,
			Annotations: map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
		},
		Spec: template.Spec,
	}
}

// volumeBackups are the volumes of the newest finished run, each with its last successful
// backup: from that run, or kept from before when that run failed for it. A claim the run
// no longer had is dropped.
func volumeBackups(previous []tenancyv1alpha1.VolumeLastBackup, runs []tenancyv1alpha1.WorkspaceBackup) []tenancyv1alpha1.VolumeLastBackup {
	var newest *tenancyv1alpha1.WorkspaceBackup
	for i := range runs {
		run := &runs[i]
		if run.Status.CompletionTime == nil || len(run.Status.Volumes) == 0 {
			continue
		}
		if newest == nil || run.Status.CompletionTime.After(newest.Status.CompletionTime.Time) {
			newest = run
		}
	}
	if newest == nil {
		return previous
	}
	volumes := make([]tenancyv1alpha1.VolumeLastBackup, 0, len(newest.Status.Volumes))
	for _, v := range newest.Status.Volumes {
		entry := tenancyv1alpha1.VolumeLastBackup{Claim: v.Claim}
		for _, p := range previous {
			if p.Claim == v.Claim {
				entry = p
			}
		}
		switch {
		case v.Phase == tenancyv1alpha1.VolumeBackupSucceeded && v.StartTime != nil && v.CompletionTime != nil:
			entry = tenancyv1alpha1.VolumeLastBackup{
				Claim: v.Claim, BackupID: v.BackupID, Time: v.CompletionTime, Bytes: v.Bytes,
				Duration: &metav1.Duration{Duration: v.CompletionTime.Sub(v.StartTime.Time)},
			}
		case v.Phase == tenancyv1alpha1.VolumeBackupFailed:
			entry.LastFailure = v.Message
		}
		volumes = append(volumes, entry)
	}
	return volumes
}

// removeTenantBackupObjects deletes the backup CronJob and ServiceAccount the old path
// kept in the tenant's namespace, each only when a live read shows it is this workspace's.
// Only the cache is read when they are gone, so a migrated workspace costs no live read.
func (r *WorkspaceReconciler) removeTenantBackupObjects(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	for _, obj := range []client.Object{
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: backupCronJobName}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: backupServiceAccountName}},
	} {
		key := client.ObjectKey{Namespace: namespace, Name: obj.GetName()}
		if err := r.Get(ctx, key, obj); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("read %T %s: %w", obj, key, err)
		}
		if err := r.APIReader.Get(ctx, key, obj); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("read %T %s: %w", obj, key, err)
		}
		if !belongsTo(obj, ws.Name) {
			continue
		}
		uid := obj.GetUID()
		if err := r.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete %T %s: %w", obj, key, err)
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "BackupsMoved", "Backup",
			"deleted %s %s: backups now run from the data mover in namespace %s", kindOf(r, obj), key, r.Config.Backup.MoverNamespace)
	}
	return nil
}

// deleteSnapshotClass deletes the workspace's VolumeSnapshotClass, which the data mover
// created, once no snapshot content refers to it any more: the CSI driver's sidecar may
// still need it to delete the snapshots the namespace's deletion released, and no snapshot
// may be left behind. Without the data mover there is none to delete.
func (r *WorkspaceReconciler) deleteSnapshotClass(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
	if r.Config.Backup.MoverNamespace == "" {
		return true, nil
	}
	name := storageClassName(namespaceName(ws, r.Config.NamespacePrefix))
	class := &snapshotv1.VolumeSnapshotClass{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, class)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read VolumeSnapshotClass %s: %w", name, err)
	case !belongsTo(class, ws.Name):
		return true, nil
	}
	var contents snapshotv1.VolumeSnapshotContentList
	if err := r.APIReader.List(ctx, &contents); err != nil {
		return false, fmt.Errorf("list VolumeSnapshotContents: %w", err)
	}
	for _, c := range contents.Items {
		if c.Spec.VolumeSnapshotClassName != nil && *c.Spec.VolumeSnapshotClassName == name {
			setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "Deleting",
				fmt.Sprintf("waiting for the snapshot content %s of the workspace to be deleted before its VolumeSnapshotClass", c.Name))
			return false, nil
		}
	}
	if err := r.Delete(ctx, class, client.Preconditions{UID: &class.UID}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete VolumeSnapshotClass %s: %w", name, err)
	}
	return true, nil
}
