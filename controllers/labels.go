package controllers

import (
	"context"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// managedLabels are the labels on every object the operator manages for ws. The cache
// selects on ManagedByLabel and the watches map WorkspaceLabel back to the Workspace.
func managedLabels(ws *tenancyv1alpha1.Workspace) map[string]string {
	return map[string]string{
		tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
		tenancyv1alpha1.WorkspaceLabel: ws.Name,
	}
}

// objectMeta names a managed object and labels it for ws.
func objectMeta(ws *tenancyv1alpha1.Workspace, namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: managedLabels(ws)}
}

// mergeLabels sets want's labels on live and keeps any label someone else added.
func mergeLabels(live client.Object, want map[string]string) {
	labels := live.GetLabels()
	if labels == nil {
		labels = make(map[string]string, len(want))
	}
	maps.Copy(labels, want)
	live.SetLabels(labels)
}

// belongsTo reports whether obj is labelled as managed for the Workspace named workspace.
func belongsTo(obj client.Object, workspace string) bool {
	labels := obj.GetLabels()
	return labels[tenancyv1alpha1.ManagedByLabel] == tenancyv1alpha1.ManagedByValue &&
		labels[tenancyv1alpha1.WorkspaceLabel] == workspace
}

// workspaceForObject maps a managed object to the Workspace that owns it. Children are
// linked by label rather than owner reference on purpose: an owner reference would let
// the garbage collector delete a tenant's namespace, and its firewall, whenever the
// Workspace object disappears, including when the CRD is uninstalled.
func workspaceForObject(_ context.Context, obj client.Object) []reconcile.Request {
	labels := obj.GetLabels()
	if labels[tenancyv1alpha1.ManagedByLabel] != tenancyv1alpha1.ManagedByValue {
		return nil
	}
	name := labels[tenancyv1alpha1.WorkspaceLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
}
