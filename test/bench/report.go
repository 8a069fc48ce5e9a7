package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one run measured; -out writes it as JSON.
type Results struct {
	Started time.Time `json:"started"`
	// Error says why the run stopped early; the figures before it stand.
	Error        string           `json:"error,omitempty"`
	TotalSeconds float64          `json:"totalSeconds"`
	Machine      Machine          `json:"machine"`
	Settings     Settings         `json:"settings"`
	Unrelated    UnrelatedObjects `json:"unrelatedObjects"`
	Calibration  *Calibration     `json:"calibration"`
	Floor        *FloorResult     `json:"floor"`
	Operator     *OperatorResult  `json:"operator"`
	// Defaults is the operator again with its default concurrency and rate limits.
	Defaults *OperatorResult `json:"operatorDefaults,omitempty"`
}

// Settings are the bench's flags.
type Settings struct {
	Workspaces    int     `json:"workspaces"`
	Workers       int     `json:"workers"`
	Probes        int     `json:"probes"`
	SteadySeconds float64 `json:"steadySeconds"`
	SettleSeconds float64 `json:"settleSeconds"`
	DriftInterval string  `json:"awsDriftCheckInterval"`
	// GoMemLimit is the operator's GOMEMLIMIT, empty when unset.
	GoMemLimit string `json:"operatorGoMemLimit,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs              int     `json:"cpus"`
	CPUModel          string  `json:"cpuModel"`
	MemoryGiB         float64 `json:"memoryGiB"`
	Kernel            string  `json:"kernel"`
	GoVersion         string  `json:"goVersion"`
	KubernetesVersion string  `json:"kubernetesVersion"`
}

func describeMachine(kubeVersion string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), KubernetesVersion: kubeVersion}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib float64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %f kB", &kib); err == nil {
			m.MemoryGiB = math.Round(kib/(1<<20)*10) / 10
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

func writeJSON(path string, r *Results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// none marks a cell with no figure.
var none = math.NaN()

// row is a line of the summary: a figure for the floor and for each operator run.
type row struct {
	figure   string
	floor    float64
	operator []float64
	ratio    bool // whether operator/floor means something
}

// printTable prints the summary: floor, operator, and the operator with its defaults when
// it ran.
func printTable(w io.Writer, r *Results) {
	runs := []*OperatorResult{r.Operator}
	header := "figure\tfloor\toperator\tratio"
	if r.Defaults != nil {
		runs = append(runs, r.Defaults)
		header += "\toperator (defaults)\tratio"
	}
	n := float64(r.Settings.Workspaces)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	memLimit := ""
	if r.Settings.GoMemLimit != "" {
		memLimit = ", GOMEMLIMIT=" + r.Settings.GoMemLimit
	}
	fmt.Fprintf(w, "\nN = %d workspaces, %d unrelated objects, operator %s%s\n\n", r.Settings.Workspaces,
		r.Unrelated.ConfigMaps+r.Unrelated.Secrets+r.Unrelated.WatchedKindCount, describeFlags(runs), memLimit)
	fmt.Fprintln(tw, header+"\t")
	for _, section := range summaryRows(r, runs, n) {
		if section.figure == "" {
			fmt.Fprintln(tw, "\t\t\t\t")
			continue
		}
		fmt.Fprint(tw, section.figure, "\t", cell(section.floor))
		for _, v := range section.operator {
			ratio := none
			if section.ratio && section.floor > 0 {
				ratio = v / section.floor
			}
			fmt.Fprint(tw, "\t", cell(v), "\t", ratioCell(ratio))
		}
		fmt.Fprintln(tw, "\t")
	}
	_ = tw.Flush()
}

func describeFlags(runs []*OperatorResult) string {
	var parts []string
	for _, run := range runs {
		if run.Flags.Defaults {
			parts = append(parts, "(defaults: 16 reconciles, 1000 QPS, 2000 burst)")
			continue
		}
		parts = append(parts, fmt.Sprintf("%d reconciles, %.0f QPS, %d burst", run.Flags.MaxConcurrentReconciles, run.Flags.KubeAPIQPS, run.Flags.KubeAPIBurst))
	}
	return strings.Join(parts, " ")
}

func cell(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e7:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratioCell(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// summaryRows are the table's lines; a row with no figure is a blank separator.
func summaryRows(r *Results, runs []*OperatorResult, n float64) []row {
	f := r.Floor
	each := func(get func(*OperatorResult) float64) []float64 {
		out := make([]float64, len(runs))
		for i, run := range runs {
			out[i] = get(run)
		}
		return out
	}
	perWS := func(v float64) float64 { return v / n }
	rows := []row{
		{"create: all Ready, wall s", f.Create.Seconds, each(func(o *OperatorResult) float64 { return o.Create.Seconds }), true},
		{"create: queue drained (converged), wall s", none, each(func(o *OperatorResult) float64 { return orNone(o.ConvergedSeconds) }), false},
		{"create: per workspace p50 s", f.Create.PerWorkspace.P50, each(func(o *OperatorResult) float64 { return o.Create.PerWorkspace.P50 }), true},
		{"create: per workspace p99 s", f.Create.PerWorkspace.P99, each(func(o *OperatorResult) float64 { return o.Create.PerWorkspace.P99 }), true},
		{"create: API requests / ws (client side)", perWS(f.Create.Requests.bench.total(resourceRequest)), each(func(o *OperatorResult) float64 {
			return perWS(o.Create.Requests.operatorWrites() + o.Create.Requests.operatorReads())
		}), true},
		{"  writes / ws", perWS(f.Create.Requests.bench.total(resourceWrite)), each(func(o *OperatorResult) float64 { return perWS(o.Create.Requests.operatorWrites()) }), true},
		{"  reads (GET, LIST, WATCH) / ws", perWS(f.Create.Requests.bench.total(isRead)), each(func(o *OperatorResult) float64 { return perWS(o.Create.Requests.operatorReads()) }), false},
		{"  of the writes, Events / ws", 0, each(func(o *OperatorResult) float64 { return perWS(o.Create.Requests.others.total(isEventWrite)) }), false},
		{"create: writes at API server / ws, all clients", perWS(f.Create.Requests.bench.total(resourceWrite) + f.Create.Requests.others.total(resourceWrite)), each(func(o *OperatorResult) float64 {
			return perWS(o.Create.Requests.bench.total(resourceWrite) + o.Create.Requests.others.total(resourceWrite))
		}), true},
		{"create: AWS calls / ws", none, each(func(o *OperatorResult) float64 { return perWS(o.Create.Requests.awsCalls()) }), false},
		{"create: reconciles / ws", none, each(func(o *OperatorResult) float64 { return perWS(o.Create.Requests.reconciles("workspace")) }), false},
	}
	for _, p := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "operator", "bench"} {
		rows = append(rows, row{"create: CPU s, " + p, cpuOf(f.Create.CPU, p), each(func(o *OperatorResult) float64 { return cpuOf(o.Create.CPU, p) }), true})
	}
	rows = append(rows,
		row{"largest ResourceQuota, bytes", float64(f.LargestQuotaBytes), each(func(o *OperatorResult) float64 { return float64(o.LargestQuotaBytes) }), true},
		row{"largest Workspace, bytes", none, each(func(o *OperatorResult) float64 { return float64(o.LargestWorkspaceBytes) }), false},
		row{"etcd file after create, MiB", etcdFile(f.Create.Etcd), each(func(o *OperatorResult) float64 { return etcdFile(o.Create.Etcd) }), true},
		row{},
	)
	if s := r.Operator.Steady; s != nil {
		steady := fmt.Sprintf("steady %.0f s: ", s.Seconds)
		rows = append(rows,
			row{steady + "operator API writes", none, []float64{s.operatorWrites()}, false},
			row{steady + "operator API reads", none, []float64{s.operatorReads()}, false},
			row{steady + "AWS calls", none, []float64{s.awsCalls()}, false},
			row{steady + "reconciles", none, []float64{s.reconciles("workspace")}, false},
			row{steady + "operator CPU s", none, []float64{s.CPU["operator"]}, false},
		)
	}
	if p := r.Operator.Probes; p != nil {
		rows = append(rows,
			row{"single workspace on idle stack: time to Ready s", none, []float64{r.Calibration.TimeToReady}, false},
			row{fmt.Sprintf("single workspace, %d one at a time: p50 s", p.Count), none, []float64{p.P50}, false},
			row{fmt.Sprintf("single workspace, %d one at a time: p99 s", p.Count), none, []float64{p.P99}, false},
		)
	}
	rows = append(rows,
		row{},
		row{"memory: RSS idle MiB", none, each(func(o *OperatorResult) float64 { return o.Memory.IdleRSS }), false},
		row{"memory: peak RSS after create MiB", none, each(func(o *OperatorResult) float64 { return o.Memory.PeakRSSAfterCreate }), false},
		row{"memory: peak RSS overall MiB", none, each(func(o *OperatorResult) float64 { return o.Memory.PeakRSS }), false},
		row{"memory: heap in use idle MiB", none, each(func(o *OperatorResult) float64 { return o.Memory.IdleHeap }), false},
		row{"memory: heap in use peak MiB", none, each(func(o *OperatorResult) float64 { return o.Memory.PeakHeap }), false},
		row{"cache: objects held", none, each(cacheFigure(func(c *CacheFootprint) float64 { return float64(c.Objects) })), false},
		row{"cache: MiB of JSON held", none, each(cacheFigure(func(c *CacheFootprint) float64 { return float64(c.Bytes) / mib })), false},
		row{"cache: MiB without managedFields", none, each(cacheFigure(func(c *CacheFootprint) float64 { return float64(c.BytesWithoutManagedFields) / mib })), false},
		row{"cache: MiB if unscoped (no label selector)", none, each(cacheFigure(func(c *CacheFootprint) float64 { return float64(c.UnscopedBytes) / mib })), false},
		row{},
		row{"delete: all gone, wall s", f.Delete.Seconds, each(func(o *OperatorResult) float64 { return o.Delete.Seconds }), true},
		row{"delete: per workspace p50 s", f.Delete.PerWorkspace.P50, each(func(o *OperatorResult) float64 { return o.Delete.PerWorkspace.P50 }), true},
		row{"delete: per workspace p99 s", f.Delete.PerWorkspace.P99, each(func(o *OperatorResult) float64 { return o.Delete.PerWorkspace.P99 }), true},
		row{"delete: API requests / ws (client side)", perWS(f.Delete.Requests.bench.total(resourceRequest)), each(func(o *OperatorResult) float64 {
			return perWS(o.Delete.Requests.operatorWrites() + o.Delete.Requests.operatorReads())
		}), true},
		row{"  writes / ws", perWS(f.Delete.Requests.bench.total(resourceWrite)), each(func(o *OperatorResult) float64 { return perWS(o.Delete.Requests.operatorWrites()) }), true},
		row{"delete: AWS calls / ws", none, each(func(o *OperatorResult) float64 { return perWS(o.Delete.Requests.awsCalls()) }), false},
		row{"delete: reconciles / ws", none, each(func(o *OperatorResult) float64 { return perWS(o.Delete.Requests.reconciles("workspace")) }), false},
		row{"delete: CPU s, kube-apiserver", f.Delete.CPU["kube-apiserver"], each(func(o *OperatorResult) float64 { return o.Delete.CPU["kube-apiserver"] }), true},
		row{"delete: CPU s, kube-controller-manager", f.Delete.CPU["kube-controller-manager"], each(func(o *OperatorResult) float64 { return o.Delete.CPU["kube-controller-manager"] }), true},
		row{"delete: CPU s, operator", none, each(func(o *OperatorResult) float64 { return o.Delete.CPU["operator"] }), false},
	)
	return rows
}

// orNone is v, or none when it was not measured.
func orNone(v float64) float64 {
	if v == 0 {
		return none
	}
	return v
}

// cpuOf is a process's CPU seconds, none for a process that did not run.
func cpuOf(usage cpuUsage, process string) float64 {
	if v, ok := usage[process]; ok {
		return v
	}
	return none
}

func etcdFile(s *EtcdSize) float64 {
	if s == nil {
		return none
	}
	return s.FileMiB
}

// cacheFigure reads a figure of a run's cache footprint, none when it was not measured.
func cacheFigure(get func(*CacheFootprint) float64) func(*OperatorResult) float64 {
	return func(o *OperatorResult) float64 {
		if o.Cache == nil {
			return none
		}
		return get(o.Cache)
	}
}

func isRead(k requestKey) bool       { return k.Resource != "" && !k.isWrite() }
func isEventWrite(k requestKey) bool { return k.Resource == "events" && k.isWrite() }

// printDetails breaks the operator's requests and AWS calls down per workspace.
func printDetails(w io.Writer, r *Results) {
	n := float64(r.Settings.Workspaces)
	c := r.Calibration
	fmt.Fprintf(w, "\nOne workspace alone (calibration): Ready in %.2f s, deleted in %.1f s; objects %v\n", c.TimeToReady, c.DeletionTime, c.Objects)
	printBreakdown(w, "  operator requests by method", c.Create.Operator, 1)
	printBreakdown(w, "  operator requests by code", c.Create.OperatorByCode, 1)
	printBreakdown(w, "  API server, all but the bench", c.Create.Others, 1)
	printBreakdown(w, "  AWS", c.Create.AWS, 1)
	printBreakdown(w, "  deletion: operator requests by method", c.Delete.Operator, 1)
	printBreakdown(w, "  deletion: AWS", c.Delete.AWS, 1)

	o := r.Operator
	fmt.Fprintf(w, "\nProvisioning %d workspaces, per workspace:\n", r.Settings.Workspaces)
	printBreakdown(w, "  operator requests by method", o.Create.Requests.Operator, n)
	printBreakdown(w, "  operator requests by code", o.Create.Requests.OperatorByCode, n)
	printBreakdown(w, "  API server, all but the bench", o.Create.Requests.Others, n)
	printBreakdown(w, "  AWS", o.Create.Requests.AWS, n)
	printBreakdown(w, "  reconciles", o.Create.Requests.Reconciles, n)
	if o.Cache != nil {
		printTop(w, "  operator cache, bytes by resource", toFloats(o.Cache.BytesByKind))
	}
	printTop(w, "  API server busy seconds, in total, floor", r.Floor.Create.Requests.APIServerSeconds)
	printTop(w, "  API server busy seconds, in total, operator", o.Create.Requests.APIServerSeconds)
	if s := o.Steady; s != nil {
		fmt.Fprintf(w, "\nSteady state, %.0f s, in total:\n", s.Seconds)
		printBreakdown(w, "  operator requests by method", s.Operator, 1)
		printBreakdown(w, "  API server, all but the bench", s.Others, 1)
		printBreakdown(w, "  AWS", s.AWS, 1)
		printBreakdown(w, "  reconciles", s.Reconciles, 1)
	}
	fmt.Fprintf(w, "\nDeleting %d workspaces, per workspace:\n", r.Settings.Workspaces)
	printBreakdown(w, "  operator requests by method", o.Delete.Requests.Operator, n)
	printBreakdown(w, "  operator requests by code", o.Delete.Requests.OperatorByCode, n)
	printBreakdown(w, "  API server, all but the bench", o.Delete.Requests.Others, n)
	printBreakdown(w, "  AWS", o.Delete.Requests.AWS, n)
	printBreakdown(w, "  reconciles", o.Delete.Requests.Reconciles, n)
	printTop(w, "  API server busy seconds, in total, floor", r.Floor.Delete.Requests.APIServerSeconds)
	printTop(w, "  API server busy seconds, in total, operator", o.Delete.Requests.APIServerSeconds)
	if len(o.Profiles) > 0 {
		fmt.Fprintf(w, "\nProfiles:\n  %s\n", strings.Join(o.Profiles, "\n  "))
	}
}

func toFloats(m map[string]int) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

// printTop prints the 12 largest entries of m.
func printTop(w io.Writer, title string, m map[string]float64) {
	const n = 12
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	parts := make([]string, 0, n)
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %s", k, cell(m[k])))
	}
	fmt.Fprintf(w, "%s (total %s): %s\n", title, cell(sum(m, nil)), strings.Join(parts, ", "))
}

// printBreakdown prints m divided by n, largest first.
func printBreakdown(w io.Writer, title string, m map[string]float64, n float64) {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %s", k, cell(m[k]/n)))
		}
	}
	fmt.Fprintf(w, "%s (total %s): %s\n", title, cell(sum(m, nil)/n), strings.Join(parts, ", "))
}
