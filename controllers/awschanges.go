package controllers

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// maxEventNote is the longest note the events API accepts.
const maxEventNote = 1024

// awsChanges collects what one reconcile created and repaired in AWS, so that a new
// workspace gets one event naming its keys and buckets rather than one per resource. The
// events API folds repeated reasons on an object into a series that keeps only the first
// message, and every event is a write to the API server.
type awsChanges struct {
	created  []string
	repaired []string
}

type awsChangesKey struct{}

// withAWSChanges gives the reconcile in ctx a collector for its AWS changes.
func withAWSChanges(ctx context.Context) (context.Context, *awsChanges) {
	changes := &awsChanges{}
	return context.WithValue(ctx, awsChangesKey{}, changes), changes
}

// recordAWSCreated notes a resource created in AWS for the event that ends the
// reconcile. Every caller runs inside reconcileNormal, which collects.
func recordAWSCreated(ctx context.Context, format string, args ...any) {
	if changes, ok := ctx.Value(awsChangesKey{}).(*awsChanges); ok {
		changes.created = append(changes.created, fmt.Sprintf(format, args...))
	}
}

// recordAWSRepaired notes a resource found changed outside the operator and restored.
func recordAWSRepaired(ctx context.Context, format string, args ...any) {
	if changes, ok := ctx.Value(awsChangesKey{}).(*awsChanges); ok {
		changes.repaired = append(changes.repaired, fmt.Sprintf(format, args...))
	}
}

// emit writes at most one event for what was created and one for what was repaired.
func (c *awsChanges) emit(r *WorkspaceReconciler, ws *tenancyv1alpha1.Workspace) {
	if len(c.created) > 0 {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "AWSResourcesCreated", "Create", "%s",
			eventNote("created "+strings.Join(c.created, "; ")))
	}
	if len(c.repaired) > 0 {
		r.Recorder.Eventf(ws, nil, corev1.EventTypeWarning, "AWSDriftRepaired", "Repair", "%s",
			eventNote("changed outside the operator and restored: "+strings.Join(c.repaired, "; ")))
	}
}

// eventNote cuts note to what the events API accepts; the full list is in the status.
func eventNote(note string) string {
	if len(note) <= maxEventNote {
		return note
	}
	const ellipsis = "…"
	cut := maxEventNote - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + ellipsis
}
