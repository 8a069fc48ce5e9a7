package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// awaitingPurge reports whether a purge record still guards recoverable data.
func awaitingPurge(purge *tenancyv1alpha1.WorkspacePurge) bool {
	switch purge.Status.State {
	case tenancyv1alpha1.PurgePurged, tenancyv1alpha1.PurgeRestored:
		return false
	}
	return true
}

// checkPurgeRecords stops a new Workspace from silently inheriting the data of a deleted
// one of the same name: it must name the purge record in spec.restoreFrom, and only before
// the record's purgeAfter. It returns the record being undeleted, if any.
func (r *WorkspaceReconciler) checkPurgeRecords(ctx context.Context, ws *tenancyv1alpha1.Workspace) (*tenancyv1alpha1.WorkspacePurge, error) {
	var purges tenancyv1alpha1.WorkspacePurgeList
	if err := r.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: ws.Name}); err != nil {
		return nil, failed("PurgeRecordsUnknown", fmt.Errorf("list WorkspacePurges: %w", err))
	}
	var source, pending *tenancyv1alpha1.WorkspacePurge
	for i := range purges.Items {
		purge := &purges.Items[i]
		if purge.Name == ws.Spec.RestoreFrom {
			source = purge
		} else if purge.Spec.WorkspaceUID != string(ws.UID) && awaitingPurge(purge) {
			pending = purge
		}
	}
	switch {
	case ws.Spec.RestoreFrom == "" && pending != nil:
		return nil, stalled("NameInPurgeWindow",
			"a workspace named %s was deleted at %s and its data awaits purge until %s; set spec.restoreFrom: %s to undelete it, or use another name",
			ws.Name, pending.Spec.DeletedAt.UTC().Format(time.RFC3339), pending.Spec.PurgeAfter.UTC().Format(time.RFC3339), pending.Name)
	case ws.Spec.RestoreFrom == "":
		return nil, nil
	case source == nil:
		return nil, stalled("RestoreSourceNotFound", "spec.restoreFrom names WorkspacePurge %s, which does not exist (kubectl get workspacepurges)", ws.Spec.RestoreFrom)
	case source.Spec.Workspace != ws.Name:
		return nil, stalled("RestoreSourceMismatch", "WorkspacePurge %s holds the data of workspace %s; a Workspace can only undelete its own name", source.Name, source.Spec.Workspace)
	case source.Status.State == tenancyv1alpha1.PurgeRestored:
		return source, nil
	case !awaitingPurge(source) || !r.Clock.Now().Before(source.Spec.PurgeAfter.Time):
		return nil, stalled("PurgeWindowPassed",
			"WorkspacePurge %s passed its purgeAfter (%s): the data of workspace %s is irrecoverable; remove spec.restoreFrom to start afresh",
			source.Name, source.Spec.PurgeAfter.UTC().Format(time.RFC3339), ws.Name)
	}
	return source, nil
}

// reconcileUndelete finishes an undelete once the keys are enabled again and the buckets
// reopened (the storage concerns do that: to them a key pending deletion and a closed
// bucket are drift): the record is marked Restored, the volumes are recreated and a Job
// restores them from the last backup.
func (r *WorkspaceReconciler) reconcileUndelete(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string, source *tenancyv1alpha1.WorkspacePurge) error {
	if !meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionEncryptionReady) ||
		!meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionBucketReady) {
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionFalse, "ReenablingKeys",
			fmt.Sprintf("cancelling the deletion of the keys and reopening the buckets of WorkspacePurge %s", source.Name))
		return nil
	}
	if source.Status.State != tenancyv1alpha1.PurgeRestored {
		base := source.DeepCopy()
		source.Status.State = tenancyv1alpha1.PurgeRestored
		source.Status.RestoredBy = fmt.Sprintf("%s (uid %s)", ws.Name, ws.UID)
		source.Status.TimeRemaining = ""
		if err := r.Status().Patch(ctx, source, client.MergeFrom(base)); err != nil {
			return fmt.Errorf("mark WorkspacePurge %s restored: %w", source.Name, err)
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "Undeleted", "Restore",
			"keys re-enabled and buckets reopened from WorkspacePurge %s; restoring the volumes from backup %s", source.Name, source.Spec.LastBackupID)
	}
	if source.Spec.LastBackupID == "" || len(source.Spec.Volumes) == 0 {
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionTrue, "NothingToRestore",
			fmt.Sprintf("keys and buckets of WorkspacePurge %s are back; it recorded no volumes with a backup to restore", source.Name))
		return nil
	}

	if r.Config.Backup.MoverNamespace != "" {
		// The data mover creates each claim itself, bound only once its data is in.
		volumes, skipped := undeleteVolumes(source)
		if len(skipped) > 0 && !meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionRestored) {
			r.Recorder.Eventf(ws, nil, corev1.EventTypeWarning, "VolumesNotRestored", "Restore",
				"volumes never backed up cannot be undeleted: %s", strings.Join(skipped, ", "))
		}
		if len(volumes) == 0 {
			setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionTrue, "NothingToRestore",
				fmt.Sprintf("keys and buckets of WorkspacePurge %s are back; none of its volumes was ever backed up", source.Name))
			return nil
		}
		return r.runMoverRestore(ctx, ws, "undelete/"+source.Name, "WorkspacePurge "+source.Name, volumes)
	}
	class := storageClassName(namespace)
	for _, v := range source.Spec.Volumes {
		claim := desiredRestoredClaim(ws, namespace, class, v)
		if err := apply(ctx, r, ws, claim, func(live *corev1.PersistentVolumeClaim) { mergeLabels(live, claim.Labels) }); err != nil {
			return fmt.Errorf("recreate volume %s: %w", v.Name, err)
		}
	}
	volumes := make([]string, 0, len(source.Spec.Volumes))
	for _, v := range source.Spec.Volumes {
		volumes = append(volumes, v.Name)
	}
	return r.runRestore(ctx, ws, namespace, source.Spec.LastBackupID, volumes, "WorkspacePurge "+source.Name)
}

// reconcileRestore runs the restore spec.restore asks for, once per distinct request.
func (r *WorkspaceReconciler) reconcileRestore(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	restore := ws.Spec.Restore
	if r.Config.Backup.MoverNamespace == "" {
		if len(restore.Targets) > 0 {
			return stalled("RestoreTargetsNeedMover", "spec.restore.targets needs the operator's data mover (--mover-namespace): without it, volumes are restored in place")
		}
		return r.runRestore(ctx, ws, namespace, restore.BackupID, restore.Volumes, "spec.restore")
	}
	volumes, err := requestedVolumes(restore, r.liveClaimSize(ctx, namespace))
	if err != nil {
		return err
	}
	request := fmt.Sprintf("spec.restore/%s/%s", restore.BackupID, strings.Join(restore.Volumes, ","))
	for _, v := range volumes {
		request += fmt.Sprintf("/%s=%s", v.Source, v.Claim)
	}
	return r.runMoverRestore(ctx, ws, request, "spec.restore", volumes)
}

// runRestore runs the agent's restore of volumes from a backup in a one-shot Job, named
// after the request so that a new request runs again and a repeated one does not, and
// reports its progress in the Restored condition.
func (r *WorkspaceReconciler) runRestore(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace, backupID string, volumes []string, origin string) error {
	job := desiredRestoreJob(ws, namespace, backupID, volumes, r.backupLocations(ws), r.Config.Backup)
	if err := apply(ctx, r, ws, job, func(live *batchv1.Job) { mergeLabels(live, job.Labels) }); err != nil {
		return fmt.Errorf("apply restore Job: %w", err)
	}
	live := &batchv1.Job{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(job), live); err != nil {
		return fmt.Errorf("read restore Job: %w", err)
	}
	switch outcome := finishedJob(live); {
	case outcome == nil:
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionFalse, "Restoring",
			fmt.Sprintf("Job %s restores %d volumes from backup %s (%s)", job.Name, len(volumes), backupID, origin))
	case outcome.succeeded:
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionTrue, "Restored",
			fmt.Sprintf("%d volumes restored from backup %s (%s)", len(volumes), backupID, origin))
	default:
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionFalse, "RestoreFailed",
			fmt.Sprintf("Job %s failed: %s; kubectl logs -n %s job/%s, then delete the Job to retry", job.Name, outcome.message, namespace, job.Name))
	}
	return nil
}

func desiredRestoredClaim(ws *tenancyv1alpha1.Workspace, namespace, class string, v tenancyv1alpha1.PurgeVolume) *corev1.PersistentVolumeClaim {
	size, err := resource.ParseQuantity(v.Storage)
	if err != nil || size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: objectMeta(ws, namespace, v.Name),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// restoreJobName names a restore Job after its request.
func restoreJobName(backupID string, volumes []string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(backupID + "/" + strings.Join(volumes, ",")))
	return fmt.Sprintf("workspace-restore-%08x", h.Sum32())
}

// desiredRestoreJob runs the agent's restore with every volume mounted where the backup
// read it from.
func desiredRestoreJob(ws *tenancyv1alpha1.Workspace, namespace, backupID string, claims []string, locations []backupLocation, cfg BackupConfig) *batchv1.Job {
	args := []string{"restore", "--workspace", ws.Name, "--backup", backupID, "--target", backupDataDir}
	for _, l := range locations {
		args = append(args, "--location", fmt.Sprintf("%s=%s,%s", l.Region, l.Bucket, l.KeyAlias))
	}
	if cfg.S3PathStyle {
		args = append(args, "--aws-s3-path-style")
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, claim := range claims {
		volumes = append(volumes, corev1.Volume{Name: "pvc-" + claim, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "pvc-" + claim, MountPath: backupDataDir + "/" + claim})
		// Only the volumes: a pre-backup hook's dump is in the archive too, but has
		// nowhere to go.
		args = append(args, "--source", claim)
	}
	pod := desiredBackupCronJob(ws, namespace, "@daily", 1, nil, nil, "", cfg).Spec.JobTemplate.Spec.Template
	container := &pod.Spec.Containers[0]
	container.Args, container.VolumeMounts = args, mounts
	pod.Spec.Volumes = volumes
	pod.Spec.InitContainers = nil
	return &batchv1.Job{
		ObjectMeta: objectMeta(ws, namespace, restoreJobName(backupID, claims)),
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](2),
			ActiveDeadlineSeconds: ptr.To[int64](6 * 3600),
			Template:              pod,
		},
	}
}

// backupLocations are the workspace's backup locations as its status records them.
func (r *WorkspaceReconciler) backupLocations(ws *tenancyv1alpha1.Workspace) []backupLocation {
	var out []backupLocation
	if ws.Status.Backup == nil {
		return nil
	}
	for _, l := range ws.Status.Backup.Locations {
		if key := findKey(ws, l.Region); key != nil {
			out = append(out, backupLocation{Region: l.Region, Bucket: l.Bucket, KeyAlias: key.Alias})
		}
	}
	return out
}
