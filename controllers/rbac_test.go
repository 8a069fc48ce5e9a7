package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestDesiredOwnerRoleBinding(t *testing.T) {
	ws := newTestWorkspace("acme")
	ws.Spec.Owners = []tenancyv1alpha1.Owner{
		{Kind: tenancyv1alpha1.UserOwner, Name: "alice@acme.example"},
		{Kind: tenancyv1alpha1.GroupOwner, Name: "acme-admins"},
		{Kind: tenancyv1alpha1.ServiceAccountOwner, Name: "deployer", Namespace: "ci"},
	}
	got := desiredOwnerRoleBinding(ws, "ws-acme", "workspace-owner")

	wantSubjects := []rbacv1.Subject{
		{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice@acme.example"},
		{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "acme-admins"},
		{Kind: "ServiceAccount", Name: "deployer", Namespace: "ci"},
	}
	if diff := cmp.Diff(wantSubjects, got.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "workspace-owner"}
	if got.RoleRef != wantRef {
		t.Errorf("roleRef = %+v, want %+v", got.RoleRef, wantRef)
	}
	if got.Name != ownerRoleBindingName || got.Namespace != "ws-acme" {
		t.Errorf("name = %s/%s", got.Namespace, got.Name)
	}
}
