package main

import (
	"math"
	"slices"
	"time"
)

// Percentiles summarise a set of durations, in seconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// percentiles uses the nearest-rank method: p99 of 100 samples is the 99th smallest,
// a sample that really happened rather than an interpolation.
func percentiles(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return sorted[max(i, 0)].Seconds()
	}
	var sum time.Duration
	for _, s := range sorted {
		sum += s
	}
	return Percentiles{
		Count: len(sorted),
		P50:   rank(0.50),
		P90:   rank(0.90),
		P99:   rank(0.99),
		Max:   sorted[len(sorted)-1].Seconds(),
		Mean:  (sum / time.Duration(len(sorted))).Seconds(),
	}
}

// durations pairs start and end times by name; names without both are skipped.
func durations(start, end map[string]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(start))
	for name, s := range start {
		if e, ok := end[name]; ok {
			out = append(out, e.Sub(s))
		}
	}
	return out
}

// latest is the latest of the times of the given names, zero unless all have one.
func latest(times map[string]time.Time, names []string) time.Time {
	var last time.Time
	for _, name := range names {
		t, ok := times[name]
		if !ok {
			return time.Time{}
		}
		if t.After(last) {
			last = t
		}
	}
	return last
}
