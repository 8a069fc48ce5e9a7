package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// OperatorResult is the operator provisioning, holding and deleting N workspaces.
type OperatorResult struct {
	Flags  operatorFlags `json:"flags"`
	Create Phase         `json:"create"`
	// ConvergedSeconds is from the first create until the operator's work queue is
	// empty with nothing in flight: when provisioning has really finished.
	ConvergedSeconds float64 `json:"convergedSeconds"`
	// Steady is a quiet period after every workspace is Ready and the settle time passed.
	Steady *Requests `json:"steady,omitempty"`
	// Probes are workspaces created one at a time once the N are steady: the latency a
	// single new workspace sees on a loaded operator.
	Probes        *Percentiles `json:"probeTimeToReadySeconds,omitempty"`
	ProbeDeletion *Percentiles `json:"probeDeletionSeconds,omitempty"`
	ProbeRequests *Requests    `json:"probeRequests,omitempty"`
	Delete        Phase        `json:"delete"`
	Memory        Memory       `json:"memory"`
	// Cache is the size of what the operator's informers hold once all are Ready.
	Cache *CacheFootprint `json:"cacheFootprint,omitempty"`
	// Sizes of sample objects after provisioning, in bytes of JSON.
	LargestQuotaBytes     int `json:"largestQuotaBytes"`
	LargestWorkspaceBytes int `json:"largestWorkspaceBytes"`
	// Profiles are the files -pprof and -perf wrote: Go profiles, each followed by its
	// go tool pprof -top summary, and perf reports of kube-apiserver.
	Profiles []string `json:"profiles,omitempty"`
}

// runOperator starts a fresh operator and has it provision, then delete, N Workspaces
// named prefix-NNNN. full adds the steady state and the probes.
func (e *env) runOperator(ctx context.Context, flags operatorFlags, prefix, logName string, full bool) (*OperatorResult, error) {
	if err := e.resetEtcd(ctx); err != nil {
		return nil, err
	}
	op, err := e.startOperator(ctx, flags, logName)
	if err != nil {
		return nil, err
	}
	defer op.stop()
	r := &OperatorResult{Flags: flags}
	names := workspaceNames(prefix, e.cfg.workspaces)

	idle, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	r.Memory.IdleRSS, _ = rssMiB(op.Pid())
	r.Memory.IdleHeap = heapMiB(idle.operator)
	heap := sampleHeap(ctx, op.MetricsURL(), 2*time.Second)
	defer func() {
		r.Memory.PeakHeap, r.Memory.HeapSamples = heap.stop()
		_, r.Memory.PeakRSS = rssMiB(op.Pid())
	}()

	// On error r holds what was measured before it.
	ready, err := e.provisionAll(ctx, op, names, r, idle)
	if err != nil {
		return r, err
	}
	if full {
		if ready, err = e.steadyAndProbes(ctx, op, r, ready); err != nil {
			return r, err
		}
	}
	return r, e.deleteAll(ctx, op, names, r, ready)
}

// provisionAll creates the Workspaces and waits until the watch has seen every one Ready,
// then lets the reconciles their last writes trigger run out before it counts.
func (e *env) provisionAll(ctx context.Context, op *runningOperator, names []string, r *OperatorResult, before *snapshot) (*snapshot, error) {
	logf("%s: creating %d workspaces with %d workers", op.logName, len(names), e.cfg.workers)
	cpuProfile := e.profileOperatorCPU(ctx, op, op.logName+"-create")
	stopPerf := e.perfAPIServer(op.logName+"-create", &r.Profiles)
	stopProgress := e.tracker.reportProgress("Ready", readyTimes, names)
	cpu := e.cpuNow(op)
	start := time.Now()
	created, err := e.createWorkspaces(ctx, names)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, e.cfg.readyTimeout)
	defer cancel()
	ready, err := e.tracker.waitAll(waitCtx, readyTimes, names)
	r.Create.CPU = cpuDelta(e.cpuNow(op), cpu)
	stopProgress()
	stopPerf()
	if err != nil {
		return nil, fmt.Errorf("workspaces not Ready after %s (log: %s): %w", e.cfg.readyTimeout, op.LogPath(), err)
	}
	last := latest(ready, names)
	r.Create.Seconds = last.Sub(start).Seconds()
	r.Create.PerWorkspace = percentiles(durations(created, ready))
	logf("%s: %d workspaces Ready in %.1fs (p50 %.2fs, p99 %.2fs)", op.logName, len(names), r.Create.Seconds, r.Create.PerWorkspace.P50, r.Create.PerWorkspace.P99)

	// Ready is not done: reconciles the last writes triggered may still be queued, and
	// they write too. The steady state starts once the queue has drained.
	_, r.Memory.PeakRSSAfterCreate = rssMiB(op.Pid())
	if err := op.waitIdle(waitCtx); err != nil {
		// The steady state that follows shows what it was still doing.
		logf("%s: %v", op.logName, err)
	} else {
		r.ConvergedSeconds = time.Since(start).Seconds()
		logf("%s: work queue drained %.1fs after the first create", op.logName, r.ConvergedSeconds)
	}
	time.Sleep(e.cfg.settle)
	// Waited for here, not when all are Ready, so that a phase shorter than the profile
	// does not delay ConvergedSeconds.
	cpuProfile.wait(&r.Profiles)
	e.profileOperatorHeap(ctx, op, &r.Profiles)
	after, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	r.Create.Requests = requestsBetween(before, after)
	r.Create.Etcd = e.measureEtcd(ctx)
	r.LargestQuotaBytes, r.LargestWorkspaceBytes = e.sampleSizes(ctx, names)
	if !e.cfg.cacheFootprint {
		return after, nil
	}
	// Best effort: the figure explains the memory, the phases do not depend on it.
	if footprint, err := e.cacheFootprint(ctx); err != nil {
		logf("%s: could not measure the cache: %v", op.logName, err)
	} else {
		r.Cache = &footprint
	}
	// The listing above is the bench's; it is not counted against the steady state.
	return e.snapshot(ctx, op)
}

// steadyAndProbes watches a quiet period, then provisions probe workspaces one at a time.
func (e *env) steadyAndProbes(ctx context.Context, op *runningOperator, r *OperatorResult, before *snapshot) (*snapshot, error) {
	logf("%s: steady state for %s", op.logName, e.cfg.steady)
	time.Sleep(e.cfg.steady)
	steady, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	quiet := requestsBetween(before, steady)
	r.Steady = &quiet
	r.Memory.SteadyRSS, r.Memory.PeakRSSAfterSteady = rssMiB(op.Pid())
	r.Memory.SteadyHeap = heapMiB(steady.operator)

	if e.cfg.probes == 0 {
		return steady, nil
	}
	names := workspaceNames(probePrefix, e.cfg.probes)
	latencies := make([]time.Duration, len(names))
	for i, name := range names {
		var seconds float64
		if err := e.provisionOne(ctx, name, &seconds); err != nil {
			return nil, err
		}
		latencies[i] = time.Duration(seconds * float64(time.Second))
	}
	probes := percentiles(latencies)
	r.Probes = &probes

	deleted, err := e.deleteWorkspaces(ctx, names)
	if err != nil {
		return nil, err
	}
	gone, err := e.tracker.waitAll(ctx, workspaceGoneTimes, names)
	if err != nil {
		return nil, err
	}
	deletion := percentiles(durations(deleted, gone))
	r.ProbeDeletion = &deletion
	after, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	probeRequests := requestsBetween(steady, after)
	r.ProbeRequests = &probeRequests
	logf("%s: %d probes Ready one at a time (p50 %.2fs, max %.2fs), deleted (p50 %.1fs)", op.logName, len(names), probes.P50, probes.Max, deletion.P50)
	return after, nil
}

// deleteAll deletes the Workspaces and waits until the watch has seen every one gone:
// the operator removes its finalizer only once the namespace is gone and the purge
// record, key deletion and bucket closing are done.
func (e *env) deleteAll(ctx context.Context, op *runningOperator, names []string, r *OperatorResult, before *snapshot) error {
	logf("%s: deleting %d workspaces", op.logName, len(names))
	cpuProfile := e.profileOperatorCPU(ctx, op, op.logName+"-delete")
	stopPerf := e.perfAPIServer(op.logName+"-delete", &r.Profiles)
	stopProgress := e.tracker.reportProgress("gone", workspaceGoneTimes, names)
	cpu := e.cpuNow(op)
	start := time.Now()
	deleted, err := e.deleteWorkspaces(ctx, names)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, e.cfg.readyTimeout)
	defer cancel()
	gone, err := e.tracker.waitAll(waitCtx, workspaceGoneTimes, names)
	r.Delete.CPU = cpuDelta(e.cpuNow(op), cpu)
	stopProgress()
	stopPerf()
	if err != nil {
		return fmt.Errorf("workspaces not gone after %s (log: %s): %w", e.cfg.readyTimeout, op.LogPath(), err)
	}
	last := latest(gone, names)
	r.Delete.Seconds = last.Sub(start).Seconds()
	r.Delete.PerWorkspace = percentiles(durations(deleted, gone))
	cpuProfile.wait(&r.Profiles)
	after, err := e.snapshot(ctx, op)
	if err != nil {
		return err
	}
	r.Delete.Requests = requestsBetween(before, after)
	logf("%s: %d workspaces deleted in %.1fs", op.logName, len(names), r.Delete.Seconds)
	return nil
}

// sampleSizes reads the ResourceQuota and Workspace of the first, middle and last
// workspace: each quota zeroes every other StorageClass, so sizes grow with N.
func (e *env) sampleSizes(ctx context.Context, names []string) (quotaBytes, workspaceBytes int) {
	for _, name := range []string{names[0], names[len(names)/2], names[len(names)-1]} {
		ws := &tenancyv1alpha1.Workspace{}
		if err := e.client.Get(ctx, client.ObjectKey{Name: name}, ws); err != nil {
			continue
		}
		ws.ManagedFields = nil
		workspaceBytes = max(workspaceBytes, jsonSize(ws))
		quota := &corev1.ResourceQuota{}
		if err := e.client.Get(ctx, client.ObjectKey{Namespace: ws.Status.Namespace, Name: "workspace-quota"}, quota); err != nil {
			continue
		}
		quota.ManagedFields = nil
		quotaBytes = max(quotaBytes, jsonSize(quota))
	}
	return quotaBytes, workspaceBytes
}

func jsonSize(v any) int {
	data, _ := json.Marshal(v)
	return len(data)
}
