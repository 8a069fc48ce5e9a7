// Package controllers reconciles Workspaces into isolated tenant namespaces.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// WorkspaceReconciler turns a Workspace into a namespace behind a default-deny firewall,
// with quotas, owner access and an HTTPS certificate.
type WorkspaceReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache: for objects the cache does
	// not hold and for every decision to delete something.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Config    Config
	// Keys and Buckets reach AWS; nil when the operator has no AWS region, in which case
	// the storage concerns report that encryption is not configured.
	Keys    KeyService
	Buckets BucketService
	// Clock times the AWS drift checks; the real clock when nil.
	Clock clock.PassiveClock

	drift            *driftSchedule
	ownWrites        *ownWrites
	deletions        *deletionProgress
	cache            cache.Cache
	controller       controller.Controller
	certificateWatch struct {
		sync.Mutex
		started bool
	}
}

// concern is one part of a workspace, reconciled on its own and reported by its condition.
type concern struct {
	condition string
	reconcile func(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error
}

// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspaces,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspaces/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspaces/finalizers,verbs=update
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacepurges,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacepurges/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenancy.workspace-operator.io,resources=workspacepurges/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=resourcequotas;limitranges,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;list;watch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=workspace-owner
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Workspace closer to its spec and writes its status once.
func (r *WorkspaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ws := &tenancyv1alpha1.Workspace{}
	if err := r.Get(ctx, req.NamespacedName, ws); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(ws) {
		return ctrl.Result{RequeueAfter: cacheLagRetry}, nil
	}

	// The finalizer goes on, and is persisted, before anything exists that it would have
	// to clean up.
	if ws.DeletionTimestamp.IsZero() && controllerutil.AddFinalizer(ws, tenancyv1alpha1.WorkspaceFinalizer) {
		if err := r.Update(ctx, ws); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		r.ownWrites.record(ws)
	}

	before := ws.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, before, ws); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	// A suspended workspace is still deleted when asked, as Flux finalises suspended
	// objects: the purge window keeps its data recoverable, and a finalizer that waited
	// for an un-suspend would block namespace deletion and GitOps pruning indefinitely.
	if !ws.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, ws)
	}
	if ws.Spec.Suspend {
		markSuspended(ws)
		return ctrl.Result{}, nil
	}
	markResumed(ws)
	return r.reconcileNormal(ctx, ws)
}

// reconcileNormal creates the namespace, then reconciles every other concern even when one
// fails, so that a missing ClusterRole never holds back the firewall.
func (r *WorkspaceReconciler) reconcileNormal(ctx context.Context, ws *tenancyv1alpha1.Workspace) (ctrl.Result, error) {
	undeleteFrom, err := r.checkPurgeRecords(ctx, ws)
	if err != nil {
		markFailed(ws, tenancyv1alpha1.ConditionNamespaceReady, err)
		return r.finish(ctx, ws, err)
	}
	namespace, err := r.reconcileNamespace(ctx, ws)
	if err != nil {
		markFailed(ws, tenancyv1alpha1.ConditionNamespaceReady, err)
		return r.finish(ctx, ws, err)
	}

	awsDue := r.drift.due(ws)
	if requested := reconcileRequest(ws); requested != "" {
		// Recorded once the pass that reads AWS back is under way: an earlier failure
		// leaves the request pending for the retry.
		ws.Status.LastHandledReconcileAt = requested
	}
	ctx = withAWSCheck(ctx, awsDue)
	ctx, changes := withAWSChanges(ctx)
	defer changes.emit(r, ws)
	var errs []error
	for _, c := range r.concerns() {
		if err := c.reconcile(ctx, ws, namespace); err != nil {
			markFailed(ws, c.condition, err)
			reconcileErrors.WithLabelValues(c.condition).Inc()
			errs = append(errs, fmt.Errorf("%s: %w", c.condition, err))
		}
	}
	var restoreErr error
	switch {
	case undeleteFrom != nil:
		restoreErr = r.reconcileUndelete(ctx, ws, namespace, undeleteFrom)
	case ws.Spec.Restore != nil:
		restoreErr = r.reconcileRestore(ctx, ws, namespace)
	}
	if restoreErr != nil {
		markFailed(ws, tenancyv1alpha1.ConditionRestored, restoreErr)
		errs = append(errs, fmt.Errorf("%s: %w", tenancyv1alpha1.ConditionRestored, restoreErr))
	}
	if awsDue && meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionEncryptionReady) &&
		meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionBucketReady) {
		r.drift.checked(ws.UID)
	}
	return r.finish(ctx, ws, errors.Join(errs...))
}

func (r *WorkspaceReconciler) concerns() []concern {
	return []concern{
		{tenancyv1alpha1.ConditionNetworkIsolated, r.reconcileNetworkPolicies},
		{tenancyv1alpha1.ConditionQuotaApplied, r.reconcileQuota},
		{tenancyv1alpha1.ConditionAccessGranted, r.reconcileAccess},
		{tenancyv1alpha1.ConditionCertificateReady, r.reconcileCertificate},
		{tenancyv1alpha1.ConditionEncryptionReady, r.reconcileEncryption},
		{tenancyv1alpha1.ConditionBucketReady, r.reconcileBuckets},
		{tenancyv1alpha1.ConditionBackupsHealthy, r.reconcileBackups},
	}
}

// finish summarises the conditions and decides how to retry. Terminal errors are not
// returned: retrying them with backoff would only hammer the API server, so the Workspace
// is marked Stalled and looked at again after a long interval.
func (r *WorkspaceReconciler) finish(ctx context.Context, ws *tenancyv1alpha1.Workspace, err error) (ctrl.Result, error) {
	switch {
	case err == nil:
		summarize(ws, nil)
		ws.Status.ObservedGeneration = ws.Generation
		return ctrl.Result{RequeueAfter: r.nextVisit(ws)}, nil
	case isTerminal(err) && !hasTransient(err):
		summarize(ws, err)
		ws.Status.ObservedGeneration = ws.Generation
		logf.FromContext(ctx).Info("workspace stalled until its spec or the cluster changes", "reason", err.Error(), "retryAfter", r.Config.StalledRetryInterval)
		return ctrl.Result{RequeueAfter: r.Config.StalledRetryInterval}, nil
	default:
		summarize(ws, nil)
		return ctrl.Result{}, err
	}
}

// nextVisit is when a Workspace needs a reconcile that no watch event will trigger: its
// next AWS drift check, or the moment its backups turn stale. Kubernetes drift arrives
// through the watches.
func (r *WorkspaceReconciler) nextVisit(ws *tenancyv1alpha1.Workspace) time.Duration {
	next := r.drift.until(ws.UID)
	if deadline := nextBackupDeadline(ws, r.Config.Backup.StaleAfter).Sub(r.Clock.Now()); deadline > 0 && (next == 0 || deadline < next) {
		next = deadline + time.Second
	}
	return next
}

// hasTransient reports whether err, possibly a join of several, contains a retryable error.
func hasTransient(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if hasTransient(e) {
				return true
			}
		}
		return false
	}
	return !isTerminal(err)
}

// patchStatus writes the status once per reconcile, and not at all when nothing changed.
func (r *WorkspaceReconciler) patchStatus(ctx context.Context, before, ws *tenancyv1alpha1.Workspace) error {
	if equality.Semantic.DeepEqual(before.Status, ws.Status) {
		return nil
	}
	recordTransitions(r.Recorder, ws, before.Status.Conditions)
	recordResumed(r.Recorder, ws, before.Status.Conditions)
	err := r.Status().Patch(ctx, ws, client.MergeFrom(before))
	if apierrors.IsNotFound(err) {
		return nil // deleted once its finalizer was released
	}
	if err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	if ws.DeletionTimestamp.IsZero() || controllerutil.ContainsFinalizer(ws, tenancyv1alpha1.WorkspaceFinalizer) {
		r.ownWrites.record(ws)
	}
	return nil
}

// SetupWithManager watches Workspaces and the objects the operator manages for them.
func (r *WorkspaceReconciler) SetupWithManager(mgr ctrl.Manager, options controller.Options) error {
	if err := r.Config.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	r.cache = mgr.GetCache()
	r.Client = client.WithFieldOwner(keepServerManagedFields{r.Client}, FieldOwner)
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.drift = newDriftSchedule(r.Config.Storage.DriftCheckInterval, r.Clock)
	r.ownWrites = newOwnWrites()
	r.deletions = newDeletionProgress()
	toWorkspace := handler.EnqueueRequestsFromMapFunc(workspaceForObject)
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.Workspace{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			deletionStarted{},
			reconcileRequested{},
		))).
		Watches(&corev1.Namespace{}, toWorkspace).
		Watches(&networkingv1.NetworkPolicy{}, toWorkspace).
		Watches(&corev1.ResourceQuota{}, toWorkspace, builder.WithPredicates(quotaSpecChanged{})).
		Watches(&corev1.LimitRange{}, toWorkspace).
		Watches(&rbacv1.RoleBinding{}, toWorkspace).
		Watches(&corev1.ServiceAccount{}, toWorkspace).
		Watches(&batchv1.CronJob{}, toWorkspace).
		Watches(&batchv1.Job{}, toWorkspace, builder.WithPredicates(jobFinished{})).
		Watches(&tenancyv1alpha1.WorkspaceRestore{}, toWorkspace, builder.WithPredicates(restorePhaseChanged{})).
		Watches(&storagev1.StorageClass{}, handler.EnqueueRequestsFromMapFunc(r.workspacesForStorageClass)).
		WithOptions(options).
		Build(r)
	if err != nil {
		return err
	}
	r.controller = c
	return nil
}

// deletionStarted lets through the update that sets a Workspace's deletion timestamp.
type deletionStarted struct{ predicate.Funcs }

func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// jobFinished lets through a Job's creation, deletion and the update that finishes it;
// the operator only reads a Job's outcome.
type jobFinished struct{ predicate.Funcs }

func (jobFinished) Update(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*batchv1.Job)
	updated, okNew := e.ObjectNew.(*batchv1.Job)
	return !okOld || !okNew || (finishedJob(old) == nil) != (finishedJob(updated) == nil)
}

// restorePhaseChanged lets through a restore run's creation, deletion and the updates that
// move its phase, which the Restored condition reports.
type restorePhaseChanged struct{ predicate.Funcs }

func (restorePhaseChanged) Update(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*tenancyv1alpha1.WorkspaceRestore)
	updated, okNew := e.ObjectNew.(*tenancyv1alpha1.WorkspaceRestore)
	return !okOld || !okNew || old.Status.Phase != updated.Status.Phase
}

// quotaSpecChanged ignores ResourceQuota status updates, which the API server makes every
// time a pod starts or stops in the namespace.
type quotaSpecChanged struct{ predicate.Funcs }

func (quotaSpecChanged) Update(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*corev1.ResourceQuota)
	updated, okNew := e.ObjectNew.(*corev1.ResourceQuota)
	if !okOld || !okNew {
		return true
	}
	return !equality.Semantic.DeepEqual(old.Spec, updated.Spec) ||
		!equality.Semantic.DeepEqual(old.Labels, updated.Labels)
}

// workspacesForStorageClass maps a workspace's own StorageClass to its Workspace, and any
// other StorageClass to every Workspace: each quota gives the cluster's other classes zero
// storage, so one appearing or going changes them all.
func (r *WorkspaceReconciler) workspacesForStorageClass(ctx context.Context, obj client.Object) []reconcile.Request {
	if requests := workspaceForObject(ctx, obj); requests != nil {
		return requests
	}
	var list tenancyv1alpha1.WorkspaceList
	if err := r.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "list Workspaces for a StorageClass change", "storageClass", obj.GetName())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, ws := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ws)})
	}
	return requests
}
