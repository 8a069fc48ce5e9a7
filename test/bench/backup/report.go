package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what the benchmark prints and writes as JSON.
type report struct {
	Date    time.Time `json:"date"`
	Machine machine   `json:"machine"`
	Tree    *tree     `json:"tree"`
	Runs    int       `json:"runs"`
	Tools   tools     `json:"tools"`
	// Medians has one row per variant, in the order run, each metric the
	// median of its runs.
	Medians []summaryRow `json:"medians"`
	Samples []sample     `json:"samples"`
}

type machine struct {
	CPU       string `json:"cpu"`
	NumCPU    int    `json:"nproc"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

type tools struct {
	MinIO  string `json:"minio"`
	Restic string `json:"restic"`
}

// summaryRow is a variant's medians, with derived figures.
type summaryRow struct {
	sample
	MiBPerSec float64 `json:"mib_per_s"`
	// FailedRequests is the total over all runs of requests answered 4xx
	// or 5xx: errors the clients retried, or probes for objects that do
	// not exist (restic's).
	FailedRequests int64 `json:"failed_requests_all_runs"`
	// MinWall and MaxWall show the spread of the runs.
	MinWall time.Duration `json:"min_wall_ns"`
	MaxWall time.Duration `json:"max_wall_ns"`
	// VsFloor is the wall time over the floor's, when the floor ran.
	VsFloor float64 `json:"wall_vs_floor,omitempty"`
}

func newReport(cfg *config, t *tree, e *env, samples []sample) *report {
	r := &report{
		Date:    time.Now().UTC().Round(time.Second),
		Machine: machineInfo(),
		Tree:    t,
		Runs:    cfg.runs,
		Tools:   tools{MinIO: e.minioVersion, Restic: toolVersion(cfg.restic, "version")},
		Samples: samples,
	}
	for _, v := range cfg.variants {
		r.Medians = append(r.Medians, medianRow(v, samples, t.Bytes))
	}
	if i := slices.IndexFunc(r.Medians, func(s summaryRow) bool { return s.Variant == "floor" }); i >= 0 {
		for j := range r.Medians {
			r.Medians[j].VsFloor = r.Medians[j].Wall.Seconds() / r.Medians[i].Wall.Seconds()
		}
	}
	return r
}

// medianRow takes every metric's median over the variant's runs
// separately.
func medianRow(variant string, samples []sample, treeBytes int64) summaryRow {
	var runs []sample
	for _, s := range samples {
		if s.Variant == variant {
			runs = append(runs, s)
		}
	}
	row := summaryRow{sample: sample{
		Variant:     variant,
		Wall:        median(runs, func(s sample) time.Duration { return s.Wall }),
		UserCPU:     median(runs, func(s sample) time.Duration { return s.UserCPU }),
		SysCPU:      median(runs, func(s sample) time.Duration { return s.SysCPU }),
		MaxRSS:      median(runs, func(s sample) int64 { return s.MaxRSS }),
		StoredBytes: median(runs, func(s sample) int64 { return s.StoredBytes }),
		ServerCPU:   median(runs, func(s sample) time.Duration { return s.ServerCPU }),
		GatewayCPU:  median(runs, func(s sample) time.Duration { return s.GatewayCPU }),
		Load1:       median(runs, func(s sample) float64 { return s.Load1 }),
	}}
	row.MiBPerSec = mibPerSec(treeBytes, row.Wall)
	for i, s := range runs {
		if i == 0 || s.Wall < row.MinWall {
			row.MinWall = s.Wall
		}
		row.MaxWall = max(row.MaxWall, s.Wall)
		row.FailedRequests += s.Failed
	}
	return row
}

// median is the middle value, or the mean of the two middle values.
func median[T int64 | time.Duration | float64](runs []sample, metric func(sample) T) T {
	vals := make([]T, len(runs))
	for i, s := range runs {
		vals[i] = metric(s)
	}
	slices.Sort(vals)
	n := len(vals)
	if n%2 == 1 {
		return vals[n/2]
	}
	return (vals[n/2-1] + vals[n/2]) / 2
}

// print writes the table of medians.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n%d MiB tree (%d files, %d MiB random, %d MiB text), median of %d runs, warm page cache; load is the 1-minute load average before a run\n",
		r.Tree.Bytes>>20, r.Tree.Files, r.Tree.RandomBytes>>20, r.Tree.TextBytes>>20, r.Runs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\twall s\t(min-max)\tMiB/s\tvs floor\tCPU s (user+sys)\tpeak RSS MiB\tstored MiB\tstored/source\tMinIO CPU s\tgateway CPU s\tload\t4xx/5xx\t")
	for _, m := range r.Medians {
		vsFloor := "-"
		if m.VsFloor != 0 {
			vsFloor = fmt.Sprintf("%.2fx", m.VsFloor)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t(%.2f-%.2f)\t%.1f\t%s\t%.2f\t%d\t%.1f\t%.3f\t%.2f\t%.2f\t%.1f\t%d\t\n",
			m.Variant, m.Wall.Seconds(), m.MinWall.Seconds(), m.MaxWall.Seconds(), m.MiBPerSec, vsFloor, m.cpu().Seconds(),
			m.MaxRSS>>20, float64(m.StoredBytes)/(1<<20), float64(m.StoredBytes)/float64(r.Tree.Bytes), m.ServerCPU.Seconds(), m.GatewayCPU.Seconds(), m.Load1, m.FailedRequests)
	}
	_ = tw.Flush() // w is stdout
	fmt.Fprintln(w)
}

func (r *report) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// machineInfo describes the machine from /proc.
func machineInfo() machine {
	m := machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// procField is the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
