package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// lookup reads obj from the cache and, when the cache does not have it, from the API
// server. The cache only holds objects labelled as managed by the operator, so an object
// someone else created, or whose labels were stripped, is found only by the live read.
func (r *WorkspaceReconciler) lookup(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := r.Get(ctx, key, obj)
	if !apierrors.IsNotFound(err) {
		return err
	}
	return r.APIReader.Get(ctx, key, obj)
}

// apply makes the live object named like desired match it: it creates a missing object and
// updates one whose managed fields differ, through mutate, which copies the fields the
// operator owns from desired onto live and leaves the rest alone. An object that already
// matches is not written, so a steady-state reconcile makes no writes.
func apply[T client.Object](ctx context.Context, r *WorkspaceReconciler, ws *tenancyv1alpha1.Workspace, desired T, mutate func(live T)) error {
	live := desired.DeepCopyObject().(T)
	changedByOthers := true
	result, err := controllerutil.CreateOrUpdate(ctx, r.Client, live, func() error {
		changedByOthers = lastWriter(live) != FieldOwner
		mutate(live)
		return nil
	})
	if apierrors.IsAlreadyExists(err) {
		// It exists but the cache cannot see it because its labels were removed: adopt it.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
			return err
		}
		mutate(live)
		result, err = controllerutil.OperationResultUpdated, r.Update(ctx, live)
	}
	if err != nil {
		return err
	}
	if result != controllerutil.OperationResultNone {
		kind := kindOf(r, desired)
		logf.FromContext(ctx).V(1).Info("applied", "kind", kind, "namespace", desired.GetNamespace(), "name", desired.GetName(), "operation", result)
		if specObserved(ws) && changedByOthers {
			// The spec has not changed since the last successful reconcile and someone else
			// wrote the object last (or deleted it): that is drift, not a change of the
			// operator's own making, such as a new StorageClass to zero in a quota.
			r.Recorder.Eventf(ws, nil, corev1.EventTypeWarning, "DriftRepaired", "Repair",
				"%s %s was %s outside the operator and has been restored", kind, objectRef(desired), driftVerb(result))
		}
	}
	return nil
}

// prune deletes the workspace's objects of list's kind in namespace that keep is false for.
func prune[L client.ObjectList](ctx context.Context, r *WorkspaceReconciler, ws *tenancyv1alpha1.Workspace, namespace string, list L, keep func(client.Object) bool) error {
	selector := client.MatchingLabels(managedLabels(ws))
	if err := r.List(ctx, list, client.InNamespace(namespace), selector); err != nil {
		return fmt.Errorf("list %T: %w", list, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return fmt.Errorf("extract %T: %w", list, err)
	}
	var errs []error
	for _, item := range items {
		obj := item.(client.Object)
		if keep(obj) {
			continue
		}
		if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", objectRef(obj), err))
			continue
		}
		logf.FromContext(ctx).Info("pruned", "kind", kindOf(r, obj), "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	return errors.Join(errs...)
}

// FieldOwner is the field manager of every write the operator makes.
const FieldOwner = "workspace-operator"

// lastWriter is the manager of the latest write to obj other than to its status, "" when
// the object is new.
func lastWriter(obj client.Object) string {
	if entry := latestWrite(obj.GetManagedFields()); entry != nil {
		return entry.Manager
	}
	return ""
}

// latestWrite is the entry of the latest write other than to a subresource, nil if none.
func latestWrite(entries []metav1.ManagedFieldsEntry) *metav1.ManagedFieldsEntry {
	var latest *metav1.ManagedFieldsEntry
	for i := range entries {
		entry := &entries[i]
		if entry.Subresource != "" || entry.Time == nil {
			continue
		}
		if latest == nil || !entry.Time.Before(latest.Time) {
			latest = entry
		}
	}
	return latest
}

// specObserved reports whether the last successful reconcile saw the current spec.
func specObserved(ws *tenancyv1alpha1.Workspace) bool {
	return ws.Status.ObservedGeneration == ws.Generation
}

func driftVerb(result controllerutil.OperationResult) string {
	if result == controllerutil.OperationResultCreated {
		return "deleted"
	}
	return "changed"
}

func objectRef(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

func kindOf(r *WorkspaceReconciler, obj client.Object) string {
	gvk, err := r.GroupVersionKindFor(obj)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}
