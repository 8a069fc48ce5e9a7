package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestReconcileRequest(t *testing.T) {
	tests := []struct {
		name, annotation, handled, want string
	}{
		{name: "no annotation"},
		{name: "new request", annotation: "1764928800", want: "1764928800"},
		{name: "handled already", annotation: "1764928800", handled: "1764928800"},
		{name: "newer request", annotation: "1764929000", handled: "1764928800", want: "1764929000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			if tt.annotation != "" {
				ws.Annotations = map[string]string{tenancyv1alpha1.ReconcileRequestAnnotation: tt.annotation}
			}
			ws.Status.LastHandledReconcileAt = tt.handled
			if got := reconcileRequest(ws); got != tt.want {
				t.Errorf("reconcileRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMarkSuspended(t *testing.T) {
	ws := newTestWorkspace("acme")
	ws.Generation = 3
	ws.Status.ObservedGeneration = 2
	setCondition(ws, tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting")
	setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "KeyPending", "waiting for the key")

	markSuspended(ws)
	if ws.Status.Phase != tenancyv1alpha1.PhaseSuspended || ws.Status.ObservedGeneration != 3 {
		t.Errorf("phase %s, observedGeneration %d; want Suspended, 3", ws.Status.Phase, ws.Status.ObservedGeneration)
	}
	if c := condition2(ws.Status.Conditions, tenancyv1alpha1.ConditionSuspended); c.Status != metav1.ConditionTrue {
		t.Errorf("Suspended = %+v, want True", c)
	}
	if c := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling); c != nil {
		t.Errorf("Reconciling kept while suspended: %+v", c)
	}
	if c := condition2(ws.Status.Conditions, tenancyv1alpha1.ConditionReady); c.Reason != "KeyPending" {
		t.Errorf("Ready = %+v, want the last observed one kept", c)
	}

	markResumed(ws)
	if c := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionSuspended); c != nil {
		t.Errorf("Suspended kept after resuming: %+v", c)
	}
}

func TestClaimNamespace(t *testing.T) {
	ns := func(labels, annotations map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ws-acme", Labels: labels, Annotations: annotations}}
	}
	adopt := func(name string) map[string]string { return map[string]string{tenancyv1alpha1.AdoptAnnotation: name} }
	tests := []struct {
		name      string
		namespace *corev1.Namespace
		wantErr   string
	}{
		{name: "unannotated namespace is refused", namespace: ns(nil, nil),
			wantErr: "kubectl annotate namespace ws-acme tenancy.workspace-operator.io/adopt=acme"},
		{name: "annotated for this workspace is adopted", namespace: ns(nil, adopt("acme"))},
		{name: "annotated for another workspace is refused", namespace: ns(nil, adopt("other")),
			wantErr: "gives it to workspace other, not acme"},
		{name: "labelled for another workspace is refused even when annotated",
			namespace: ns(map[string]string{tenancyv1alpha1.WorkspaceLabel: "other"}, adopt("acme")),
			wantErr:   "belongs to workspace other"},
		{name: "stripped managed-by label, annotated", namespace: ns(map[string]string{tenancyv1alpha1.WorkspaceLabel: "acme"}, adopt("acme"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := claimNamespace(tt.namespace, "acme")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("claimNamespace = %v, want adopted", err)
			case tt.wantErr != "" && (err == nil || !isTerminal(err) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("claimNamespace = %v, want a NamespaceConflict containing %q", err, tt.wantErr)
			}
		})
	}
}
