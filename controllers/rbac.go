package controllers

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// ownerRoleBindingName is the RoleBinding that grants a workspace's owners access.
const ownerRoleBindingName = "workspace-owners"

// desiredOwnerRoleBinding binds the workspace's owners to the owner ClusterRole in its
// namespace. The role lets them run workloads but not touch the firewall, quotas or this
// binding, which the built-in admin role would allow.
func desiredOwnerRoleBinding(ws *tenancyv1alpha1.Workspace, namespace, clusterRole string) *rbacv1.RoleBinding {
	subjects := make([]rbacv1.Subject, 0, len(ws.Spec.Owners))
	for _, owner := range ws.Spec.Owners {
		subject := rbacv1.Subject{Kind: string(owner.Kind), Name: owner.Name}
		if owner.Kind == tenancyv1alpha1.ServiceAccountOwner {
			subject.Namespace = owner.Namespace
		} else {
			subject.APIGroup = rbacv1.GroupName
		}
		subjects = append(subjects, subject)
	}
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(ws, namespace, ownerRoleBindingName),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}
}

// reconcileAccess binds the owners to the owner ClusterRole.
func (r *WorkspaceReconciler) reconcileAccess(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	role := &rbacv1.ClusterRole{}
	if err := r.Get(ctx, client.ObjectKey{Name: r.Config.OwnerClusterRole}, role); apierrors.IsNotFound(err) {
		return stalled("OwnerRoleMissing",
			"ClusterRole %s does not exist, so owners would be granted nothing; install it with the operator's chart or config/rbac",
			r.Config.OwnerClusterRole)
	} else if err != nil {
		return failed("OwnerRoleUnavailable", fmt.Errorf("read ClusterRole %s: %w", r.Config.OwnerClusterRole, err))
	}

	binding := desiredOwnerRoleBinding(ws, namespace, r.Config.OwnerClusterRole)
	live := &rbacv1.RoleBinding{}
	err := r.Get(ctx, client.ObjectKeyFromObject(binding), live)
	if err == nil && live.RoleRef != binding.RoleRef {
		// roleRef is immutable: replace the binding to point it at another role.
		if err := r.Delete(ctx, live); client.IgnoreNotFound(err) != nil {
			return failed("RoleBindingFailed", fmt.Errorf("replace RoleBinding %s: %w", objectRef(binding), err))
		}
	}
	err = apply(ctx, r, ws, binding, func(live *rbacv1.RoleBinding) {
		mergeLabels(live, binding.Labels)
		live.RoleRef = binding.RoleRef
		live.Subjects = binding.Subjects
	})
	if err != nil {
		return failed("RoleBindingFailed", fmt.Errorf("apply RoleBinding %s: %w", objectRef(binding), err))
	}
	setCondition(ws, tenancyv1alpha1.ConditionAccessGranted, metav1.ConditionTrue, "OwnersBound",
		fmt.Sprintf("%d owners bound to ClusterRole %s in namespace %s", len(binding.Subjects), r.Config.OwnerClusterRole, namespace))
	return nil
}
