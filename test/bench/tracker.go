package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// tracker timestamps, from watch events, when each Workspace first becomes Ready and when
// Workspaces and managed namespaces disappear. The Ready condition's lastTransitionTime
// has a resolution of one second and is stamped by the operator; the watch sees the
// change as any client would, within milliseconds.
type tracker struct {
	cancel context.CancelFunc

	mu      sync.Mutex
	ready   map[string]time.Time
	wsGone  map[string]time.Time
	nsGone  map[string]time.Time
	changed chan struct{} // closed and replaced on every change, to wake waiters
}

func startTracker(ctx context.Context, cfg *rest.Config) (*tracker, error) {
	managed := labels.SelectorFromSet(labels.Set{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue})
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Namespace{}: {Label: managed},
		},
	})
	if err != nil {
		return nil, err
	}
	t := &tracker{
		ready:   map[string]time.Time{},
		wsGone:  map[string]time.Time{},
		nsGone:  map[string]time.Time{},
		changed: make(chan struct{}),
	}
	if err := t.watch(ctx, c, &tenancyv1alpha1.Workspace{}, t.onWorkspace, t.wsGone); err != nil {
		return nil, err
	}
	if err := t.watch(ctx, c, &corev1.Namespace{}, func(client.Object) {}, t.nsGone); err != nil {
		return nil, err
	}
	ctx, t.cancel = context.WithCancel(ctx)
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.cancel()
		return nil, fmt.Errorf("the bench's watches did not sync")
	}
	return t, nil
}

// watch calls seen for every added or updated object of obj's kind and records in gone
// when one is deleted.
func (t *tracker) watch(ctx context.Context, c cache.Cache, obj client.Object, seen func(client.Object), gone map[string]time.Time) error {
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { seen(o.(client.Object)) },
		UpdateFunc: func(_, o any) { seen(o.(client.Object)) },
		DeleteFunc: func(o any) {
			if tombstone, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = tombstone.Obj
			}
			if obj, ok := o.(client.Object); ok {
				t.record(gone, obj.GetName(), time.Now())
			}
		},
	})
	return err
}

func (t *tracker) onWorkspace(obj client.Object) {
	if ws, ok := obj.(*tenancyv1alpha1.Workspace); ok && isReady(ws) {
		t.record(t.ready, ws.Name, time.Now())
	}
}

// isReady is the readiness make dev and the e2e suite wait for: the current spec has
// been reconciled and every concern is satisfied.
func isReady(ws *tenancyv1alpha1.Workspace) bool {
	return ws.Status.ObservedGeneration == ws.Generation &&
		ws.Status.Phase == tenancyv1alpha1.PhaseReady &&
		meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionReady)
}

// record keeps the first time of name in times.
func (t *tracker) record(times map[string]time.Time, name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := times[name]; seen {
		return
	}
	times[name] = at
	close(t.changed)
	t.changed = make(chan struct{})
}

// waitAll waits until every name has a time in the map that pick chooses, and returns
// those times.
func (t *tracker) waitAll(ctx context.Context, pick func(*tracker) map[string]time.Time, names []string) (map[string]time.Time, error) {
	for {
		t.mu.Lock()
		times, changed := pick(t), t.changed
		out := make(map[string]time.Time, len(names))
		missing := 0
		for _, name := range names {
			if at, ok := times[name]; ok {
				out[name] = at
			} else {
				missing++
			}
		}
		t.mu.Unlock()
		if missing == 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("%d of %d still waited for: %w", missing, len(names), context.Cause(ctx))
		case <-changed:
		}
	}
}

// count is how many of names have a time in the map pick chooses.
func (t *tracker) count(pick func(*tracker) map[string]time.Time, names []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	times, n := pick(t), 0
	for _, name := range names {
		if _, ok := times[name]; ok {
			n++
		}
	}
	return n
}

// reportProgress logs every interval how many of names are what, until stop is called:
// long phases should not look hung.
func (t *tracker) reportProgress(what string, pick func(*tracker) map[string]time.Time, names []string) (stop func()) {
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(15 * time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				logf("  %d of %d %s", t.count(pick, names), len(names), what)
			}
		}
	}()
	return func() { close(done) }
}

func readyTimes(t *tracker) map[string]time.Time         { return t.ready }
func workspaceGoneTimes(t *tracker) map[string]time.Time { return t.wsGone }
func namespaceGoneTimes(t *tracker) map[string]time.Time { return t.nsGone }

func (t *tracker) stop() {
	if t.cancel != nil {
		t.cancel()
	}
}
