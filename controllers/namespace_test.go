package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
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
