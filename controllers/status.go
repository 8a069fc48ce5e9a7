package controllers

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// concernConditions are the conditions Ready summarises, in the order a human should fix them.
var concernConditions = []string{
	tenancyv1alpha1.ConditionNamespaceReady,
	tenancyv1alpha1.ConditionNetworkIsolated,
	tenancyv1alpha1.ConditionQuotaApplied,
	tenancyv1alpha1.ConditionAccessGranted,
	tenancyv1alpha1.ConditionCertificateReady,
	tenancyv1alpha1.ConditionEncryptionReady,
	tenancyv1alpha1.ConditionBucketReady,
	tenancyv1alpha1.ConditionBackupsHealthy,
}

// concernError is a failed concern: its reason becomes the concern's condition reason.
// A terminal one cannot succeed until a human changes the spec or the cluster, so it
// stalls the Workspace instead of being retried with backoff.
type concernError struct {
	reason   string
	terminal bool
	err      error
}

func (e *concernError) Error() string { return e.err.Error() }
func (e *concernError) Unwrap() error { return e.err }

// failed is a transient failure, retried with backoff.
func failed(reason string, err error) error {
	return &concernError{reason: reason, err: err}
}

// stalled is a failure that needs a human; the message says what to do.
func stalled(reason, format string, args ...any) error {
	return &concernError{reason: reason, terminal: true, err: fmt.Errorf(format, args...)}
}

// isTerminal reports whether err needs a human before a retry can succeed.
func isTerminal(err error) bool {
	var ce *concernError
	return errors.As(err, &ce) && ce.terminal
}

// markFailed sets condition False from err's reason and message.
func markFailed(ws *tenancyv1alpha1.Workspace, condition string, err error) {
	reason := "ReconcileError"
	var ce *concernError
	if errors.As(err, &ce) {
		reason = ce.reason
	}
	setCondition(ws, condition, metav1.ConditionFalse, reason, err.Error())
}

func setCondition(ws *tenancyv1alpha1.Workspace, condition string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&ws.Status.Conditions, metav1.Condition{
		Type:               condition,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: ws.Generation,
	})
}

// summarize derives Ready, Reconciling, Stalled and the phase from the concern conditions.
// stalledBy is the terminal error that stopped the reconcile, if any. Reconciling and
// Stalled are present only while true, as kstatus expects of abnormal-true conditions.
func summarize(ws *tenancyv1alpha1.Workspace, stalledBy error) {
	wasReady := ws.Status.Phase == tenancyv1alpha1.PhaseReady || ws.Status.Phase == tenancyv1alpha1.PhaseDegraded

	var blocker *metav1.Condition
	for _, t := range concernConditions {
		c := meta.FindStatusCondition(ws.Status.Conditions, t)
		if c == nil {
			c = &metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: "Pending", Message: "not reconciled yet"}
		}
		if c.Status != metav1.ConditionTrue {
			blocker = c
			break
		}
	}

	if blocker == nil {
		setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready",
			"the workspace is isolated, within quota, accessible to its owners, encrypted at rest, backed up and served over HTTPS where requested")
	} else {
		setCondition(ws, tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, blocker.Reason,
			fmt.Sprintf("%s: %s", blocker.Type, blocker.Message))
	}

	switch {
	case stalledBy != nil:
		var ce *concernError
		reason := "Stalled"
		if errors.As(stalledBy, &ce) {
			reason = ce.reason
		}
		setCondition(ws, tenancyv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, stalledBy.Error())
		meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling)
	case blocker != nil:
		setCondition(ws, tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing",
			fmt.Sprintf("waiting for %s: %s", blocker.Type, blocker.Message))
		meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionStalled)
	default:
		meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionStalled)
	}

	switch {
	case stalledBy != nil:
		ws.Status.Phase = tenancyv1alpha1.PhaseFailed
	case blocker == nil:
		ws.Status.Phase = tenancyv1alpha1.PhaseReady
	case wasReady:
		ws.Status.Phase = tenancyv1alpha1.PhaseDegraded
	default:
		ws.Status.Phase = tenancyv1alpha1.PhaseProvisioning
	}
}

// recordTransitions emits an event for every condition whose status changed between
// before and after: Normal when it became true, Warning when it became false. A concern
// that is simply satisfied from the start gets none: Ready says so once, which keeps a
// thousand new workspaces from writing ten thousand events.
func recordTransitions(recorder events.EventRecorder, ws *tenancyv1alpha1.Workspace, before []metav1.Condition) {
	for _, c := range ws.Status.Conditions {
		if c.Type == tenancyv1alpha1.ConditionReconciling {
			continue
		}
		old := meta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		if old == nil && c.Status == metav1.ConditionTrue && c.Type != tenancyv1alpha1.ConditionReady &&
			c.Type != tenancyv1alpha1.ConditionStalled && c.Type != tenancyv1alpha1.ConditionSuspended {
			continue
		}
		eventType := corev1.EventTypeNormal
		if (c.Status == metav1.ConditionTrue) == (c.Type == tenancyv1alpha1.ConditionStalled) {
			eventType = corev1.EventTypeWarning
		}
		recorder.Eventf(ws, nil, eventType, c.Reason, c.Type, "%s is %s: %s", c.Type, c.Status, c.Message)
	}
}
