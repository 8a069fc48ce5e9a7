package datamover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
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
	"github.com/workspace-operator/workspace-operator/internal/backup"
)

// Config is how the operator runs movers.
type Config struct {
	// Namespace is the operator's mover namespace: privileged, out of every tenant's reach.
	Namespace string
	// Image and Command run the backup agent: the operator's own binary.
	Image   string
	Command []string
	// Env is set on the agent's container: the AWS SDK endpoint settings the operator runs
	// with, so that the agent resolves the same endpoints.
	Env []corev1.EnvVar
	// S3PathStyle has the agent address buckets in the URL path, as the operator does.
	S3PathStyle bool
	// Concurrency is how many volumes may be between their snapshot and the end of their
	// cleanup at once, across every run: each holds a snapshot, a volume and a pod.
	Concurrency int
	// VolumeTimeout bounds one volume's backup, from its snapshot to its upload.
	VolumeTimeout time.Duration
	// SlotRetry is how often a volume waiting for a slot looks again.
	SlotRetry time.Duration
	// RoleARN gives the IAM role of a workspace's mover ServiceAccount from the workspace
	// and its namespace, "" for none.
	RoleARN func(workspace, namespace string) (string, error)
}

// DefaultConfig is the mover configuration the operator runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Namespace:     "workspace-operator-mover",
		Concurrency:   4,
		VolumeTimeout: 6 * time.Hour,
		SlotRetry:     10 * time.Second,
	}
}

// Validate reports a setting that would make runs impossible.
func (c Config) Validate() error {
	switch {
	case c.Namespace == "":
		return errors.New("the mover namespace must be set")
	case c.Image == "" || len(c.Command) == 0:
		return errors.New("the mover image and command must be set")
	case c.Concurrency < 1:
		return fmt.Errorf("mover concurrency %d must be at least 1", c.Concurrency)
	case c.VolumeTimeout < time.Minute:
		return fmt.Errorf("mover volume timeout %s is under a minute", c.VolumeTimeout)
	case c.SlotRetry <= 0:
		return fmt.Errorf("mover slot retry %s must be positive", c.SlotRetry)
	}
	return nil
}

// Reconciler runs WorkspaceBackups: it decides which step of each volume is next, and
// reports it.
type Reconciler struct {
	client.Client
	// APIReader reads from the API server: every step confirms its result from there.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    Config
	// Executor runs the pre-backup hooks that application pods ask for.
	Executor PodExecutor
}

// +kubebuilder:rbac:groups="",resources=pods/exec,verbs=get;create
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacebackups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacebackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacebackups/finalizers,verbs=update
// +kubebuilder:rbac:groups=snapshot.storage.k8s.io,resources=volumesnapshots;volumesnapshotcontents;volumesnapshotclasses,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get

// Reconcile advances one run and writes its status once.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// The run is read live: which objects to create and delete follows from its status,
	// which only this reconciler writes, and the cache may not show the last write yet.
	run := &tenancyv1alpha1.WorkspaceBackup{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if run.DeletionTimestamp.IsZero() && controllerutil.AddFinalizer(run, tenancyv1alpha1.BackupRunFinalizer) {
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
	case finished(run):
		return ctrl.Result{}, nil
	case run.Status.BackupID == "":
		return r.resolve(ctx, run)
	}
	return r.advance(ctx, run)
}

// resolve freezes the run's inputs from the Workspace: its namespace, encrypted class,
// locations, retention and claims. Nothing is created before they are recorded.
func (r *Reconciler) resolve(ctx context.Context, run *tenancyv1alpha1.WorkspaceBackup) (ctrl.Result, error) {
	ws := &tenancyv1alpha1.Workspace{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: run.Spec.Workspace}, ws)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(run, "WorkspaceNotFound", fmt.Sprintf("Workspace %s does not exist", run.Spec.Workspace))
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("read Workspace %s: %w", run.Spec.Workspace, err)
	case !ws.DeletionTimestamp.IsZero():
		r.fail(run, "WorkspaceDeleting", fmt.Sprintf("Workspace %s is being deleted", ws.Name))
		return ctrl.Result{}, nil
	}
	inputs, missing := runInputs(ws)
	if missing != "" {
		run.Status.Phase = tenancyv1alpha1.BackupRunPending
		setComplete(run, metav1.ConditionFalse, "WorkspaceNotReady", fmt.Sprintf("waiting for Workspace %s: %s", ws.Name, missing))
		return ctrl.Result{RequeueAfter: r.Config.SlotRetry}, nil
	}
	var claims corev1.PersistentVolumeClaimList
	if err := r.APIReader.List(ctx, &claims, client.InNamespace(inputs.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("list PersistentVolumeClaims in %s: %w", inputs.Namespace, err)
	}
	now := metav1.NewTime(r.Clock.Now())
	inputs.BackupID = now.UTC().Format(backup.BackupIDLayout)
	inputs.StartTime = &now
	inputs.Phase = tenancyv1alpha1.BackupRunRunning
	for _, claim := range claims.Items {
		if claim.DeletionTimestamp.IsZero() {
			inputs.Volumes = append(inputs.Volumes, tenancyv1alpha1.VolumeBackupStatus{Claim: claim.Name, Phase: tenancyv1alpha1.VolumeBackupPending})
		}
	}
	if inputs.FilesBucket != "" {
		inputs.Files = &tenancyv1alpha1.VolumeBackupStatus{Phase: tenancyv1alpha1.VolumeBackupPending}
	}
	slices.SortFunc(inputs.Volumes, func(a, b tenancyv1alpha1.VolumeBackupStatus) int { return strings.Compare(a.Claim, b.Claim) })
	inputs.Conditions = run.Status.Conditions
	run.Status = inputs
	setComplete(run, metav1.ConditionFalse, "Running", fmt.Sprintf("backing up %d volumes of namespace %s", len(inputs.Volumes), inputs.Namespace))
	r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, "BackupStarted", "Backup",
		"backup %s of workspace %s: %d volumes", inputs.BackupID, ws.Name, len(inputs.Volumes))
	return ctrl.Result{}, nil
}

// runInputs reads what a run needs from the Workspace's status, or says what is missing.
func runInputs(ws *tenancyv1alpha1.Workspace) (tenancyv1alpha1.WorkspaceBackupStatus, string) {
	var in tenancyv1alpha1.WorkspaceBackupStatus
	switch {
	case ws.Status.Namespace == "":
		return in, "its namespace is not created yet"
	case ws.Status.Encryption == nil || ws.Status.Encryption.StorageClassName == "":
		return in, "its encrypted StorageClass is not created yet"
	case ws.Status.Backup == nil || len(ws.Status.Backup.Locations) == 0:
		return in, "its backup buckets are not created yet"
	}
	if ws.Spec.Backup.IncludeFiles {
		if ws.Status.Storage == nil || len(ws.Status.Storage.Buckets) == 0 {
			return in, "its file bucket, which spec.backup.includeFiles backs up, is not created yet"
		}
		in.FilesBucket = ws.Status.Storage.Buckets[0].Name
	}
	in.Namespace = ws.Status.Namespace
	in.StorageClassName = ws.Status.Encryption.StorageClassName
	in.RetentionDays = ws.Status.Backup.RetentionDays
	for _, l := range ws.Status.Backup.Locations {
		alias := ""
		for _, k := range ws.Status.Encryption.Keys {
			if k.Region == l.Region && k.ARN != "" {
				alias = k.Alias
			}
		}
		if alias == "" {
			return tenancyv1alpha1.WorkspaceBackupStatus{}, fmt.Sprintf("its key in %s is not created yet", l.Region)
		}
		in.Locations = append(in.Locations, tenancyv1alpha1.BackupRunLocation{Region: l.Region, Bucket: l.Bucket, KeyAlias: alias})
	}
	return in, ""
}

// advance moves every volume as far as the live objects allow: a volume that fails is
// cleaned up and reported, and does not hold back the others.
func (r *Reconciler) advance(ctx context.Context, run *tenancyv1alpha1.WorkspaceBackup) (ctrl.Result, error) {
	if err := r.ensureRunPrerequisites(ctx, run); err != nil {
		return ctrl.Result{}, err
	}
	slots, inFlight, err := r.freeSlots(ctx, run)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	requeue := time.Duration(0)
	now := r.Clock.Now()
	for i := range run.Status.Volumes {
		status := &run.Status.Volumes[i]
		v := newVolumeRef(run, status.Claim)
		if status.Phase == tenancyv1alpha1.VolumeBackupPending {
			// A volume whose snapshot exists took its slot in a pass whose status write
			// was lost: it already counts as in flight.
			if !inFlight[v.name] {
				if slots == 0 {
					status.Message = fmt.Sprintf("waiting for a mover slot: %d volumes are being backed up, the limit", r.Config.Concurrency)
					requeue = r.Config.SlotRetry
					continue
				}
				slots--
			}
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
	// The file bucket holds no snapshot, volume or slot: only a pod that reads S3.
	if files := run.Status.Files; files != nil {
		if files.Phase == tenancyv1alpha1.VolumeBackupPending {
			files.Phase = tenancyv1alpha1.VolumeBackupRunning
			files.StartTime = &metav1.Time{Time: now}
		}
		wait, err := r.advanceVolume(ctx, newVolumeRef(run, ""), files, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("file bucket: %w", err))
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

// advanceVolume runs a volume's next steps. An outcome is recorded, and its cleanup left
// to the next pass: the status that says the upload is over must be written before the pod
// that proves it is deleted. It returns when to look again if no watch event comes first:
// the volume's deadline.
func (r *Reconciler) advanceVolume(ctx context.Context, v volumeRef, status *tenancyv1alpha1.VolumeBackupStatus, now time.Time) (time.Duration, error) {
	if status.Phase != tenancyv1alpha1.VolumeBackupRunning {
		if status.Step == StepDone {
			return 0, nil
		}
		gone, err := r.cleanup(ctx, v)
		if gone {
			status.Step = StepDone
		}
		return 0, err
	}
	for _, s := range r.stepsFor(v) {
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
	return 0, nil
}

// stepsFor are a volume's steps; the file bucket has only a mover.
func (r *Reconciler) stepsFor(v volumeRef) []step {
	if v.claim == "" {
		return []step{{StepMove, r.move}}
	}
	return r.backupSteps()
}

func (r *Reconciler) finishVolume(v volumeRef, status *tenancyv1alpha1.VolumeBackupStatus, phase tenancyv1alpha1.VolumeBackupPhase, message string, now time.Time) {
	status.Phase, status.Message, status.Step = phase, message, StepCleanup
	status.CompletionTime = &metav1.Time{Time: now}
	outcome := map[bool]string{true: "succeeded", false: "failed"}[phase == tenancyv1alpha1.VolumeBackupSucceeded]
	volumesFinished.WithLabelValues(outcome).Inc()
	volumeDuration.WithLabelValues(outcome).Observe(now.Sub(status.StartTime.Time).Seconds())
	if phase == tenancyv1alpha1.VolumeBackupSucceeded {
		volumeBytes.Add(float64(status.Bytes))
		r.Recorder.Eventf(v.run, nil, corev1.EventTypeNormal, "VolumeBackedUp", "Backup",
			"volume %s backed up as %s (%d bytes)", status.Claim, status.BackupID, status.Bytes)
		return
	}
	r.Recorder.Eventf(v.run, nil, corev1.EventTypeWarning, "VolumeBackupFailed", "Backup", "volume %s: %s", status.Claim, message)
}

// finishIfDone ends the run once every volume is cleaned up.
func (r *Reconciler) finishIfDone(run *tenancyv1alpha1.WorkspaceBackup) {
	var succeeded, failedClaims []string
	volumes := run.Status.Volumes
	if run.Status.Files != nil {
		volumes = append(slices.Clone(volumes), *run.Status.Files)
	}
	for _, v := range volumes {
		if v.Step != StepDone {
			return
		}
		name := v.Claim
		if name == "" {
			name = "the file bucket"
		}
		if v.Phase == tenancyv1alpha1.VolumeBackupSucceeded {
			succeeded = append(succeeded, name)
		} else {
			failedClaims = append(failedClaims, name)
		}
	}
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	switch {
	case len(failedClaims) == 0:
		run.Status.Phase = tenancyv1alpha1.BackupRunSucceeded
		setComplete(run, metav1.ConditionTrue, "Succeeded", fmt.Sprintf("backup %s: all %d volumes backed up", run.Status.BackupID, len(succeeded)))
		r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, "BackupSucceeded", "Backup", "backup %s: all %d volumes backed up", run.Status.BackupID, len(succeeded))
	case len(succeeded) == 0:
		run.Status.Phase = tenancyv1alpha1.BackupRunFailed
		message := fmt.Sprintf("backup %s failed for every volume: %s (see status.volumes)", run.Status.BackupID, strings.Join(failedClaims, ", "))
		setComplete(run, metav1.ConditionTrue, "Failed", message)
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "BackupFailed", "Backup", "%s", message)
	default:
		run.Status.Phase = tenancyv1alpha1.BackupRunPartiallyFailed
		message := fmt.Sprintf("backup %s: %d volumes backed up, failed: %s (see status.volumes)", run.Status.BackupID, len(succeeded), strings.Join(failedClaims, ", "))
		setComplete(run, metav1.ConditionTrue, "PartiallyFailed", message)
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "BackupPartiallyFailed", "Backup", "%s", message)
	}
}

// fail ends a run that never started.
func (r *Reconciler) fail(run *tenancyv1alpha1.WorkspaceBackup, reason, message string) {
	run.Status.Phase = tenancyv1alpha1.BackupRunFailed
	run.Status.CompletionTime = &metav1.Time{Time: r.Clock.Now()}
	setComplete(run, metav1.ConditionTrue, reason, message)
	r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, "BackupFailed", "Backup", "%s", message)
}

func setComplete(run *tenancyv1alpha1.WorkspaceBackup, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&run.Status.Conditions, metav1.Condition{
		Type: tenancyv1alpha1.ConditionComplete, Status: status, Reason: reason, Message: message, ObservedGeneration: run.Generation,
	})
}

func finished(run *tenancyv1alpha1.WorkspaceBackup) bool {
	switch run.Status.Phase {
	case tenancyv1alpha1.BackupRunSucceeded, tenancyv1alpha1.BackupRunPartiallyFailed, tenancyv1alpha1.BackupRunFailed:
		return true
	}
	return false
}

// reconcileDelete cleans up every volume of a run being deleted, then lets it go.
func (r *Reconciler) reconcileDelete(ctx context.Context, run *tenancyv1alpha1.WorkspaceBackup) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(run, tenancyv1alpha1.BackupRunFinalizer) {
		return ctrl.Result{}, nil
	}
	allGone := true
	claims := make([]string, 0, len(run.Status.Volumes)+1)
	for _, v := range run.Status.Volumes {
		claims = append(claims, v.Claim)
	}
	if run.Status.Files != nil {
		claims = append(claims, "")
	}
	for _, claim := range claims {
		gone, err := r.cleanup(ctx, newVolumeRef(run, claim))
		if err != nil {
			return ctrl.Result{}, err
		}
		allGone = allGone && gone
	}
	if !allGone {
		return ctrl.Result{RequeueAfter: r.Config.SlotRetry}, nil
	}
	controllerutil.RemoveFinalizer(run, tenancyv1alpha1.BackupRunFinalizer)
	if err := r.Update(ctx, run); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// ensureRunPrerequisites creates the workspace's mover identity and VolumeSnapshotClass.
func (r *Reconciler) ensureRunPrerequisites(ctx context.Context, run *tenancyv1alpha1.WorkspaceBackup) error {
	sa, err := r.Config.moverServiceAccount(run.Spec.Workspace, run.Status.Namespace)
	if err != nil {
		return err
	}
	if err := ensureMoverServiceAccount(ctx, r.Client, sa); err != nil {
		return err
	}

	class := &snapshotv1.VolumeSnapshotClass{}
	err = r.Get(ctx, client.ObjectKey{Name: snapshotClassName(run)}, class)
	switch {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("read VolumeSnapshotClass %s: %w", snapshotClassName(run), err)
	}
	storageClass := &storagev1.StorageClass{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: run.Status.StorageClassName}, storageClass); err != nil {
		return fmt.Errorf("read StorageClass %s, whose driver snapshots the volumes: %w", run.Status.StorageClassName, err)
	}
	return r.create(ctx, desiredSnapshotClass(run, storageClass.Provisioner))
}

// freeSlots counts the volumes in flight across every run, from a live list of the tenant
// snapshots (the first object a volume creates and the last it deletes). The run
// controller has one worker, so two runs never take the same slot.
// It also returns the names of the snapshots in flight.
func (r *Reconciler) freeSlots(ctx context.Context, run *tenancyv1alpha1.WorkspaceBackup) (int, map[string]bool, error) {
	pending := slices.ContainsFunc(run.Status.Volumes, func(v tenancyv1alpha1.VolumeBackupStatus) bool {
		return v.Phase == tenancyv1alpha1.VolumeBackupPending
	})
	if !pending {
		return 0, nil, nil
	}
	hasRun, err := labels.NewRequirement(tenancyv1alpha1.BackupRunLabel, selection.Exists, nil)
	if err != nil {
		return 0, nil, err
	}
	var snapshots snapshotv1.VolumeSnapshotList
	if err := r.APIReader.List(ctx, &snapshots, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*hasRun)}); err != nil {
		return 0, nil, fmt.Errorf("list VolumeSnapshots in flight: %w", err)
	}
	inFlight := map[string]bool{}
	for _, vs := range snapshots.Items {
		if vs.Namespace != r.Config.Namespace {
			inFlight[vs.Name] = true
		}
	}
	return max(r.Config.Concurrency-len(inFlight), 0), inFlight, nil
}

// moverSettings are the settings of a workspace's mover pods, backup or restore.
func (c Config) moverSettings(workspace string) moverSettings {
	return moverSettings{
		Image:          c.Image,
		Command:        c.Command,
		Env:            c.Env,
		S3PathStyle:    c.S3PathStyle,
		ServiceAccount: moverServiceAccountName(workspace),
		Timeout:        int64(c.VolumeTimeout / time.Second),
	}
}

// moverServiceAccount is a workspace's mover identity, with the IAM role the configuration
// gives it.
func (c Config) moverServiceAccount(workspace, namespace string) (*corev1.ServiceAccount, error) {
	roleARN := ""
	if c.RoleARN != nil {
		var err error
		if roleARN, err = c.RoleARN(workspace, namespace); err != nil {
			return nil, fmt.Errorf("mover role: %w", err)
		}
	}
	return desiredServiceAccount(workspace, c.Namespace, roleARN), nil
}

// SetupWithManager runs the reconciler with one worker (see freeSlots) and wakes a run
// when any of its objects changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, options controller.Options) error {
	if err := r.Config.Validate(); err != nil {
		return fmt.Errorf("invalid mover configuration: %w", err)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	options.MaxConcurrentReconciles = 1
	toRun := handler.EnqueueRequestsFromMapFunc(r.runForObject)
	return ctrl.NewControllerManagedBy(mgr).
		Named("workspacebackup").
		For(&tenancyv1alpha1.WorkspaceBackup{}).
		Watches(&corev1.Pod{}, toRun).
		Watches(&corev1.PersistentVolumeClaim{}, toRun).
		Watches(&snapshotv1.VolumeSnapshot{}, toRun).
		Watches(&snapshotv1.VolumeSnapshotContent{}, toRun).
		WithOptions(options).
		Complete(r)
}

// runForObject maps an object labelled for a run to the run.
func (r *Reconciler) runForObject(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[tenancyv1alpha1.BackupRunLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: r.Config.Namespace, Name: name}}}
}

// ensureMoverServiceAccount creates a workspace's mover identity, and gives an existing one
// the IAM role the operator's configuration names now (a changed role template must not
// leave movers on the old role).
func ensureMoverServiceAccount(ctx context.Context, c client.Client, desired *corev1.ServiceAccount) error {
	live := &corev1.ServiceAccount{}
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), live)
	switch {
	case apierrors.IsNotFound(err):
		return createIfAbsent(ctx, c, desired)
	case err != nil:
		return fmt.Errorf("read ServiceAccount %s: %w", client.ObjectKeyFromObject(desired), err)
	case live.Annotations[roleARNAnnotation] == desired.Annotations[roleARNAnnotation]:
		return nil
	}
	patched := live.DeepCopy()
	if role := desired.Annotations[roleARNAnnotation]; role != "" {
		if patched.Annotations == nil {
			patched.Annotations = map[string]string{}
		}
		patched.Annotations[roleARNAnnotation] = role
	} else {
		delete(patched.Annotations, roleARNAnnotation)
	}
	if err := c.Patch(ctx, patched, client.MergeFrom(live)); err != nil {
		return fmt.Errorf("update the IAM role of ServiceAccount %s: %w", client.ObjectKeyFromObject(desired), err)
	}
	return nil
}
