package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// markSuspended records that spec.suspend holds the operator back. The concern conditions
// keep what the operator last saw; Reconciling goes, since nothing is in progress, so that
// kstatus and Argo CD do not wait for a reconcile that will not come. The generation is
// observed: the operator has acted on the spec that says to leave the workspace alone.
func markSuspended(ws *tenancyv1alpha1.Workspace) {
	setCondition(ws, tenancyv1alpha1.ConditionSuspended, metav1.ConditionTrue, "Suspended",
		"spec.suspend is true: the operator does not reconcile this workspace, repair its drift or call AWS for it, "+
			"and its backup schedule stays as it is; set spec.suspend to false to resume")
	meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling)
	ws.Status.Phase = tenancyv1alpha1.PhaseSuspended
	ws.Status.ObservedGeneration = ws.Generation
}

// markResumed drops the Suspended condition of a workspace no longer suspended; the
// reconcile that follows recomputes the phase.
func markResumed(ws *tenancyv1alpha1.Workspace) {
	meta.RemoveStatusCondition(&ws.Status.Conditions, tenancyv1alpha1.ConditionSuspended)
}

// recordResumed emits the event for a workspace leaving suspension, which the condition
// transitions cannot show: the Suspended condition is removed rather than turned False.
func recordResumed(recorder events.EventRecorder, ws *tenancyv1alpha1.Workspace, before []metav1.Condition) {
	if meta.FindStatusCondition(before, tenancyv1alpha1.ConditionSuspended) != nil &&
		meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionSuspended) == nil {
		recorder.Eventf(ws, nil, corev1.EventTypeNormal, "Resumed", tenancyv1alpha1.ConditionSuspended,
			"spec.suspend is false: the operator reconciles the workspace again, AWS read-back included")
	}
}

// reconcileRequest is the value of the reconcile request annotation when it asks for a
// reconcile the operator has not handled yet, "" otherwise.
func reconcileRequest(ws *tenancyv1alpha1.Workspace) string {
	requested := ws.Annotations[tenancyv1alpha1.ReconcileRequestAnnotation]
	if requested == ws.Status.LastHandledReconcileAt {
		return ""
	}
	return requested
}

// reconcileRequested lets through the update that sets or changes the reconcile request
// annotation, which changes no generation.
type reconcileRequested struct{ predicate.Funcs }

func (reconcileRequested) Update(e event.UpdateEvent) bool {
	key := tenancyv1alpha1.ReconcileRequestAnnotation
	requested := e.ObjectNew.GetAnnotations()[key]
	return requested != "" && requested != e.ObjectOld.GetAnnotations()[key]
}
