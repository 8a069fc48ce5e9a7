package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// requeueWhileDeleting is how often a deletion in progress is checked when no watch event
// arrives first. The one step that waits, for the namespace to be gone, is woken by the
// namespace watch; this is the safety net, and every pass repeats the steps' live reads.
const requeueWhileDeleting = 30 * time.Second

// The operator's CustomResourceDefinitions, whose own deletion must not destroy tenant data.
const (
	workspaceCRDName      = "workspaces.tenancy.workspace-operator.io"
	workspacePurgeCRDName = "workspacepurges.tenancy.workspace-operator.io"
)

// deletionStep is one step of secure deletion. It reports done once the live state shows
// the step complete; until then the Workspace keeps its finalizer and is checked again.
type deletionStep struct {
	name string
	run  func(ctx context.Context, ws *tenancyv1alpha1.Workspace) (done bool, err error)
}

// deletionSteps are the secure deletion of a workspace, in order. The purge record comes
// first, so that whatever happens next is on record; the keys are scheduled for deletion
// next, so that the 7 days start as close to the deletion request as possible.
func (r *WorkspaceReconciler) deletionSteps() []deletionStep {
	return []deletionStep{
		{"RecordPurge", r.recordPurge},
		{"StopBackups", r.stopBackups},
		{"ScheduleKeyDeletion", r.onPurgeRecord(r.scheduleKeyDeletion)},
		{"CloseBuckets", r.onPurgeRecord(r.closeBuckets)},
		{"DeleteNamespace", r.deleteNamespace},
		{"DeleteStorageClass", r.deleteStorageClass},
		{"DeleteSnapshotClass", r.deleteSnapshotClass},
		{"HandOverToPurge", r.onPurgeRecord(r.handOverToPurge)},
	}
}

// reconcileDelete runs the deletion steps in order and releases the finalizer when all are
// confirmed done. Every destructive decision is taken from a live read, never the cache.
// A step confirmed done is not run again by this process: while the namespace terminates,
// each of its objects' deletions wakes the workspace, and re-running the earlier steps
// cost a dozen live reads and AWS calls every time. After a restart all steps run again.
func (r *WorkspaceReconciler) reconcileDelete(ctx context.Context, ws *tenancyv1alpha1.Workspace) (ctrl.Result, error) {
	ws.Status.Phase = tenancyv1alpha1.PhaseDeleting
	if !controllerutil.ContainsFinalizer(ws, tenancyv1alpha1.WorkspaceFinalizer) {
		return ctrl.Result{}, nil
	}

	uninstalling, err := crdBeingDeleted(ctx, r.APIReader, workspaceCRDName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if uninstalling {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeWarning, "UninstallDetected", "Delete",
			"the Workspace CRD is being deleted: namespace %s and its data are left in place", ws.Status.Namespace)
		return ctrl.Result{}, r.releaseFinalizer(ctx, ws)
	}

	for i, step := range r.deletionSteps() {
		if i < r.deletions.confirmed(ws.UID) {
			continue
		}
		done, err := step.run(ctx, ws)
		if err != nil {
			setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, step.name+"Failed", err.Error())
			return ctrl.Result{}, fmt.Errorf("%s: %w", step.name, err)
		}
		if !done {
			return ctrl.Result{RequeueAfter: requeueWhileDeleting}, nil
		}
		r.deletions.confirm(ws.UID, i+1)
	}
	r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "Deleted", "Delete",
		"namespace %s is gone and the data is pending purge (WorkspacePurge %s); releasing the finalizer", ws.Status.Namespace, purgeName(ws))
	r.drift.forget(ws.UID)
	r.ownWrites.forget(ws.UID)
	r.deletions.forget(ws.UID)
	return ctrl.Result{}, r.releaseFinalizer(ctx, ws)
}

// deleteNamespace deletes the workspace's namespace and reports done once a live read
// shows it gone. A namespace that is not labelled for this workspace is never deleted.
func (r *WorkspaceReconciler) deleteNamespace(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
	name := namespaceName(ws, r.Config.NamespacePrefix)
	namespace := &corev1.Namespace{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, namespace)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read namespace %s: %w", name, err)
	case !belongsTo(namespace, ws.Name):
		logf.FromContext(ctx).Info("leaving namespace that does not belong to the workspace", "namespace", name)
		return true, nil
	case namespace.DeletionTimestamp == nil:
		if err := r.Delete(ctx, namespace, client.Preconditions{UID: &namespace.UID}); client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("delete namespace %s: %w", name, err)
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "DeletingNamespace", "Delete",
			"deleting namespace %s and everything in it", name)
	}
	setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "Deleting",
		fmt.Sprintf("waiting for namespace %s to be deleted", name))
	setCondition(ws, tenancyv1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, "NamespaceTerminating",
		fmt.Sprintf("namespace %s is terminating", name))
	return false, nil
}

// crdBeingDeleted reports whether a CRD of the operator is itself being deleted, in which
// case the API server is deleting every object of it and the operator must not shred anything.
func crdBeingDeleted(ctx context.Context, reader client.Reader, name string) (bool, error) {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(apiextensionsCRDKind)
	if err := reader.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return false, fmt.Errorf("read CustomResourceDefinition %s: %w", name, err)
	}
	return !crd.DeletionTimestamp.IsZero(), nil
}

func (r *WorkspaceReconciler) releaseFinalizer(ctx context.Context, ws *tenancyv1alpha1.Workspace) error {
	base := ws.DeepCopy()
	controllerutil.RemoveFinalizer(ws, tenancyv1alpha1.WorkspaceFinalizer)
	if err := r.Patch(ctx, ws, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

var apiextensionsCRDKind = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// deleteStorageClass deletes the workspace's StorageClass once its namespace, and so every
// claim using it, is gone. StorageClasses are cluster-scoped and outlive the namespace.
func (r *WorkspaceReconciler) deleteStorageClass(ctx context.Context, ws *tenancyv1alpha1.Workspace) (bool, error) {
	name := storageClassName(namespaceName(ws, r.Config.NamespacePrefix))
	class := &storagev1.StorageClass{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, class)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read StorageClass %s: %w", name, err)
	case !belongsTo(class, ws.Name):
		return true, nil
	}
	if err := r.Delete(ctx, class, client.Preconditions{UID: &class.UID}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete StorageClass %s: %w", name, err)
	}
	return true, nil
}

// deletionProgress remembers, per deleting workspace, how many deletion steps are
// confirmed done.
type deletionProgress struct {
	mu    sync.Mutex
	steps map[types.UID]int
}

func newDeletionProgress() *deletionProgress {
	return &deletionProgress{steps: map[types.UID]int{}}
}

func (d *deletionProgress) confirmed(uid types.UID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.steps[uid]
}

func (d *deletionProgress) confirm(uid types.UID, steps int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.steps[uid] = steps
}

func (d *deletionProgress) forget(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.steps, uid)
}
