package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Kinds of bucket in a purge record.
const (
	filesBucketKind  = "Files"
	backupBucketKind = "Backups"
)

// purgeName is the WorkspacePurge a workspace's deletion leaves. The UID keeps records of
// successive workspaces of the same name apart.
func purgeName(ws *tenancyv1alpha1.Workspace) string {
	return fmt.Sprintf("%s-%s", ws.Name, string(ws.UID)[:8])
}

// desiredPurge lists what the workspace leaves behind, from its status: the keys, the
// file and backup buckets, the volumes and the last backup.
func desiredPurge(ws *tenancyv1alpha1.Workspace, namespace string, window time.Duration, volumes []tenancyv1alpha1.PurgeVolume) *tenancyv1alpha1.WorkspacePurge {
	deletedAt := ws.DeletionTimestamp.DeepCopy()
	spec := tenancyv1alpha1.WorkspacePurgeSpec{
		Workspace:    ws.Name,
		WorkspaceUID: string(ws.UID),
		Namespace:    namespace,
		DeletedAt:    *deletedAt,
		PurgeAfter:   metav1.NewTime(deletedAt.Add(window)),
		Volumes:      volumes,
	}
	if e := ws.Status.Encryption; e != nil {
		for _, k := range e.Keys {
			spec.Keys = append(spec.Keys, tenancyv1alpha1.PurgeKey{Region: k.Region, ARN: k.ARN, Alias: k.Alias})
		}
	}
	if s := ws.Status.Storage; s != nil {
		for _, b := range s.Buckets {
			spec.Buckets = append(spec.Buckets, tenancyv1alpha1.PurgeBucket{Region: b.Region, Name: b.Name, Kind: filesBucketKind})
		}
	}
	if b := ws.Status.Backup; b != nil {
		for _, l := range b.Locations {
			spec.Buckets = append(spec.Buckets, tenancyv1alpha1.PurgeBucket{Region: l.Region, Name: l.Bucket, Kind: backupBucketKind})
		}
		spec.LastBackupID = b.LastBackupID
	}
	purge := &tenancyv1alpha1.WorkspacePurge{ObjectMeta: objectMeta(ws, "", purgeName(ws)), Spec: spec}
	controllerutil.AddFinalizer(purge, tenancyv1alpha1.PurgeFinalizer)
	return purge
}

// onPurgeRecord runs a deletion step on the workspace's purge record, read live. A missing
// record is a workspace that left nothing to purge: the step has nothing to do.
func (r *WorkspaceReconciler) onPurgeRecord(step func(context.Context, *tenancyv1alpha1.Workspace, *tenancyv1alpha1.WorkspacePurge) (bool, error)) func(context.Context, *tenancyv1alpha1.Workspace) (bool, error) {
	return func(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
		purge, err := r.livePurge(ctx, ws)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return step(ctx, ws, purge)
	}
}

// livePurge reads the workspace's purge record from the API server.
func (r *WorkspaceReconciler) livePurge(ctx context.Context, ws *tenancyv1alpha1.Workspace) (*tenancyv1alpha1.WorkspacePurge, error) {
	purge := &tenancyv1alpha1.WorkspacePurge{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: purgeName(ws)}, purge); err != nil {
		return nil, fmt.Errorf("read WorkspacePurge %s: %w", purgeName(ws), err)
	}
	return purge, nil
}

// recordPurge creates the purge record before anything is destroyed. It is created once:
// the volumes it lists are read while the namespace still holds them.
func (r *WorkspaceReconciler) recordPurge(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
	if ws.Status.Namespace == "" && ws.Status.Encryption == nil {
		return true, nil // never provisioned: nothing to purge, and no name to hold
	}
	existing, err := r.livePurge(ctx, ws)
	if err == nil {
		// Created by an earlier pass that may have died before setting the state.
		return true, r.setPurgeState(ctx, existing, stateOrDeleting(existing.Status.State))
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	namespace := namespaceName(ws, r.Config.NamespacePrefix)
	var claims corev1.PersistentVolumeClaimList
	if err := r.APIReader.List(ctx, &claims, client.InNamespace(namespace)); err != nil {
		return false, fmt.Errorf("list volumes of namespace %s: %w", namespace, err)
	}
	var volumes []tenancyv1alpha1.PurgeVolume
	for _, c := range claims.Items {
		storage := c.Spec.Resources.Requests[corev1.ResourceStorage]
		volumes = append(volumes, tenancyv1alpha1.PurgeVolume{Name: c.Name, Storage: storage.String(), BackupID: lastVolumeBackup(ws, c.Name)})
	}
	purge := desiredPurge(ws, namespace, r.Config.PurgeWindow, volumes)
	if err := r.Create(ctx, purge); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("create WorkspacePurge %s: %w", purge.Name, err)
	}
	if err := r.setPurgeState(ctx, purge, tenancyv1alpha1.PurgeDeleting); err != nil {
		return false, err
	}
	r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "PurgeRecorded", "Delete",
		"WorkspacePurge %s records the keys, buckets and volumes; the data is destroyed after %s", purge.Name, purge.Spec.PurgeAfter.UTC().Format(time.RFC3339))
	return true, nil
}

// stopBackups deletes the backup CronJob and any Job it started, so that no backup is
// taken of a workspace being deleted.
func (r *WorkspaceReconciler) stopBackups(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
	// The tenant's namespace held the backups before the data mover; the mover namespace
	// holds them with it. A workspace being migrated may have both.
	places := []client.ObjectKey{{Namespace: namespaceName(ws, r.Config.NamespacePrefix), Name: backupCronJobName}}
	if r.Config.Backup.MoverNamespace != "" {
		places = append(places, client.ObjectKey{Namespace: r.Config.Backup.MoverNamespace, Name: moverCronJobName(ws)})
	}
	for _, key := range places {
		if err := r.stopBackupsIn(ctx, ws, key); err != nil {
			return false, err
		}
	}
	return true, nil
}

// stopBackupsIn deletes the backup CronJob named by key and the unfinished backup Jobs of
// the workspace in its namespace.
func (r *WorkspaceReconciler) stopBackupsIn(ctx context.Context, ws *tenancyv1alpha1.Workspace, key client.ObjectKey) error {
	cronJob := &batchv1.CronJob{}
	err := r.APIReader.Get(ctx, key, cronJob)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("read backup CronJob: %w", err)
	}
	if err == nil && belongsTo(cronJob, ws.Name) {
		if err := r.Delete(ctx, cronJob, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete backup CronJob: %w", err)
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "BackupsStopped", "Delete", "deleted the backup CronJob %s; no new backup will be taken", key)
	}
	var jobs batchv1.JobList
	if err := r.APIReader.List(ctx, &jobs, client.InNamespace(key.Namespace), client.MatchingLabels(managedLabels(ws))); err != nil {
		return fmt.Errorf("list backup Jobs: %w", err)
	}
	for i := range jobs.Items {
		if finishedJob(&jobs.Items[i]) != nil {
			continue
		}
		if err := r.Delete(ctx, &jobs.Items[i], client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("stop backup Job %s: %w", jobs.Items[i].Name, err)
		}
	}
	return nil
}

// scheduleKeyDeletion schedules every workspace key for deletion after the purge window
// and records the dates. If KMS's date falls after the record's purgeAfter (the step ran
// later than the deletion request), purgeAfter moves to it: the record never promises a
// purge before the keys are gone.
func (r *WorkspaceReconciler) scheduleKeyDeletion(ctx context.Context, ws *tenancyv1alpha1.Workspace, purge *tenancyv1alpha1.WorkspacePurge) (bool, error) {
	if r.Keys == nil {
		return true, nil
	}
	base := purge.DeepCopy()
	owner := r.Config.Storage.owner(ws)
	for i := range purge.Spec.Keys {
		key := &purge.Spec.Keys[i]
		if key.DeletionDate != nil {
			continue
		}
		date, err := r.Keys.ScheduleDeletion(ctx, owner, key.Region, key.ARN, r.Config.PurgeWindow)
		if err != nil {
			return false, awsFailure("KMS", err)
		}
		if date == nil {
			continue // KMS has no such key any more
		}
		recorded := recordedDeletionDate(*date)
		key.DeletionDate = &recorded
		if recorded.After(purge.Spec.PurgeAfter.Time) {
			purge.Spec.PurgeAfter = recorded
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "KeyDeletionScheduled", "Delete",
			"KMS key %s in %s will be deleted at %s", key.ARN, key.Region, date.UTC().Format(time.RFC3339))
	}
	if equality.Semantic.DeepEqual(base.Spec, purge.Spec) {
		// Every date was recorded by an earlier pass: the optimistic lock would make the
		// patch a write even with nothing in it.
		return true, nil
	}
	if err := r.Patch(ctx, purge, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("record key deletion dates: %w", err)
	}
	return true, nil
}

// closeBuckets makes every workspace bucket refuse new writes until the purge.
func (r *WorkspaceReconciler) closeBuckets(ctx context.Context, _ *tenancyv1alpha1.Workspace, purge *tenancyv1alpha1.WorkspacePurge) (bool, error) {
	if r.Buckets == nil {
		return true, nil
	}
	hold := backupHoldDays(r.Config.Backup.MaxRetentionDays, r.Config.PurgeWindow)
	for _, b := range purge.Spec.Buckets {
		if b.Kind == backupBucketKind {
			if err := r.Buckets.HoldBackups(ctx, b.Region, b.Name, hold); err != nil {
				return false, awsFailure("S3", err)
			}
		}
		if err := r.Buckets.Close(ctx, b.Region, b.Name); err != nil {
			return false, awsFailure("S3", err)
		}
	}
	return true, nil
}

// backupHoldDays is how long, in days from their creation, a deleted workspace's backups
// are kept: the oldest is at most maxRetentionDays old at the deletion and must outlive the
// purge window, so that an undelete on its last day still finds every backup. S3 counts
// lifecycle days from midnight UTC, hence the extra day.
func backupHoldDays(maxRetentionDays int32, purgeWindow time.Duration) int32 {
	windowDays := int32((purgeWindow + 24*time.Hour - 1) / (24 * time.Hour))
	return maxRetentionDays + windowDays + 1
}

// handOverToPurge leaves the rest to the WorkspacePurge controller.
func (r *WorkspaceReconciler) handOverToPurge(ctx context.Context, _ *tenancyv1alpha1.Workspace, purge *tenancyv1alpha1.WorkspacePurge) (bool, error) {
	// No state at all is a record whose creator died before marking it Deleting.
	if purge.Status.State == tenancyv1alpha1.PurgeDeleting || purge.Status.State == "" {
		if err := r.setPurgeState(ctx, purge, tenancyv1alpha1.PurgePending); err != nil {
			return false, err
		}
	}
	return true, nil
}

// stateOrDeleting keeps a record's state, or makes a record without one Deleting.
func stateOrDeleting(state tenancyv1alpha1.PurgeState) tenancyv1alpha1.PurgeState {
	if state == "" {
		return tenancyv1alpha1.PurgeDeleting
	}
	return state
}

func (r *WorkspaceReconciler) setPurgeState(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge, state tenancyv1alpha1.PurgeState) error {
	if purge.Status.State == state {
		return nil
	}
	base := purge.DeepCopy()
	purge.Status.State = state
	if err := r.Status().Patch(ctx, purge, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("set WorkspacePurge %s to %s: %w", purge.Name, state, err)
	}
	return nil
}

// recordedDeletionDate is KMS's deletion date as the record stores it, in whole seconds,
// rounded up: KMS answers milliseconds, and purgeAfter must never come before the moment
// the key is really gone.
func recordedDeletionDate(date time.Time) metav1.Time {
	whole := date.Truncate(time.Second)
	if whole.Before(date) {
		whole = whole.Add(time.Second)
	}
	return metav1.NewTime(whole)
}

// lastVolumeBackup is the claim's last successful backup by the data mover, "" when it has
// none (or the workspace predates the mover: its last backup holds every volume).
func lastVolumeBackup(ws *tenancyv1alpha1.Workspace, claim string) string {
	if ws.Status.Backup == nil {
		return ""
	}
	for _, v := range ws.Status.Backup.Volumes {
		if v.Claim == claim {
			return v.BackupID
		}
	}
	return ""
}
