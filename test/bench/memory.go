package main

import (
	"context"
	"sync"
	"time"
)

// Memory is the operator's memory, in MiB.
type Memory struct {
	// IdleRSS is the resident set once the operator is ready, before any workspace: its
	// informers have listed everything they watch, unrelated objects included.
	IdleRSS float64 `json:"idleRSSMiB"`
	// The peaks are VmHWM, the kernel's high-water mark of the resident set: once every
	// workspace is Ready, after the steady state, and at the end, deletion included.
	PeakRSSAfterCreate float64 `json:"peakRSSAfterCreateMiB"`
	PeakRSSAfterSteady float64 `json:"peakRSSAfterSteadyMiB,omitempty"`
	PeakRSS            float64 `json:"peakRSSMiB"`
	// SteadyRSS is the resident set at the end of the steady state.
	SteadyRSS float64 `json:"steadyRSSMiB,omitempty"`
	// Heap is go_memstats_heap_inuse_bytes: idle, the most seen, and at steady state.
	IdleHeap   float64 `json:"idleHeapInuseMiB"`
	PeakHeap   float64 `json:"peakHeapInuseMiB"`
	SteadyHeap float64 `json:"steadyHeapInuseMiB,omitempty"`
	// Samples is how many heap readings the peak is the maximum of.
	HeapSamples int `json:"heapSamples"`
}

const mib = 1 << 20

// heapSampler scrapes the operator's heap gauge periodically, to catch its peak; VmHWM
// needs no sampling, the kernel keeps it.
type heapSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	peak    float64
	samples int
}

func sampleHeap(ctx context.Context, metricsURL string, every time.Duration) *heapSampler {
	ctx, cancel := context.WithCancel(ctx)
	h := &heapSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			h.sample(ctx, metricsURL)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) sample(ctx context.Context, metricsURL string) {
	f, err := scrapeHTTP(ctx, metricsURL)
	if err != nil {
		return // the operator is stopping; the peak so far stands
	}
	heap := f.gauge("go_memstats_heap_inuse_bytes") / mib
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peak = max(h.peak, heap)
	h.samples++
}

// stop ends sampling and returns the peak in MiB and the number of samples.
func (h *heapSampler) stop() (float64, int) {
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak, h.samples
}

// rssMiB is the process's resident set now and at its peak, in MiB.
func rssMiB(pid int) (rss, peak float64) {
	r, p, err := memory(pid)
	if err != nil {
		return 0, 0
	}
	return float64(r) / mib, float64(p) / mib
}

// heapMiB reads the heap gauge once.
func heapMiB(f families) float64 {
	return f.gauge("go_memstats_heap_inuse_bytes") / mib
}
