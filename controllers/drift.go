package controllers

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// driftSchedule decides when a workspace's AWS resources are next read back from AWS.
// Reconciles triggered by Kubernetes events in between make no AWS calls. The schedule
// lives in memory: after a restart each workspace is checked at a random point within
// one interval, so that a thousand workspaces do not all call AWS at start-up.
type driftSchedule struct {
	mu       sync.Mutex
	next     map[types.UID]time.Time
	interval time.Duration
	clock    clock.PassiveClock
}

func newDriftSchedule(interval time.Duration, clk clock.PassiveClock) *driftSchedule {
	return &driftSchedule{next: map[types.UID]time.Time{}, interval: interval, clock: clk}
}

// due reports whether the workspace's AWS resources must be checked in this reconcile:
// on a new spec, on a reconcile request not handled yet, while a storage concern is not
// yet satisfied, and when the interval ran out.
func (d *driftSchedule) due(ws *tenancyv1alpha1.Workspace) bool {
	if !specObserved(ws) || reconcileRequest(ws) != "" ||
		!meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionEncryptionReady) ||
		!meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionBucketReady) {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next, known := d.next[ws.UID]
	if !known {
		d.next[ws.UID] = d.clock.Now().Add(rand.N(d.interval))
		return false
	}
	return !d.clock.Now().Before(next)
}

// checked schedules the next check one interval, plus up to a fifth of it, from now.
func (d *driftSchedule) checked(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next[uid] = d.clock.Now().Add(d.interval + rand.N(d.interval/5))
}

// until is how long until the workspace's next check, zero when none is scheduled.
func (d *driftSchedule) until(uid types.UID) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	next, ok := d.next[uid]
	if !ok {
		return 0
	}
	return max(next.Sub(d.clock.Now()), time.Second)
}

func (d *driftSchedule) forget(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.next, uid)
}

type awsCheckKey struct{}

// withAWSCheck records in ctx whether this reconcile reads AWS state back.
func withAWSCheck(ctx context.Context, due bool) context.Context {
	return context.WithValue(ctx, awsCheckKey{}, due)
}

func awsCheckDue(ctx context.Context) bool {
	due, _ := ctx.Value(awsCheckKey{}).(bool)
	return due
}
