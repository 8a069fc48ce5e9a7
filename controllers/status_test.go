package controllers

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func withConcerns(ws *tenancyv1alpha1.Workspace, failing map[string]string) {
	for _, t := range concernConditions {
		if reason, ok := failing[t]; ok {
			setCondition(ws, t, metav1.ConditionFalse, reason, "it failed")
		} else {
			setCondition(ws, t, metav1.ConditionTrue, "Fine", "fine")
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name            string
		failing         map[string]string
		previousPhase   tenancyv1alpha1.WorkspacePhase
		stalledBy       error
		wantPhase       tenancyv1alpha1.WorkspacePhase
		wantReady       metav1.ConditionStatus
		wantReadyReason string
		wantReconciling bool
		wantStalled     bool
	}{
		{
			name: "all concerns true", wantPhase: tenancyv1alpha1.PhaseReady,
			wantReady: metav1.ConditionTrue, wantReadyReason: "Ready",
		},
		{
			name: "first failing concern in order explains Ready", failing: map[string]string{
				tenancyv1alpha1.ConditionCertificateReady: "Issuing", tenancyv1alpha1.ConditionQuotaApplied: "ResourceQuotaFailed",
			},
			wantPhase: tenancyv1alpha1.PhaseProvisioning, wantReady: metav1.ConditionFalse, wantReadyReason: "ResourceQuotaFailed",
			wantReconciling: true,
		},
		{
			name: "a Ready workspace that fails is Degraded", failing: map[string]string{tenancyv1alpha1.ConditionNetworkIsolated: "NetworkPolicyFailed"},
			previousPhase: tenancyv1alpha1.PhaseReady,
			wantPhase:     tenancyv1alpha1.PhaseDegraded, wantReady: metav1.ConditionFalse, wantReadyReason: "NetworkPolicyFailed",
			wantReconciling: true,
		},
		{
			name: "terminal error stalls", failing: map[string]string{tenancyv1alpha1.ConditionNamespaceReady: "NamespaceConflict"},
			stalledBy: stalled("NamespaceConflict", "namespace taken"),
			wantPhase: tenancyv1alpha1.PhaseFailed, wantReady: metav1.ConditionFalse, wantReadyReason: "NamespaceConflict",
			wantStalled: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Status.Phase = tt.previousPhase
			withConcerns(ws, tt.failing)
			summarize(ws, tt.stalledBy)

			if ws.Status.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", ws.Status.Phase, tt.wantPhase)
			}
			ready := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionReady)
			if ready.Status != tt.wantReady || ready.Reason != tt.wantReadyReason {
				t.Errorf("Ready = %s/%s, want %s/%s", ready.Status, ready.Reason, tt.wantReady, tt.wantReadyReason)
			}
			if got := meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling); got != tt.wantReconciling {
				t.Errorf("Reconciling = %v, want %v", got, tt.wantReconciling)
			}
			if got := meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionStalled); got != tt.wantStalled {
				t.Errorf("Stalled = %v, want %v", got, tt.wantStalled)
			}
			for _, c := range ws.Status.Conditions {
				if c.ObservedGeneration != ws.Generation {
					t.Errorf("%s observedGeneration = %d, want %d", c.Type, c.ObservedGeneration, ws.Generation)
				}
			}
		})
	}
}

func TestSummarizeRemovesReconcilingOnceReady(t *testing.T) {
	ws := newTestWorkspace("acme")
	withConcerns(ws, map[string]string{tenancyv1alpha1.ConditionCertificateReady: "Issuing"})
	summarize(ws, nil)
	withConcerns(ws, nil)
	summarize(ws, nil)
	for _, gone := range []string{tenancyv1alpha1.ConditionReconciling, tenancyv1alpha1.ConditionStalled} {
		if c := meta.FindStatusCondition(ws.Status.Conditions, gone); c != nil {
			t.Errorf("%s still present: %+v", gone, c)
		}
	}
}

func TestHasTransient(t *testing.T) {
	terminal := stalled("OwnerRoleMissing", "no role")
	transient := failed("NetworkPolicyFailed", errors.New("conflict"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"terminal only", terminal, false},
		{"transient only", transient, true},
		{"joined terminal errors", errors.Join(terminal, terminal), false},
		{"one transient among terminal", errors.Join(terminal, transient), true},
		{"plain error", errors.New("boom"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasTransient(tt.err); got != tt.want {
				t.Errorf("hasTransient = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRecordTransitionsOnlyOnChange(t *testing.T) {
	ws := newTestWorkspace("acme")
	withConcerns(ws, map[string]string{tenancyv1alpha1.ConditionAccessGranted: "OwnerRoleMissing"})
	summarize(ws, stalled("OwnerRoleMissing", "no role"))
	before := append([]metav1.Condition(nil), ws.Status.Conditions...)

	recorder := events.NewFakeRecorder(100)
	recordTransitions(recorder, ws, nil)
	first := drain(recorder)
	for _, want := range []string{"Warning OwnerRoleMissing AccessGranted", "Warning OwnerRoleMissing Stalled", "Warning OwnerRoleMissing Ready"} {
		if !containsPrefix(first, want) {
			t.Errorf("no %q event among %v", want, first)
		}
	}
	if containsPrefix(first, "Normal Fine") {
		t.Errorf("concerns satisfied from the start emitted events: %v", first)
	}

	recordTransitions(recorder, ws, before)
	if again := drain(recorder); len(again) != 0 {
		t.Errorf("unchanged conditions emitted %v", again)
	}

	withConcerns(ws, nil)
	summarize(ws, nil)
	recordTransitions(recorder, ws, before)
	got := drain(recorder)
	want := []string{"Normal Fine AccessGranted", "Normal Ready Ready"}
	if diff := cmp.Diff(want, prefixes(got, 3)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func containsPrefix(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func prefixes(events []string, words int) []string {
	out := make([]string, 0, len(events))
	for _, e := range events {
		fields := strings.Fields(e)
		out = append(out, strings.Join(fields[:min(words, len(fields))], " "))
	}
	return out
}
