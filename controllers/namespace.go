package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Pod Security Admission labels: every workspace runs under the restricted profile.
const (
	podSecurityEnforce        = "pod-security.kubernetes.io/enforce"
	podSecurityEnforceVersion = "pod-security.kubernetes.io/enforce-version"
	podSecurityAudit          = "pod-security.kubernetes.io/audit"
	podSecurityWarn           = "pod-security.kubernetes.io/warn"
	podSecurityRestricted     = "restricted"
)

// namespaceName is the workspace's namespace. Once recorded in status it never changes,
// so a later change of the operator's prefix cannot move (and orphan) a tenant's data.
func namespaceName(ws *tenancyv1alpha1.Workspace, prefix string) string {
	switch {
	case ws.Spec.Namespace != "":
		return ws.Spec.Namespace
	case ws.Status.Namespace != "":
		return ws.Status.Namespace
	default:
		return prefix + ws.Name
	}
}

// desiredNamespace is the workspace's namespace with its workspace and Pod Security labels.
func desiredNamespace(ws *tenancyv1alpha1.Workspace, name string) *corev1.Namespace {
	meta := objectMeta(ws, "", name)
	meta.Labels[podSecurityEnforce] = podSecurityRestricted
	meta.Labels[podSecurityEnforceVersion] = "latest"
	meta.Labels[podSecurityAudit] = podSecurityRestricted
	meta.Labels[podSecurityWarn] = podSecurityRestricted
	meta.Labels[tenancyv1alpha1.StorageClassLabel] = storageClassName(name)
	return &corev1.Namespace{ObjectMeta: meta}
}

// reconcileNamespace creates the workspace's namespace, or confirms the existing one is
// ours, and records its name in status. It returns the namespace's name.
func (r *WorkspaceReconciler) reconcileNamespace(ctx context.Context, ws *tenancyv1alpha1.Workspace) (string, error) {
	name := namespaceName(ws, r.Config.NamespacePrefix)
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", stalled("InvalidNamespaceName",
			"namespace name %q is not a valid DNS label (%s); set spec.namespace to a shorter name", name, errs[0])
	}

	live := &corev1.Namespace{}
	err := r.lookup(ctx, client.ObjectKey{Name: name}, live)
	adopting := false
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return "", failed("NamespaceUnavailable", fmt.Errorf("read namespace %s: %w", name, err))
	case !belongsTo(live, ws.Name):
		if err := claimNamespace(live, ws.Name); err != nil {
			return "", err
		}
		adopting = true
	}
	if err == nil && live.DeletionTimestamp != nil {
		// Someone deleted the namespace behind the operator's back. Its contents are going
		// and cannot be saved; recreate it once the namespace controller has finished.
		return "", failed("NamespaceTerminating",
			fmt.Errorf("namespace %s is being deleted outside the operator; it is recreated empty once deletion finishes", name))
	}

	desired := desiredNamespace(ws, name)
	if err := apply(ctx, r, ws, desired, func(live *corev1.Namespace) { mergeLabels(live, desired.Labels) }); err != nil {
		return "", failed("NamespaceUnavailable", fmt.Errorf("apply namespace %s: %w", name, err))
	}
	if adopting {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "NamespaceAdopted", "Adopt",
			"adopted existing namespace %s, which the %s annotation gives to this workspace; its existing objects are kept and deleted with the workspace",
			name, tenancyv1alpha1.AdoptAnnotation)
	}
	ws.Status.Namespace = name
	setCondition(ws, tenancyv1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, "NamespaceCreated",
		fmt.Sprintf("namespace %s exists with the restricted Pod Security profile", name))
	return name, nil
}

// claimNamespace decides whether the workspace may take over live, a namespace that exists
// and is not labelled as its own. Only a namespace whose adopt annotation names the
// workspace is taken, and never one labelled for another workspace: an existing namespace
// may hold someone else's data, which the workspace's deletion would destroy.
func claimNamespace(live *corev1.Namespace, workspace string) error {
	labelled := live.Labels[tenancyv1alpha1.WorkspaceLabel]
	adopt := live.Annotations[tenancyv1alpha1.AdoptAnnotation]
	switch {
	case labelled != "" && labelled != workspace:
		return stalled("NamespaceConflict",
			"namespace %s belongs to workspace %s; set spec.namespace to another name", live.Name, labelled)
	case adopt == workspace:
		return nil
	case adopt != "":
		return stalled("NamespaceConflict",
			"namespace %s already exists and its %s annotation gives it to workspace %s, not %s; correct the annotation or set spec.namespace to another name",
			live.Name, tenancyv1alpha1.AdoptAnnotation, adopt, workspace)
	default:
		return stalled("NamespaceConflict",
			"namespace %s already exists and does not belong to this workspace; delete it, set spec.namespace to another name, "+
				"or let the workspace adopt it (and delete it with the workspace): kubectl annotate namespace %s %s=%s",
			live.Name, live.Name, tenancyv1alpha1.AdoptAnnotation, workspace)
	}
}
