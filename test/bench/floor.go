package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Phase is one timed step over N workspaces.
type Phase struct {
	// Seconds is the wall time from the first request to the last workspace done.
	Seconds float64 `json:"seconds"`
	// PerWorkspace is each workspace's own time, from its first request to done.
	PerWorkspace Percentiles `json:"perWorkspaceSeconds"`
	// CPU seconds each process used over Seconds.
	CPU cpuUsage `json:"cpuSeconds"`
	// Requests covers Seconds and the settle time after it.
	Requests Requests `json:"requests"`
	// Etcd is etcd's backend at the end of the phase.
	Etcd *EtcdSize `json:"etcd,omitempty"`
}

// FloorResult is the floor: the same objects, written by a client that knows what to
// write, with nothing running that reconciles them.
type FloorResult struct {
	Create Phase `json:"create"`
	Delete Phase `json:"delete"`
	// WritesPerWorkspace is what the floor writes for one workspace: the Workspace,
	// every object, one status.
	WritesPerWorkspace int `json:"writesPerWorkspace"`
	// LargestQuotaBytes is the JSON size of the largest ResourceQuota written.
	LargestQuotaBytes int `json:"largestQuotaBytes"`
}

func (e *env) runFloor(ctx context.Context, calib *Calibration) (*FloorResult, error) {
	names := workspaceNames(floorPrefix, e.cfg.workspaces)
	if err := e.resetEtcd(ctx); err != nil {
		return nil, err
	}
	classes, err := e.storageClasses(ctx)
	if err != nil {
		return nil, err
	}
	f := &FloorResult{WritesPerWorkspace: len(calib.templates) + 2}
	logf("floor: writing %d workspaces × %d objects with %d workers", len(names), f.WritesPerWorkspace, e.cfg.workers)

	before, err := e.snapshot(ctx, nil)
	if err != nil {
		return nil, err
	}
	started, done := newTimestamps(), newTimestamps()
	var quotaBytes maxInt
	cpu := e.cpuNow(nil)
	start := time.Now()
	err = parallel(ctx, e.cfg.workers, len(names), func(ctx context.Context, i int) error {
		started.set(names[i], time.Now())
		if err := e.writeFloorWorkspace(ctx, calib, names[i], classes, &quotaBytes); err != nil {
			return err
		}
		done.set(names[i], time.Now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.Create.Seconds = time.Since(start).Seconds()
	f.Create.CPU = cpuDelta(e.cpuNow(nil), cpu)
	f.Create.PerWorkspace = percentiles(durations(started.all(), done.all()))
	f.LargestQuotaBytes = quotaBytes.get()
	created, err := e.snapshot(ctx, nil)
	if err != nil {
		return nil, err
	}
	f.Create.Requests = requestsBetween(before, created)
	f.Create.Etcd = e.measureEtcd(ctx)
	logf("floor: wrote %d workspaces in %.1fs", len(names), f.Create.Seconds)

	if err := e.deleteFloor(ctx, calib, names, &f.Delete); err != nil {
		return nil, err
	}
	deleted, err := e.snapshot(ctx, nil)
	if err != nil {
		return nil, err
	}
	f.Delete.Requests = requestsBetween(created, deleted)
	logf("floor: deleted %d workspaces and their namespaces in %.1fs", len(names), f.Delete.Seconds)
	return f, nil
}

// writeFloorWorkspace writes, one after the other, what the operator writes for a
// workspace: the Workspace (the user's write), every object and one status.
func (e *env) writeFloorWorkspace(ctx context.Context, calib *Calibration, name string, classes *classSet, quotaBytes *maxInt) error {
	ws := benchWorkspace(name)
	if err := e.client.Create(ctx, ws); err != nil {
		return fmt.Errorf("create Workspace %s: %w", name, err)
	}
	objs, err := calib.instantiate(name)
	if err != nil {
		return err
	}
	var own string
	for _, obj := range objs {
		if obj.GetKind() == "StorageClass" {
			own = obj.GetName()
		}
	}
	// The operator's first reconcile zeroes the StorageClasses that exist by then; whether
	// that includes other workspaces' classes, the calibration found out.
	var others []string
	if calib.ZeroesWorkspaceClasses {
		others = classes.others(own)
	}
	for _, obj := range objs {
		if obj.GetKind() == "ResourceQuota" {
			if err := zeroClasses(obj.Object, others, "spec", "hard"); err != nil {
				return err
			}
			data, _ := json.Marshal(obj.Object)
			quotaBytes.observe(len(data))
		}
		if err := e.client.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		if obj.GetKind() == "StorageClass" {
			classes.add(obj.GetName())
		}
	}
	status, err := floorStatus(calib.status(name), others)
	if err != nil {
		return err
	}
	if err := e.client.Status().Patch(ctx, ws, client.RawPatch(types.MergePatchType, status)); err != nil {
		return fmt.Errorf("write status of Workspace %s: %w", name, err)
	}
	return nil
}

// zeroClasses gives every class in classes zero storage in the quota's hard limits at
// fields, as the operator's quota did for every StorageClass but the workspace's own that
// existed when it reconciled (controllers/quota.go, desiredResourceQuota, before 8ac1d57).
func zeroClasses(obj map[string]any, classes []string, fields ...string) error {
	hard, _, err := unstructured.NestedMap(obj, fields...)
	if err != nil {
		return err
	}
	if hard == nil {
		hard = map[string]any{}
	}
	for _, class := range classes {
		hard[class+".storageclass.storage.k8s.io/requests.storage"] = "0"
		hard[class+".storageclass.storage.k8s.io/persistentvolumeclaims"] = "0"
	}
	return unstructured.SetNestedMap(obj, hard, fields...)
}

// floorStatus is the calibration status with the quota the workspace got, which status
// repeats.
func floorStatus(patch []byte, classes []string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(patch, &obj); err != nil {
		return nil, err
	}
	if err := zeroClasses(obj, classes, "status", "quota", "hard"); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// deleteFloor deletes each floor workspace, its namespace and its StorageClass, and
// waits until kube-controller-manager has emptied and removed every namespace: what the
// operator's deletion must wait for as well.
func (e *env) deleteFloor(ctx context.Context, calib *Calibration, names []string, phase *Phase) error {
	issued := newTimestamps()
	namespaces := make([]string, len(names))
	cpu := e.cpuNow(nil)
	start := time.Now()
	err := parallel(ctx, e.cfg.workers, len(names), func(ctx context.Context, i int) error {
		objs, err := calib.instantiate(names[i])
		if err != nil {
			return err
		}
		toDelete := []client.Object{&tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}}
		for _, obj := range objs {
			switch obj.GetKind() {
			case "Namespace":
				namespaces[i] = obj.GetName()
				toDelete = append(toDelete, obj)
			case "StorageClass":
				toDelete = append(toDelete, obj)
			}
		}
		for _, obj := range toDelete {
			if err := client.IgnoreNotFound(e.client.Delete(ctx, obj)); err != nil {
				return fmt.Errorf("delete %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
			}
		}
		issued.set(namespaces[i], time.Now())
		return nil
	})
	if err != nil {
		return err
	}
	stopProgress := e.tracker.reportProgress("floor namespaces gone", namespaceGoneTimes, namespaces)
	gone, err := e.tracker.waitAll(ctx, namespaceGoneTimes, namespaces)
	stopProgress()
	if err != nil {
		return fmt.Errorf("floor namespaces: %w", err)
	}
	phase.CPU = cpuDelta(e.cpuNow(nil), cpu)
	last := latest(gone, namespaces)
	phase.Seconds = last.Sub(start).Seconds()
	phase.PerWorkspace = percentiles(durations(issued.all(), gone))
	return nil
}

func (e *env) storageClasses(ctx context.Context) (*classSet, error) {
	var list storagev1.StorageClassList
	if err := e.client.List(ctx, &list); err != nil {
		return nil, err
	}
	s := &classSet{}
	for _, c := range list.Items {
		s.add(c.Name)
	}
	return s, nil
}

// classSet is the StorageClasses that exist, as the floor's writers create them.
type classSet struct {
	mu    sync.Mutex
	names []string
}

func (s *classSet) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, name)
}

func (s *classSet) others(own string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.names))
	for _, n := range s.names {
		if n != own {
			out = append(out, n)
		}
	}
	return out
}

type maxInt struct {
	mu sync.Mutex
	v  int
}

func (m *maxInt) observe(v int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.v = max(m.v, v)
}

func (m *maxInt) get() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v
}
