package datamover

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/backup"
)

// Steps of one volume's backup, in order, as status.volumes[].step records them.
const (
	StepHooks          = "PreBackupHooks"
	StepSnapshot       = "Snapshot"
	StepExposeContent  = "ExposeContent"
	StepExposeSnapshot = "ExposeSnapshot"
	StepClone          = "Clone"
	StepMove           = "Move"
	StepCleanup        = "Cleanup"
	StepDone           = "Done"
)

// result is what a step found: done, still waiting, or failed for a reason that retrying
// will not fix (the volume is then cleaned up and reported failed).
type result struct {
	done    bool
	failure string
}

var (
	waiting = result{}
	done    = result{done: true}
)

func failure(format string, args ...any) result {
	return result{failure: fmt.Sprintf(format, args...)}
}

// step is one idempotent step: it reads the live objects, creates what is missing, and
// reports done only when a live read shows its result.
type step struct {
	name string
	run  func(ctx context.Context, v volumeRef, status *tenancyv1alpha1.VolumeBackupStatus) (result, error)
}

// backupSteps take a volume from its claim to its upload. Nothing is deleted before the
// last of them, so running them again after a crash only finds what exists.
func (r *Reconciler) backupSteps() []step {
	return []step{
		{StepHooks, r.preBackupHooks},
		{StepSnapshot, r.snapshot},
		{StepExposeContent, r.exposeContent},
		{StepExposeSnapshot, r.exposeSnapshot},
		{StepClone, r.clone},
		{StepMove, r.move},
	}
}

// snapshot takes the point-in-time snapshot of the claim in the tenant's namespace.
func (r *Reconciler) snapshot(ctx context.Context, v volumeRef, _ *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	vs := &snapshotv1.VolumeSnapshot{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.name}, vs)
	switch {
	case apierrors.IsNotFound(err):
		claim := &corev1.PersistentVolumeClaim{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.claim}, claim)
		switch {
		case apierrors.IsNotFound(err) || (err == nil && claim.DeletionTimestamp != nil):
			return failure("PersistentVolumeClaim %s/%s no longer exists", v.run.Status.Namespace, v.claim), nil
		case err != nil:
			return waiting, fmt.Errorf("read PersistentVolumeClaim %s: %w", v.claim, err)
		case claim.Status.Phase != corev1.ClaimBound:
			return failure("PersistentVolumeClaim %s/%s is %s, not Bound: there is nothing to snapshot yet", v.run.Status.Namespace, v.claim, claim.Status.Phase), nil
		}
		return waiting, r.create(ctx, desiredSnapshot(v))
	case err != nil:
		return waiting, fmt.Errorf("read VolumeSnapshot %s/%s: %w", v.run.Status.Namespace, v.name, err)
	}
	return snapshotReady(vs)
}

// snapshotReady reads what the snapshot-controller reports.
func snapshotReady(vs *snapshotv1.VolumeSnapshot) (result, error) {
	s := vs.Status
	switch {
	case s == nil:
		return waiting, nil
	case s.Error != nil && s.Error.Message != nil:
		return failure("VolumeSnapshot %s/%s failed: %s", vs.Namespace, vs.Name, *s.Error.Message), nil
	case s.ReadyToUse != nil && *s.ReadyToUse && s.BoundVolumeSnapshotContentName != nil:
		return done, nil
	}
	return waiting, nil
}

// exposeContent creates the statically provisioned copy of the snapshot's content, with
// the handle the CSI driver gave the snapshot.
func (r *Reconciler) exposeContent(ctx context.Context, v volumeRef, _ *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	copied := &snapshotv1.VolumeSnapshotContent{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: v.name}, copied)
	switch {
	case err == nil:
		return done, nil
	case !apierrors.IsNotFound(err):
		return waiting, fmt.Errorf("read VolumeSnapshotContent %s: %w", v.name, err)
	}
	vs := &snapshotv1.VolumeSnapshot{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.name}, vs); err != nil {
		return waiting, fmt.Errorf("read VolumeSnapshot %s/%s: %w", v.run.Status.Namespace, v.name, err)
	}
	original := &snapshotv1.VolumeSnapshotContent{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: *vs.Status.BoundVolumeSnapshotContentName}, original); err != nil {
		return waiting, fmt.Errorf("read VolumeSnapshotContent %s: %w", *vs.Status.BoundVolumeSnapshotContentName, err)
	}
	if original.Status == nil || original.Status.SnapshotHandle == nil {
		return waiting, nil
	}
	return waiting, r.create(ctx, desiredContentCopy(v, r.Config.Namespace, original))
}

// exposeSnapshot creates the mover-namespace snapshot bound to the content copy, and waits
// for the snapshot-controller to bind them.
func (r *Reconciler) exposeSnapshot(ctx context.Context, v volumeRef, _ *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	vs := &snapshotv1.VolumeSnapshot{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, vs)
	switch {
	case apierrors.IsNotFound(err):
		return waiting, r.create(ctx, desiredSnapshotCopy(v, r.Config.Namespace))
	case err != nil:
		return waiting, fmt.Errorf("read VolumeSnapshot %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	return snapshotReady(vs)
}

// clone creates the volume the mover reads, restored from the snapshot copy. It binds
// when the mover pod is scheduled, so there is nothing more to wait for here.
func (r *Reconciler) clone(ctx context.Context, v volumeRef, _ *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, pvc)
	switch {
	case err == nil:
		return done, nil
	case !apierrors.IsNotFound(err):
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	source := &corev1.PersistentVolumeClaim{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.claim}, source); err != nil {
		if apierrors.IsNotFound(err) {
			return failure("PersistentVolumeClaim %s/%s was deleted during its backup", v.run.Status.Namespace, v.claim), nil
		}
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s: %w", v.claim, err)
	}
	vs := &snapshotv1.VolumeSnapshot{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, vs); err != nil {
		return waiting, fmt.Errorf("read VolumeSnapshot %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	return waiting, r.create(ctx, desiredClone(v, r.Config.Namespace, source, cloneSize(vs, source)))
}

// move runs the mover pod and reads its outcome.
func (r *Reconciler) move(ctx context.Context, v volumeRef, status *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	pod := &corev1.Pod{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		pv, err := r.sourceVolume(ctx, v)
		if err != nil {
			return waiting, err
		}
		return waiting, r.create(ctx, desiredMoverPod(v, r.Config.Namespace, pv, r.Config.moverSettings(v.run.Spec.Workspace)))
	case err != nil:
		return waiting, fmt.Errorf("read pod %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	summary := moverSummary(pod)
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		status.BackupID = v.backupID()
		if summary != nil {
			status.BackupID = summary.BackupID
			status.Bytes = archiveBytes(summary)
		}
		return done, nil
	case corev1.PodFailed:
		return failure("mover pod %s/%s failed: %s", pod.Namespace, pod.Name, podFailure(pod, summary)), nil
	}
	return waiting, nil
}

// sourceVolume is the PersistentVolume behind the claim, whose node affinity (its zone)
// the mover pod inherits; nil when the claim has none bound.
func (r *Reconciler) sourceVolume(ctx context.Context, v volumeRef) (*corev1.PersistentVolume, error) {
	if v.claim == "" {
		return nil, nil // the file bucket
	}
	claim := &corev1.PersistentVolumeClaim{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.claim}, claim); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if claim.Spec.VolumeName == "" {
		return nil, nil
	}
	pv := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, pv); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return pv, nil
}

// moverSummary is the agent's JSON summary from the mover's termination message, nil when
// there is none or it does not parse: the pod's phase alone decides the outcome.
func moverSummary(pod *corev1.Pod) *backup.Summary {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name != moverContainerName || s.State.Terminated == nil {
			continue
		}
		summary := &backup.Summary{}
		if json.Unmarshal([]byte(strings.TrimSpace(s.State.Terminated.Message)), summary) != nil {
			return nil
		}
		return summary
	}
	return nil
}

func archiveBytes(summary *backup.Summary) int64 {
	for _, l := range summary.Locations {
		if l.ArchiveBytes > 0 {
			return l.ArchiveBytes
		}
	}
	return 0
}

// podFailure says why a mover pod failed, from the most specific source there is.
func podFailure(pod *corev1.Pod, summary *backup.Summary) string {
	if summary != nil && summary.Error != "" {
		return summary.Error
	}
	for _, s := range pod.Status.ContainerStatuses {
		if t := s.State.Terminated; s.Name == moverContainerName && t != nil {
			return strings.TrimSpace(fmt.Sprintf("%s (exit code %d) %s", t.Reason, t.ExitCode, t.Message))
		}
	}
	if pod.Status.Reason != "" || pod.Status.Message != "" {
		return strings.TrimSpace(pod.Status.Reason + ": " + pod.Status.Message)
	}
	return "no reason given"
}

// cleanup deletes a volume's objects in the order that lets each go: the pod that mounts
// the clone, the clone restored from the snapshot copy, the copy, its content (Retain: the
// snapshot survives), and last the tenant's snapshot, whose content owns the real snapshot.
// Each must be gone, by a live read, before the next is deleted.
func (r *Reconciler) cleanup(ctx context.Context, v volumeRef) (bool, error) {
	objects := []client.Object{
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}},
		&snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}},
		&snapshotv1.VolumeSnapshotContent{ObjectMeta: metav1.ObjectMeta{Name: v.name}},
	}
	if v.run.Status.Namespace != "" {
		objects = append(objects, &snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: v.run.Status.Namespace, Name: v.name}})
	}
	for _, obj := range objects {
		gone, err := r.deleteOwned(ctx, v, obj)
		if err != nil || !gone {
			return false, err
		}
	}
	return true, nil
}

// deleteOwned deletes obj if a live read shows it is this volume's, and reports whether it
// is gone. An object of the same name that is not labelled for this run and claim is left
// alone and counts as gone.
func (r *Reconciler) deleteOwned(ctx context.Context, v volumeRef, obj client.Object) (bool, error) {
	return deleteLabelled(ctx, r.Client, r.APIReader, obj, map[string]string{
		tenancyv1alpha1.BackupRunLabel: v.run.Name, tenancyv1alpha1.BackupClaimLabel: v.claim,
	})
}

// deleteLabelled deletes obj if a live read shows it carries every label of want, and
// reports whether it is gone; an object of that name without them is someone else's, left
// alone, and counts as gone. The UID precondition keeps a delete from reaching an object
// recreated under the same name since the read.
func deleteLabelled(ctx context.Context, c client.Writer, reader client.Reader, obj client.Object, want map[string]string) (bool, error) {
	key := client.ObjectKeyFromObject(obj)
	err := reader.Get(ctx, key, obj)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read %T %s: %w", obj, key, err)
	}
	labels := obj.GetLabels()
	for k, v := range want {
		if labels[k] != v {
			return true, nil
		}
	}
	if obj.GetDeletionTimestamp() == nil {
		uid := obj.GetUID()
		if err := c.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("delete %T %s: %w", obj, key, err)
		}
	}
	return false, nil
}

// create creates obj; one that already exists (a create whose answer was lost, or the
// cache behind) is what the next live read confirms.
func (r *Reconciler) create(ctx context.Context, obj client.Object) error {
	return createIfAbsent(ctx, r.Client, obj)
}

func createIfAbsent(ctx context.Context, c client.Writer, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %T %s: %w", obj, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}
