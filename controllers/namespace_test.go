package controllers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNamespaceName(t *testing.T) {
	tests := []struct {
		name, spec, status, prefix, want string
	}{
		{name: "derived from the prefix", prefix: "ws-", want: "ws-acme"},
		{name: "spec wins", spec: "acme-prod", status: "ws-acme", prefix: "ws-", want: "acme-prod"},
		{name: "status keeps it when the prefix changes", status: "ws-acme", prefix: "tenant-", want: "ws-acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Namespace = tt.spec
			ws.Status.Namespace = tt.status
			if got := namespaceName(ws, tt.prefix); got != tt.want {
				t.Errorf("namespaceName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDesiredNamespaceIsRestricted(t *testing.T) {
	got := desiredNamespace(newTestWorkspace("acme"), "ws-acme")
	want := map[string]string{
		"app.kubernetes.io/managed-by":                "workspace-operator",
		"tenancy.workspace-operator.io/workspace":     "acme",
		"pod-security.kubernetes.io/enforce":          "restricted",
		"pod-security.kubernetes.io/enforce-version":  "latest",
		"pod-security.kubernetes.io/audit":            "restricted",
		"pod-security.kubernetes.io/warn":             "restricted",
		"tenancy.workspace-operator.io/storage-class": "ws-acme-encrypted",
	}
	if diff := cmp.Diff(want, got.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got.Name != "ws-acme" {
		t.Errorf("name = %q", got.Name)
	}
}

func TestLastWriterIgnoresStatusWrites(t *testing.T) {
	at := func(minute int) *metav1.Time {
		return &metav1.Time{Time: time.Date(2026, 11, 20, 12, minute, 0, 0, time.UTC)}
	}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate, Time: at(1)},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(2)},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: at(3)},
	}}}
	if got := lastWriter(quota); got != "kubectl-edit" {
		t.Errorf("lastWriter = %q, want kubectl-edit (status writes do not count)", got)
	}
	quota.ManagedFields = append(quota.ManagedFields, metav1.ManagedFieldsEntry{Manager: FieldOwner, Time: at(4)})
	if got := lastWriter(quota); got != FieldOwner {
		t.Errorf("lastWriter = %q, want %s", got, FieldOwner)
	}
	if got := lastWriter(&corev1.ResourceQuota{}); got != "" {
		t.Errorf("lastWriter of a new object = %q", got)
	}
}

func TestCachedObjectsKeepOnlyTheirLastWriter(t *testing.T) {
	at := func(minute int) *metav1.Time {
		return &metav1.Time{Time: time.Date(2026, 11, 20, 12, minute, 0, 0, time.UTC)}
	}
	fields := metav1.NewFieldsV1(`{"f:spec":{"f:hard":{}}}`)
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate, Time: at(1), FieldsType: "FieldsV1", FieldsV1: fields},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(2), FieldsType: "FieldsV1", FieldsV1: fields},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: at(3), FieldsType: "FieldsV1", FieldsV1: fields},
	}}}
	if _, err := dropManagedFieldSets(quota); err != nil {
		t.Fatal(err)
	}
	want := []metav1.ManagedFieldsEntry{{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(2)}}
	if diff := cmp.Diff(want, quota.ManagedFields); diff != "" {
		t.Errorf("cached managedFields (-want +got):\n%s", diff)
	}

	created := &corev1.ResourceQuota{}
	if _, err := dropManagedFieldSets(created); err != nil || created.ManagedFields != nil {
		t.Errorf("an object without managedFields got %v, %v", created.ManagedFields, err)
	}
}
