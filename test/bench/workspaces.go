package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Name prefixes of the phases. They are as long as each other, so that every phase's
// objects, whose names and labels embed the workspace name, have the same size. A phase
// never reuses another's names: a deleted workspace's purge record holds its name.
const (
	calibrationName = "benchcalib"
	neighbourName   = "benchneigh"
	// neighbourClass is the neighbour's StorageClass, as controllers/storage.go names it.
	neighbourClass = "ws-" + neighbourName + "-encrypted"
	floorPrefix    = "floor"
	operatorPrefix = "bench"
	defaultsPrefix = "dflts"
	probePrefix    = "probe"
)

func workspaceNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return names
}

// benchWorkspace is the acme sample: two owners, the small tier and one egress rule, so
// that it gets all five NetworkPolicies. It asks for no certificate: no cert-manager runs.
func benchWorkspace(name string) *tenancyv1alpha1.Workspace {
	return &tenancyv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.WorkspaceSpec{
			Owners: []tenancyv1alpha1.Owner{
				{Kind: tenancyv1alpha1.UserOwner, Name: "alice@" + name + ".example"},
				{Kind: tenancyv1alpha1.GroupOwner, Name: name + "-admins"},
			},
			Quota: tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.SmallTier},
			Network: tenancyv1alpha1.NetworkSpec{Egress: []tenancyv1alpha1.EgressRule{{
				CIDR:  "10.20.0.0/16",
				Ports: []tenancyv1alpha1.EgressPort{{Port: 5432}},
			}}},
		},
	}
}

// parallel runs fn for 0..n-1 on at most workers goroutines and returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}

// timestamps collects a time per name from concurrent workers.
type timestamps struct {
	mu    sync.Mutex
	times map[string]time.Time
}

func newTimestamps() *timestamps { return &timestamps{times: map[string]time.Time{}} }

func (t *timestamps) set(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.times[name] = at
}

func (t *timestamps) all() map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]time.Time, len(t.times))
	for k, v := range t.times {
		out[k] = v
	}
	return out
}

// createWorkspaces creates the named Workspaces with the bench's workers and returns
// when each create call returned: the moment the Workspace existed for the operator.
func (e *env) createWorkspaces(ctx context.Context, names []string) (map[string]time.Time, error) {
	created := newTimestamps()
	err := parallel(ctx, e.cfg.workers, len(names), func(ctx context.Context, i int) error {
		if err := e.client.Create(ctx, benchWorkspace(names[i])); err != nil {
			return fmt.Errorf("create Workspace %s: %w", names[i], err)
		}
		created.set(names[i], time.Now())
		return nil
	})
	return created.all(), err
}

// deleteWorkspaces deletes the named Workspaces and returns when each delete call returned.
func (e *env) deleteWorkspaces(ctx context.Context, names []string) (map[string]time.Time, error) {
	deleted := newTimestamps()
	err := parallel(ctx, e.cfg.workers, len(names), func(ctx context.Context, i int) error {
		ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		if err := client.IgnoreNotFound(e.client.Delete(ctx, ws)); err != nil {
			return fmt.Errorf("delete Workspace %s: %w", names[i], err)
		}
		deleted.set(names[i], time.Now())
		return nil
	})
	return deleted.all(), err
}
