package datamover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Steps of one volume's restore, in order, as status.volumes[].step records them.
const (
	StepClaim     = "Claim"
	StepProvision = "Provision"
	StepRestore   = "Restore"
	StepRetain    = "Retain"
	StepRelease   = "Release"
	StepBind      = "Bind"
)

// RestoreReconciler runs WorkspaceRestores. Each volume is written by a mover pod into a
// new volume in the mover namespace; that volume is then released from the mover's claim
// and handed to the workspace's, which was created at the start but can bind nothing else.
type RestoreReconciler struct {
	client.Client
	// APIReader reads from the API server: every step confirms its result from there.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    Config
}

// restoreStep is one idempotent step of a volume's restore.
type restoreStep struct {
	name string
	run  func(ctx context.Context, v restoreRef, status *tenancyv1alpha1.VolumeRestoreStatus) (result, error)
}

// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacerestores,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacerestores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacerestores/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get;list;update;patch

// Reconcile advances one restore run and writes its status once.
func (r *RestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	run := &tenancyv1alpha1.WorkspaceRestore{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if run.DeletionTimestamp.IsZero() && controllerutil.AddFinalizer(run, tenancyv1alpha1.RestoreRunFinalizer) {
		if err := r.Update(ctx, run); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	before := run.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, run.Status) {
			return
		}
		err := r.Status().Patch(ctx, run, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patch status: %w", err))
		}
	}()

	switch {
	case !run.DeletionTimestamp.IsZero():
		return r.reconcileDelete(ctx, run)
	case restoreFinished(run):
		return ctrl.Result{}, nil
	case run.Status.StartTime == nil:
		return r.resolve(ctx, run)
	}
	return r.advance(ctx, run)
}

// resolve freezes the run's inputs from the Workspace: its namespace, encrypted class and
// backup locations.
func (r *RestoreReconciler) resolve(ctx context.Context, run *tenancyv1alpha1.WorkspaceRestore) (ctrl.Result, error) {
	ws := &tenancyv1alpha1.Workspace{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: run.Spec.Workspace}, ws)
	switch {
	case apierrors.IsNotFound(err):
		r.failRun(run, "WorkspaceNotFound", fmt.Sprintf("Workspace %s does not exist", run.Spec.Workspace))
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("read Workspace %s: %w", run.Spec.Workspace, err)
	case !ws.DeletionTimestamp.IsZero():
		r.failRun(run, "WorkspaceDeleting", fmt.Sprintf("Workspace %s is being deleted", ws.Name))
		return ctrl.Result{}, nil
	}
	inputs, missing := runInputs(ws)
	if missing != "" {
		run.Status.Phase = tenancyv1alpha1.RestoreRunPending
		setRestoreComplete(run, metav1.ConditionFalse, "WorkspaceNotReady", fmt.Sprintf("waiting for Workspace %s: %s", ws.Name, missing))
		return ctrl.Result{RequeueAfter: r.Config.SlotRetry}, nil
	}
	now := metav1.NewTime(r.Clock.Now())
	run.Status.Phase = tenancyv1alpha1.RestoreRunRunning
	run.Status.Namespace, run.Status.StorageClassName, run.Status.Locations = inputs.Namespace, inputs.StorageClassName, inputs.Locations
	run.Status.StartTime = &now
	run.Status.Volumes = nil
	for _, v := range run.Spec.Volumes {
		run.Status.Volumes = append(run.Status.Volumes, tenancyv1alpha1.VolumeRestoreStatus{Claim: v.Claim, Phase: tenancyv1alpha1.VolumeBackupPending})
	}
	setRestoreComplete(run, metav1.ConditionFalse, "Running", fmt.Sprintf("restoring %d volumes into namespace %s", len(run.Spec.Volumes), inputs.Namespace))
	r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, "RestoreStarted", "Restore",
		"restore of workspace %s: %d volumes", ws.Name, len(run.Spec.Volumes))
	return ctrl.Result{}, nil
}

// advance moves every volume as far as the live objects allow, at most Concurrency of the
// run's volumes at once; a volume that fails is cleaned up and does not hold back the
// others.
func (r *RestoreReconciler) advance(ctx context.Context, run *tenancyv1alpha1.WorkspaceRestore) (ctrl.Result, error) {
	if err := r.ensureMoverIdentity(ctx, run); err != nil {
		return ctrl.Result{}, err
	}
	running := 0
	for _, s := range run.Status.Volumes {
		if s.Phase == tenancyv1alpha1.VolumeBackupRunning {
			running++
		}
	}
	var errs []error
	requeue := time.Duration(0)
	now := r.Clock.Now()
	for i := range run.Status.Volumes {
		status := &run.Status.Volumes[i]
		spec, ok := restoreVolumeSpec(run, status.Claim)
		if !ok {
			continue
		}
		v := newRestoreRef(run, spec)
		if status.Phase == tenancyv1alpha1.VolumeBackupPending {
			if running >= r.Config.Concurrency {
				status.Message = fmt.Sprintf("waiting: %d volumes of this restore are being restored, the limit", r.Config.Concurrency)
				continue
			}
			running++
			status.Phase, status.Message = tenancyv1alpha1.VolumeBackupRunning, ""
			status.StartTime = &metav1.Time{Time: now}
		}
		wait, err := r.advanceVolume(ctx, v, status, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", status.Claim, err))
		}
		if wait > 0 && (requeue == 0 || wait < requeue) {
			requeue = wait
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	r.finishIfDone(run)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func restoreVolumeSpec(run *tenancyv1alpha1.WorkspaceRestore, claim string) (tenancyv1alpha1.RestoreVolume, bool) {
	for _, v := range run.Spec.Volumes {
		if v.Claim == claim {
			return v, true
		}
	}
	return tenancyv1alpha1.RestoreVolume{}, false
}

// advanceVolume runs a volume's next steps. A failure is recorded first and cleaned up in
// the next passes, as for backups.
func (r *RestoreReconciler) advanceVolume(ctx context.Context, v restoreRef, status *tenancyv1alpha1.VolumeRestoreStatus, now time.Time) (time.Duration, error) {
	if status.Phase != tenancyv1alpha1.VolumeBackupRunning {
		if status.Step == StepDone || status.Phase != tenancyv1alpha1.VolumeBackupFailed {
			return 0, nil
		}
		gone, err := r.cleanup(ctx, v)
		if gone {
			status.Step = StepDone
		}
		return 0, err
	}
	for _, s := range r.restoreSteps() {
		res, err := s.run(ctx, v, status)
		if err != nil {
			return 0, err
		}
		if res.failure != "" {
			r.finishVolume(v, status, tenancyv1alpha1.VolumeBackupFailed, res.failure, now)
			return 0, nil
		}
		if !res.done {
			deadline := status.StartTime.Add(r.Config.VolumeTimeout)
			if !now.Before(deadline) {
				r.finishVolume(v, status, tenancyv1alpha1.VolumeBackupFailed,
					fmt.Sprintf("timed out after %s waiting for step %s", r.Config.VolumeTimeout, s.name), now)
				return 0, nil
			}
			return deadline.Sub(now), nil
		}
		status.Step = s.name
	}
	r.finishVolume(v, status, tenancyv1alpha1.VolumeBackupSucceeded, "", now)
	status.Step = StepDone
	return 0, nil
}

// restoreSteps take a volume from its backup to a bound claim. Until Release, a crash
// repeats a step harmlessly; from Release on, the volume is found by the label and claim
// reference the steps leave on it.
func (r *RestoreReconciler) restoreSteps() []restoreStep {
	return []restoreStep{
		{StepClaim, r.claim},
		{StepProvision, r.provision},
		{StepRestore, r.restore},
		{StepRetain, r.retain},
		{StepRelease, r.release},
		{StepBind, r.bind},
	}
}

// claim creates the workspace's claim first, so that nothing else takes its name, and
// refuses a claim of that name that is not this run's.
func (r *RestoreReconciler) claim(ctx context.Context, v restoreRef, _ *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	claim := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.volume.Claim}, claim)
	switch {
	case apierrors.IsNotFound(err):
		return waiting, createIfAbsent(ctx, r.Client, desiredWorkspaceClaim(v))
	case err != nil:
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", v.run.Status.Namespace, v.volume.Claim, err)
	case claim.Labels[tenancyv1alpha1.RestoreClaimLabel] != v.name:
		return failure("PersistentVolumeClaim %s/%s already exists: a restore writes a new volume; delete that claim (after stopping its workload) or restore under another name (spec.restore.targets)",
			v.run.Status.Namespace, v.volume.Claim), nil
	}
	return done, nil
}

// provision creates the mover's claim, which binds when the mover pod is scheduled.
func (r *RestoreReconciler) provision(ctx context.Context, v restoreRef, _ *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	if r.boundToWorkspace(ctx, v) {
		return done, nil // the mover's claim is gone because the volume was handed over
	}
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, pvc)
	switch {
	case apierrors.IsNotFound(err):
		if pv, err := r.restoredVolume(ctx, v); err != nil || pv != nil {
			return result{done: pv != nil}, err // released already: the mover's claim is gone for good
		}
		return waiting, createIfAbsent(ctx, r.Client, desiredRestoreClaim(v, r.Config.Namespace))
	case err != nil:
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	return done, nil
}

// restore runs the mover pod and reads its outcome.
func (r *RestoreReconciler) restore(ctx context.Context, v restoreRef, _ *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	if pv, err := r.restoredVolume(ctx, v); err != nil || pv != nil {
		return result{done: pv != nil}, err
	}
	pod := &corev1.Pod{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		return waiting, createIfAbsent(ctx, r.Client, desiredRestorePod(v, r.Config.Namespace, r.Config.moverSettings(v.run.Spec.Workspace)))
	case err != nil:
		return waiting, fmt.Errorf("read pod %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		return done, nil
	case corev1.PodFailed:
		return failure("mover pod %s/%s failed: %s", pod.Namespace, pod.Name, podFailure(pod, nil)), nil
	}
	return waiting, nil
}

// retain holds the written volume at Retain, so that deleting the mover's claim releases
// it instead of deleting it.
func (r *RestoreReconciler) retain(ctx context.Context, v restoreRef, status *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	pv, err := r.restoredVolume(ctx, v)
	if err != nil || pv != nil {
		return result{done: pv != nil}, err
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: v.name}, pvc); err != nil {
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", r.Config.Namespace, v.name, err)
	}
	if pvc.Spec.VolumeName == "" {
		return failure("the mover's claim %s/%s has no volume although the restore into it succeeded", pvc.Namespace, pvc.Name), nil
	}
	pv = &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		return waiting, fmt.Errorf("read PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
	}
	status.VolumeName = pv.Name
	if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRetain {
		return done, nil
	}
	want := retained(pv)
	want.Labels = mergedLabels(want.Labels, v.labels())
	if err := r.Patch(ctx, want, client.MergeFromWithOptions(pv, client.MergeFromWithOptimisticLock{})); err != nil {
		return waiting, fmt.Errorf("retain PersistentVolume %s: %w", pv.Name, err)
	}
	return waiting, nil
}

// release deletes the mover pod and claim; the volume, retained, becomes Released.
func (r *RestoreReconciler) release(ctx context.Context, v restoreRef, _ *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	for _, obj := range []client.Object{
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}},
	} {
		gone, err := r.deleteOwned(ctx, v, obj)
		if err != nil || !gone {
			return waiting, err
		}
	}
	return done, nil
}

// bind hands the released volume to the workspace's claim and waits for the claim to bind;
// then the volume gets its own reclaim policy back.
func (r *RestoreReconciler) bind(ctx context.Context, v restoreRef, status *tenancyv1alpha1.VolumeRestoreStatus) (result, error) {
	pv, err := r.restoredVolume(ctx, v)
	if err != nil {
		return waiting, err
	}
	if pv == nil {
		return failure("the restored volume of claim %s is gone", v.volume.Claim), nil
	}
	status.VolumeName = pv.Name
	if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace == r.Config.Namespace {
		// Still the mover claim's until the PersistentVolume controller sees it deleted.
		if pv.Status.Phase != corev1.VolumeReleased {
			return waiting, nil
		}
	}
	claim := &corev1.PersistentVolumeClaim{}
	err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.volume.Claim}, claim)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && claim.DeletionTimestamp != nil):
		return failure("PersistentVolumeClaim %s/%s was deleted before its restored volume could be bound to it", v.run.Status.Namespace, v.volume.Claim), nil
	case err != nil:
		return waiting, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", v.run.Status.Namespace, v.volume.Claim, err)
	case claim.Labels[tenancyv1alpha1.RestoreClaimLabel] != v.name:
		return failure("PersistentVolumeClaim %s/%s was replaced by one this restore did not create", v.run.Status.Namespace, v.volume.Claim), nil
	}
	if claim.Spec.VolumeName == pv.Name && claim.Status.Phase == corev1.ClaimBound {
		if _, kept := pv.Annotations[ReclaimPolicyAnnotation]; !kept {
			return done, nil
		}
		if err := r.Patch(ctx, reclaimRestored(pv), client.MergeFromWithOptions(pv, client.MergeFromWithOptimisticLock{})); err != nil {
			return waiting, fmt.Errorf("restore the reclaim policy of PersistentVolume %s: %w", pv.Name, err)
		}
		return waiting, nil
	}
	if ref := pv.Spec.ClaimRef; ref != nil && ref.UID == claim.UID {
		return waiting, nil // handed over: the PersistentVolume controller binds them
	}
	if err := r.Patch(ctx, handedOver(pv, v, claim), client.MergeFromWithOptions(pv, client.MergeFromWithOptimisticLock{})); err != nil {
		return waiting, fmt.Errorf("hand PersistentVolume %s to claim %s/%s: %w", pv.Name, claim.Namespace, claim.Name, err)
	}
	return waiting, nil
}

// restoredVolume is the volume this run restored for v, found by the labels that retain
// puts on it once the mover has succeeded: nil before that.
func (r *RestoreReconciler) restoredVolume(ctx context.Context, v restoreRef) (*corev1.PersistentVolume, error) {
	var pvs corev1.PersistentVolumeList
	if err := r.APIReader.List(ctx, &pvs, client.MatchingLabels{tenancyv1alpha1.RestoreRunLabel: v.run.Name, tenancyv1alpha1.RestoreClaimLabel: v.name}); err != nil {
		return nil, fmt.Errorf("list the restored PersistentVolumes of %s: %w", v.volume.Claim, err)
	}
	if len(pvs.Items) == 0 {
		return nil, nil
	}
	return &pvs.Items[0], nil
}

// boundToWorkspace reports whether the workspace's claim is already bound to this run's
// volume: every earlier step is then done for good.
func (r *RestoreReconciler) boundToWorkspace(ctx context.Context, v restoreRef) bool {
	claim := &corev1.PersistentVolumeClaim{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.volume.Claim}, claim); err != nil {
		return false
	}
	return claim.Labels[tenancyv1alpha1.RestoreClaimLabel] == v.name && claim.Spec.VolumeName != ""
}

// cleanup undoes a failed volume: the pod, the volume (given back its own reclaim policy so
// that it is deleted, not kept), the mover's claim, and the workspace's claim if it is this
// run's and never bound.
func (r *RestoreReconciler) cleanup(ctx context.Context, v restoreRef) (bool, error) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}}
	if gone, err := r.deleteOwned(ctx, v, pod); err != nil || !gone {
		return false, err
	}
	var pvs corev1.PersistentVolumeList
	if err := r.APIReader.List(ctx, &pvs, client.MatchingLabels{tenancyv1alpha1.RestoreRunLabel: v.run.Name, tenancyv1alpha1.RestoreClaimLabel: v.name}); err != nil {
		return false, fmt.Errorf("list the restored PersistentVolumes of %s: %w", v.volume.Claim, err)
	}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace == v.run.Status.Namespace && pv.Status.Phase == corev1.VolumeBound {
			continue // the workspace's now: not ours to undo
		}
		if _, kept := pv.Annotations[ReclaimPolicyAnnotation]; kept {
			if err := r.Patch(ctx, reclaimRestored(pv), client.MergeFrom(pv)); err != nil {
				return false, fmt.Errorf("give PersistentVolume %s back its reclaim policy: %w", pv.Name, err)
			}
		}
	}
	moverClaim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: r.Config.Namespace, Name: v.name}}
	if gone, err := r.deleteOwned(ctx, v, moverClaim); err != nil || !gone {
		return false, err
	}
	claim := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.volume.Claim}, claim)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", v.run.Status.Namespace, v.volume.Claim, err)
	case claim.Labels[tenancyv1alpha1.RestoreClaimLabel] != v.name || claim.Spec.VolumeName != "":
		return true, nil
	}
	// Asking is enough: a workload pod already waiting on the claim keeps it, through the
	// PVC protection finalizer, until that pod goes; the run need not wait for it.
	_, err = r.deleteOwned(ctx, v, claim)
	return err == nil, err
}

// deleteOwned deletes obj if a live read shows it is this volume's (see deleteLabelled).
func (r *RestoreReconciler) deleteOwned(ctx context.Context, v restoreRef, obj client.Object) (bool, error) {
	return deleteLabelled(ctx, r.Client, r.APIReader, obj, map[string]string{
		tenancyv1alpha1.RestoreRunLabel: v.run.Name, tenancyv1alpha1.RestoreClaimLabel: v.name,
	})
}

func (r *RestoreReconciler) finishVolume(v restoreRef, status *tenancyv1alpha1.VolumeRestoreStatus, phase tenancyv1alpha1.VolumeBackupPhase, message string, now time.Time) {
	status.Phase, status.Message = phase, message
	status.CompletionTime = &metav1.Time{Time: now}
	outcome := map[bool]string{true: "succeeded", false: "failed"}[phase == tenancyv1alpha1.VolumeBackupSucceeded]
	volumesRestored.WithLabelValues(outcome).Inc()
	if phase == tenancyv1alpha1.VolumeBackupSucceeded {
		r.Recorder.Eventf(v.run, nil, corev1.EventTypeNormal, "VolumeRestored", "Restore",
			"volume %s restored from backup %s into claim %s (PersistentVolume %s)", v.volume.Source, v.volume.BackupID, v.volume.Claim, status.VolumeName)
		return
	}
	status.Step = StepCleanup
	r.Recorder.Eventf(v.run, nil, corev1.EventTypeWarning, "VolumeRestoreFailed", "Restore", "volume %s: %s", v.volume.Claim, message)
}

// finishIfDone ends the run once every volume is bound or cleaned up.
func (r *RestoreReconciler) finishIfDone(run *tenancyv1alpha1.WorkspaceRestore) {
	var restored, failedClaims []string
	for _, v := range run.Status.Volumes {
		if v.Step != StepDone {
			return
		}
		if v.Phase == tenancyv1alpha1.VolumeBackupSucceeded {
			restored = append(restored, v.Claim)
		} else {
			failedClaims = append(failedClaims, v.Claim)
		}
	}
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	switch {
	case len(failedClaims) == 0:
		run.Status.Phase = tenancyv1alpha1.RestoreRunSucceeded
		message := fmt.Sprintf("all %d volumes restored: %s", len(restored), strings.Join(restored, ", "))
		setRestoreComplete(run, metav1.ConditionTrue, "Succeeded", message)
		r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, "RestoreSucceeded", "Restore", "%s", message)
	case len(restored) == 0:
		run.Status.Phase = tenancyv1alpha1.RestoreRunFailed
		message := fmt.Sprintf("the restore failed for every volume: %s (see status.volumes)", strings.Join(failedClaims, ", "))
		setRestoreComplete(run, metav1.ConditionTrue, "Failed", message)
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "RestoreFailed", "Restore", "%s", message)
	default:
		run.Status.Phase = tenancyv1alpha1.RestoreRunPartiallyFailed
		message := fmt.Sprintf("%d volumes restored, failed: %s (see status.volumes)", len(restored), strings.Join(failedClaims, ", "))
		setRestoreComplete(run, metav1.ConditionTrue, "PartiallyFailed", message)
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "RestorePartiallyFailed", "Restore", "%s", message)
	}
}

func (r *RestoreReconciler) failRun(run *tenancyv1alpha1.WorkspaceRestore, reason, message string) {
	run.Status.Phase = tenancyv1alpha1.RestoreRunFailed
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	setRestoreComplete(run, metav1.ConditionTrue, reason, message)
	r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "RestoreFailed", "Restore", "%s", message)
}

func setRestoreComplete(run *tenancyv1alpha1.WorkspaceRestore, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&run.Status.Conditions, metav1.Condition{
		Type: tenancyv1alpha1.ConditionComplete, Status: status, Reason: reason, Message: message, ObservedGeneration: run.Generation,
	})
}

func restoreFinished(run *tenancyv1alpha1.WorkspaceRestore) bool {
	switch run.Status.Phase {
	case tenancyv1alpha1.RestoreRunSucceeded, tenancyv1alpha1.RestoreRunPartiallyFailed, tenancyv1alpha1.RestoreRunFailed:
		return true
	}
	return false
}

// reconcileDelete undoes every volume of a run deleted before it finished; a volume already
// bound to the workspace's claim stays.
func (r *RestoreReconciler) reconcileDelete(ctx context.Context, run *tenancyv1alpha1.WorkspaceRestore) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(run, tenancyv1alpha1.RestoreRunFinalizer) {
		return ctrl.Result{}, nil
	}
	allGone := true
	for _, s := range run.Status.Volumes {
		spec, ok := restoreVolumeSpec(run, s.Claim)
		if !ok || s.Step == StepDone {
			continue
		}
		gone, err := r.cleanup(ctx, newRestoreRef(run, spec))
		if err != nil {
			return ctrl.Result{}, err
		}
		allGone = allGone && gone
	}
	if !allGone {
		return ctrl.Result{RequeueAfter: r.Config.SlotRetry}, nil
	}
	controllerutil.RemoveFinalizer(run, tenancyv1alpha1.RestoreRunFinalizer)
	if err := r.Update(ctx, run); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// ensureMoverIdentity creates the workspace's mover ServiceAccount, as a backup run does.
func (r *RestoreReconciler) ensureMoverIdentity(ctx context.Context, run *tenancyv1alpha1.WorkspaceRestore) error {
	sa, err := r.Config.moverServiceAccount(run.Spec.Workspace, run.Status.Namespace)
	if err != nil {
		return err
	}
	return ensureMoverServiceAccount(ctx, r.Client, sa)
}

// SetupWithManager runs the restore reconciler and wakes a run when any of its objects
// changes, the workspace's claims included.
func (r *RestoreReconciler) SetupWithManager(mgr ctrl.Manager, options controller.Options) error {
	if err := r.Config.Validate(); err != nil {
		return fmt.Errorf("invalid mover configuration: %w", err)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	toRun := handler.EnqueueRequestsFromMapFunc(r.runForObject)
	return ctrl.NewControllerManagedBy(mgr).
		Named("workspacerestore").
		For(&tenancyv1alpha1.WorkspaceRestore{}).
		Watches(&corev1.Pod{}, toRun).
		Watches(&corev1.PersistentVolumeClaim{}, toRun).
		WithOptions(options).
		Complete(r)
}

func (r *RestoreReconciler) runForObject(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[tenancyv1alpha1.RestoreRunLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: r.Config.Namespace, Name: name}}}
}

func mergedLabels(labels, more map[string]string) map[string]string {
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range more {
		labels[k] = v
	}
	return labels
}
