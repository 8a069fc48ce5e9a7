package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// Names of the backup objects in a workspace namespace.
const (
	backupCronJobName        = "workspace-backup"
	backupServiceAccountName = "workspace-backup"
	backupContainerName      = "backup"
	backupHookVolume         = "hook"
	backupDataDir            = "/data"
	nonRootUID               = 65532
)

// backupLocation is where one copy of every backup goes: a bucket and the key of its region.
type backupLocation struct {
	Region, Bucket, KeyAlias string
}

// defaultBackupSchedule is daily at the configured hour, at a minute spread by a hash of
// the workspace's name so that a thousand workspaces do not all start together.
func defaultBackupSchedule(name string, hour int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("%d %d * * *", h.Sum32()%60, hour)
}

// backupPolicy resolves a workspace's schedule and retention, refusing a retention above
// the policy maximum and a schedule cron cannot parse.
func backupPolicy(ws *tenancyv1alpha1.Workspace, cfg BackupConfig) (string, int32, error) {
	retention := cfg.MaxRetentionDays
	if days := ws.Spec.Backup.RetentionDays; days != 0 {
		if days > cfg.MaxRetentionDays {
			return "", 0, stalled("RetentionAboveLimit",
				"spec.backup.retentionDays is %d but the policy keeps backups at most %d days; lower it", days, cfg.MaxRetentionDays)
		}
		retention = days
	}
	schedule := ws.Spec.Backup.Schedule
	if schedule == "" {
		schedule = defaultBackupSchedule(ws.Name, cfg.Hour)
	}
	if _, err := cron.ParseStandard(schedule); err != nil {
		return "", 0, stalled("InvalidSchedule", "spec.backup.schedule %q: %v", schedule, err)
	}
	return schedule, retention, nil
}

// desiredBackupCronJob runs the backup agent daily with every volume of the workspace
// mounted read-only. Forbid keeps a slow backup from overlapping the next one.
func desiredBackupCronJob(ws *tenancyv1alpha1.Workspace, namespace, schedule string, retention int32,
	claims []string, locations []backupLocation, filesBucket string, cfg BackupConfig) *batchv1.CronJob {
	args := []string{"backup", "--workspace", ws.Name, "--retention-days", strconv.Itoa(int(retention)), "--summary-file", "/dev/termination-log"}
	for _, l := range locations {
		args = append(args, "--location", fmt.Sprintf("%s=%s,%s", l.Region, l.Bucket, l.KeyAlias))
	}
	if cfg.S3PathStyle {
		args = append(args, "--aws-s3-path-style")
	}
	if ws.Spec.Backup.IncludeFiles && filesBucket != "" {
		args = append(args, "--include-bucket", filesBucket)
	}

	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, claim := range claims {
		volumes = append(volumes, corev1.Volume{Name: "pvc-" + claim, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "pvc-" + claim, MountPath: backupDataDir + "/" + claim, ReadOnly: true})
		args = append(args, "--source", backupDataDir+"/"+claim)
	}

	var initContainers []corev1.Container
	if hook := ws.Spec.Backup.PreBackupHook; hook != nil {
		volumes = append(volumes, corev1.Volume{Name: backupHookVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		hookMount := corev1.VolumeMount{Name: backupHookVolume, MountPath: backupDataDir + "/" + backupHookVolume}
		initContainers = append(initContainers, corev1.Container{
			Name: "pre-backup-hook", Image: hook.Image, Command: hook.Command,
			VolumeMounts:    append(slices.Clone(mounts), hookMount),
			SecurityContext: restrictedContainer(),
		})
		hookMount.ReadOnly = true
		mounts = append(mounts, hookMount)
		args = append(args, "--source", backupDataDir+"/"+backupHookVolume)
	}

	labels := managedLabels(ws)
	return &batchv1.CronJob{
		ObjectMeta: objectMeta(ws, namespace, backupCronJobName),
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
					BackoffLimit:          ptr.To[int32](2),
					ActiveDeadlineSeconds: ptr.To[int64](6 * 3600),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{
							ServiceAccountName: backupServiceAccountName,
							RestartPolicy:      corev1.RestartPolicyNever,
							SecurityContext: &corev1.PodSecurityContext{
								RunAsNonRoot:   ptr.To(true),
								RunAsUser:      ptr.To[int64](nonRootUID),
								RunAsGroup:     ptr.To[int64](nonRootUID),
								SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
							InitContainers: initContainers,
							Containers: []corev1.Container{{
								Name:                     backupContainerName,
								Image:                    cfg.Image,
								Command:                  cfg.Command,
								Args:                     args,
								Env:                      slices.Clone(cfg.Env),
								VolumeMounts:             mounts,
								SecurityContext:          restrictedContainer(),
								TerminationMessagePolicy: corev1.TerminationMessageReadFile,
							}},
							Volumes: volumes,
						},
					},
				},
			},
		},
	}
}

// syncBackupCronJob updates live to run what desired says.
func syncBackupCronJob(live, desired *batchv1.CronJob) {
	mergeLabels(live, desired.Labels)
	// The API server fills in many defaults of a pod template; comparing only the
	// fields the operator sets keeps a steady-state reconcile from writing. That
	// comparison takes a shorter list for a prefix of a longer one, though, so the agent's
	// environment, which the API server leaves as it is, is compared whole: an endpoint
	// the operator no longer has must not stay behind.
	if !equality.Semantic.DeepDerivative(desired.Spec, live.Spec) ||
		!equality.Semantic.DeepEqual(agentEnv(desired), agentEnv(live)) {
		live.Spec = desired.Spec
	}
}

// agentEnv is the environment of the backup agent's container.
func agentEnv(cronJob *batchv1.CronJob) []corev1.EnvVar {
	for _, c := range cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers {
		if c.Name == backupContainerName {
			return c.Env
		}
	}
	return nil
}

func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// backupSummary is what the agent writes to its termination message.
type backupSummary struct {
	BackupID  string `json:"backupID"`
	Locations []struct {
		Region  string `json:"region"`
		Bucket  string `json:"bucket"`
		Backups int32  `json:"backups"`
		Newest  string `json:"newest"`
		Oldest  string `json:"oldest"`
	} `json:"locations"`
}

// backupOutcome is a finished backup Job as the operator reads it.
type backupOutcome struct {
	job       string
	finished  time.Time
	succeeded bool
	message   string
	summary   *backupSummary
}

// backupHealth computes BackupsHealthy from what the last backups did. A failed or missed
// daily backup is False with the reason; a new workspace is True until its first backup
// is due, since nothing has gone wrong yet.
func backupHealth(status *tenancyv1alpha1.BackupStatus, created, now time.Time, staleAfter time.Duration) (metav1.ConditionStatus, string, string) {
	last := status.LastSuccessfulBackup
	switch {
	case status.LastFailure != "":
		return metav1.ConditionFalse, "BackupFailed", fmt.Sprintf("the last backup failed: %s (kubectl logs -n <namespace> job/%s)", status.LastFailure, status.LastJob)
	case last == nil && now.Sub(created) <= staleAfter:
		return metav1.ConditionTrue, "FirstBackupScheduled", fmt.Sprintf("no backup yet; the first runs on schedule %q (UTC)", status.Schedule)
	case last == nil:
		return metav1.ConditionFalse, "BackupMissed", fmt.Sprintf("no backup has completed since the workspace was created %s ago; check the %s CronJob", now.Sub(created).Round(time.Minute), backupCronJobName)
	case now.Sub(last.Time) > staleAfter && now.Sub(created) > staleAfter:
		// An undeleted workspace inherits its last backup; its next is due a day after it
		// came back, not a day after that backup.
		return metav1.ConditionFalse, "BackupMissed", fmt.Sprintf("the last successful backup (%s) is %s old; check the %s CronJob", status.LastBackupID, now.Sub(last.Time).Round(time.Minute), backupCronJobName)
	}
	return metav1.ConditionTrue, "BackupsCurrent", fmt.Sprintf("backup %s completed %s in %d locations, kept %d days",
		status.LastBackupID, last.UTC().Format(time.RFC3339), len(status.Locations), status.RetentionDays)
}

// nextBackupDeadline is when BackupsHealthy turns False if no backup succeeds before then.
func nextBackupDeadline(ws *tenancyv1alpha1.Workspace, staleAfter time.Duration) time.Time {
	reference := ws.CreationTimestamp.Time
	if b := ws.Status.Backup; b != nil && b.LastSuccessfulBackup != nil && b.LastSuccessfulBackup.After(reference) {
		reference = b.LastSuccessfulBackup.Time
	}
	return reference.Add(staleAfter)
}

// reconcileBackups schedules the backups, keeps their buckets in every region expiring
// what the policy no longer allows, and reports how the last backups went.
func (r *WorkspaceReconciler) reconcileBackups(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	if r.Buckets == nil {
		return errAWSNotConfigured
	}
	schedule, retention, err := backupPolicy(ws, r.Config.Backup)
	if err != nil {
		return err
	}
	status := ws.Status.Backup
	if status == nil {
		status = &tenancyv1alpha1.BackupStatus{}
		ws.Status.Backup = status
	}
	status.Schedule, status.RetentionDays = schedule, retention

	locations, err := r.ensureBackupLocations(ctx, ws, retention)
	if err != nil {
		return err
	}
	if r.Config.Backup.MoverNamespace != "" {
		return r.reconcileMoverBackups(ctx, ws, namespace, schedule)
	}
	claims, err := r.backupClaims(ctx, namespace)
	if err != nil {
		return failed("BackupVolumesUnknown", err)
	}

	roleARN, err := renderRoleARN(r.Config.Backup.RoleARNTemplate, ws, namespace, r.Config.Storage.ClusterName)
	if err != nil {
		return stalled("InvalidRoleTemplate", "%v; fix --backup-role-arn-template", err)
	}
	if err := r.applyServiceAccount(ctx, ws, desiredServiceAccount(ws, namespace, backupServiceAccountName, roleARN)); err != nil {
		return failed("BackupServiceAccountFailed", err)
	}
	filesBucket := ""
	if ws.Status.Storage != nil && len(ws.Status.Storage.Buckets) > 0 {
		filesBucket = ws.Status.Storage.Buckets[0].Name
	}
	cronJob := desiredBackupCronJob(ws, namespace, schedule, retention, claims, locations, filesBucket, r.Config.Backup)
	err = apply(ctx, r, ws, cronJob, func(live *batchv1.CronJob) { syncBackupCronJob(live, cronJob) })
	if err != nil {
		return failed("BackupScheduleFailed", fmt.Errorf("apply CronJob %s: %w", objectRef(cronJob), err))
	}
	if err := r.startRequestedBackup(ctx, ws, cronJob); err != nil {
		return failed("BackupRequestFailed", err)
	}

	if err := r.observeBackupJobs(ctx, ws, namespace); err != nil {
		return failed("BackupJobsUnknown", err)
	}
	s, reason, message := backupHealth(status, ws.CreationTimestamp.Time, r.Clock.Now(), r.Config.Backup.StaleAfter)
	setCondition(ws, tenancyv1alpha1.ConditionBackupsHealthy, s, reason, message)
	return nil
}

// ensureBackupLocations keeps a backup bucket per region, encrypted with that region's
// workspace key and expiring backups after the retention even if no job ever prunes.
func (r *WorkspaceReconciler) ensureBackupLocations(ctx context.Context, ws *tenancyv1alpha1.Workspace, retention int32) ([]backupLocation, error) {
	owner := r.Config.Storage.owner(ws)
	var locations []backupLocation
	for _, region := range r.Config.Storage.regions() {
		key := findKey(ws, region)
		if key == nil {
			return nil, failed("KeyPending", fmt.Errorf("waiting for the workspace key in %s, which encrypts the backups there", region))
		}
		location := backupLocation{Region: region, Bucket: r.Buckets.BackupName(owner, region), KeyAlias: key.Alias}
		if awsCheckDue(ctx) || findLocation(ws.Status.Backup, region) == nil {
			if _, err := r.ensureBucket(ctx, cloud.BucketRequest{
				Owner: owner, Name: location.Bucket, Region: region, KeyARN: key.ARN, ExpireAfterDays: retention,
			}); err != nil {
				return nil, err
			}
		}
		if findLocation(ws.Status.Backup, region) == nil {
			ws.Status.Backup.Locations = append(ws.Status.Backup.Locations, tenancyv1alpha1.BackupLocationStatus{Region: region, Bucket: location.Bucket})
		}
		locations = append(locations, location)
	}
	return locations, nil
}

func findLocation(status *tenancyv1alpha1.BackupStatus, region string) *tenancyv1alpha1.BackupLocationStatus {
	for i := range status.Locations {
		if status.Locations[i].Region == region {
			return &status.Locations[i]
		}
	}
	return nil
}

// backupClaims lists the workspace's volumes. Tenants create them without the operator's
// label, so the label-scoped cache cannot see them: they are listed from the API server,
// but only on the AWS drift schedule (a new volume joins the backups within one drift
// interval) or while the CronJob does not exist yet; in between, the CronJob's own list is
// kept. The list is served from the API server's watch cache rather than read from etcd:
// it is one of the costliest requests a new workspace makes, and a claim created a moment
// before would join at the next drift check all the same.
func (r *WorkspaceReconciler) backupClaims(ctx context.Context, namespace string) ([]string, error) {
	live := &batchv1.CronJob{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: backupCronJobName}, live)
	if err == nil && !awsCheckDue(ctx) {
		var claims []string
		for _, v := range live.Spec.JobTemplate.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claims = append(claims, v.PersistentVolumeClaim.ClaimName)
			}
		}
		return claims, nil
	}
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	var list corev1.PersistentVolumeClaimList
	fromWatchCache := &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}
	if err := r.APIReader.List(ctx, &list, client.InNamespace(namespace), fromWatchCache); err != nil {
		return nil, fmt.Errorf("list PersistentVolumeClaims in %s: %w", namespace, err)
	}
	claims := make([]string, 0, len(list.Items))
	for _, pvc := range list.Items {
		if pvc.DeletionTimestamp == nil {
			claims = append(claims, pvc.Name)
		}
	}
	sort.Strings(claims)
	return claims, nil
}

// observeBackupJobs records the outcome of the newest finished backup Job.
func (r *WorkspaceReconciler) observeBackupJobs(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(namespace), client.MatchingLabels(managedLabels(ws))); err != nil {
		return fmt.Errorf("list backup Jobs: %w", err)
	}
	var newest *backupOutcome
	for i := range jobs.Items {
		outcome := finishedJob(&jobs.Items[i])
		if outcome != nil && (newest == nil || outcome.finished.After(newest.finished)) {
			newest = outcome
		}
	}
	status := ws.Status.Backup
	if newest == nil || newest.job == status.LastJob {
		return nil
	}
	summary, err := r.backupSummary(ctx, namespace, newest.job)
	if err != nil {
		return err
	}
	newest.summary = summary
	recordBackup(status, newest)
	backupJobs.WithLabelValues(map[bool]string{true: "succeeded", false: "failed"}[newest.succeeded]).Inc()
	if newest.succeeded {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "BackupSucceeded", "Backup", "backup %s completed in every location", status.LastBackupID)
	} else {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeWarning, "BackupFailed", "Backup", "backup Job %s failed: %s", newest.job, newest.message)
	}
	return nil
}

// finishedJob reads a Job's outcome, nil while it runs.
func finishedJob(job *batchv1.Job) *backupOutcome {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			finished := c.LastTransitionTime.Time
			if job.Status.CompletionTime != nil {
				finished = job.Status.CompletionTime.Time
			}
			return &backupOutcome{job: job.Name, finished: finished, succeeded: true}
		case batchv1.JobFailed:
			return &backupOutcome{job: job.Name, finished: c.LastTransitionTime.Time, message: strings.TrimSpace(c.Reason + ": " + c.Message)}
		}
	}
	return nil
}

// recordBackup folds a finished Job into the backup status.
func recordBackup(status *tenancyv1alpha1.BackupStatus, outcome *backupOutcome) {
	status.LastJob = outcome.job
	if !outcome.succeeded {
		status.LastFailure = outcome.message
		return
	}
	status.LastFailure = ""
	status.LastSuccessfulBackup = &metav1.Time{Time: outcome.finished}
	if outcome.summary == nil {
		return
	}
	status.LastBackupID = outcome.summary.BackupID
	for _, l := range outcome.summary.Locations {
		if location := findLocation(status, l.Region); location != nil {
			location.Backups, location.Newest, location.Oldest = l.Backups, l.Newest, l.Oldest
		}
	}
}

// backupSummary reads the agent's summary from the termination message of the Job's pod,
// nil when there is none (the pod is already gone, the agent wrote none) or it cannot be
// read: a missing summary must never hide the outcome of the backup itself.
//
// The pod is read live, once per finished Job: the Job informer can deliver the Job's
// completion before the pod informer delivers the pod's termination, and a summary
// missed then would never be read again.
func (r *WorkspaceReconciler) backupSummary(ctx context.Context, namespace, job string) (*backupSummary, error) {
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{batchv1.JobNameLabel: job}); err != nil {
		return nil, fmt.Errorf("list pods of Job %s: %w", job, err)
	}
	for _, pod := range pods.Items {
		for _, s := range pod.Status.ContainerStatuses {
			if s.Name != backupContainerName || s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
				continue
			}
			message := strings.TrimSpace(s.State.Terminated.Message)
			if message == "" {
				return nil, nil
			}
			summary := &backupSummary{}
			if err := json.Unmarshal([]byte(message), summary); err != nil {
				// The backup itself succeeded; only its per-location counts are unknown.
				logf.FromContext(ctx).Error(err, "unreadable backup summary", "job", job)
				return nil, nil
			}
			return summary, nil
		}
	}
	return nil, nil
}
