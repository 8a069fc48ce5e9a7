package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Profiles of the provisioning and deletion phases, written next to the logs in -dir.
//
// With -pprof the operator runs with --pprof-bind-address on a free loopback port, and the
// bench fetches Go profiles from it: the CPU over the first -pprof-seconds of each phase
// (the request starts with the phase and returns after that many seconds, also when the
// phase ended sooner), and the heap once provisioning has converged. go tool pprof -top
// summarises each profile in a text file next to it, readable without tools.
//
// kube-apiserver serves no pprof here (the stack's answers /debug/pprof/ with 404, even to
// the admin user), so -perf samples it with Linux perf instead. The control plane is built
// with -s -w, which leaves perf no symbols, so the bench symbolizes the samples itself with
// go tool addr2line, which reads the Go function table that every Go binary keeps.

// cpuProfile is a CPU profile of the operator being taken over HTTP.
type cpuProfile struct {
	path string
	done chan error
}

// profileOperatorCPU starts a CPU profile of the operator's next -pprof-seconds, written to
// <dir>/<name>.cpu.pprof; it is nil without -pprof.
func (e *env) profileOperatorCPU(ctx context.Context, op *runningOperator, name string) *cpuProfile {
	if op.pprofURL == "" {
		return nil
	}
	p := &cpuProfile{path: filepath.Join(e.stack.Dir(), name+".cpu.pprof"), done: make(chan error, 1)}
	seconds := e.cfg.pprofSeconds
	go func() {
		url := fmt.Sprintf("%sprofile?seconds=%d", op.pprofURL, seconds)
		p.done <- fetchProfile(ctx, url, p.path, time.Duration(seconds)*time.Second+time.Minute)
	}()
	return p
}

// wait waits for the profile, summarises it and adds both files to reports. A profile that
// fails is logged, not returned: no figure depends on it.
func (p *cpuProfile) wait(reports *[]string) {
	if p == nil {
		return
	}
	if err := <-p.done; err != nil {
		logf("no CPU profile: %v", err)
		return
	}
	addProfile(p.path, reports)
}

// profileOperatorHeap writes the operator's heap profile to <dir>/<logName>-heap.pprof when
// it serves pprof, and adds it and its summary to reports.
func (e *env) profileOperatorHeap(ctx context.Context, op *runningOperator, reports *[]string) {
	if op.pprofURL == "" {
		return
	}
	path := filepath.Join(e.stack.Dir(), op.logName+"-heap.pprof")
	if err := fetchProfile(ctx, op.pprofURL+"heap", path, time.Minute); err != nil {
		logf("no heap profile: %v", err)
		return
	}
	addProfile(path, reports)
}

// addProfile adds a profile and its summary to reports.
func addProfile(path string, reports *[]string) {
	*reports = append(*reports, path)
	summary, err := summarise(path)
	if err != nil {
		logf("summarise %s: %v", path, err)
		return
	}
	*reports = append(*reports, summary)
}

// fetchProfile writes the profile that url serves to path.
func fetchProfile(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("fetch %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err = io.Copy(f, resp.Body); err != nil {
		err = fmt.Errorf("fetch %s: %w", url, err)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		_ = os.Remove(path)
	}
	return err
}

// summarise writes go tool pprof's top 40 functions of profile next to it, as .txt, and
// returns that file's path. Profiles served over HTTP are symbolized: no binary is needed.
func summarise(profile string) (string, error) {
	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=40", profile).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("go tool pprof: %w: %s", err, bytes.TrimSpace(exitErr.Stderr))
		}
		return "", err
	}
	summary := strings.TrimSuffix(profile, ".pprof") + ".txt"
	return summary, os.WriteFile(summary, top, 0o644)
}

// freePort finds a loopback port that nothing listens on. Another process may take it
// before the operator binds it; the window is small enough for a bench.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// perfHz is the sampling frequency: enough samples in a few seconds, little overhead.
const perfHz = "299"

// perfAPIServer starts perf on kube-apiserver when -perf is set, and returns the function
// that stops it and writes the report, whose path it adds to reports.
func (e *env) perfAPIServer(name string, reports *[]string) (stop func()) {
	if !e.cfg.perf {
		return func() {}
	}
	pid := e.pids["kube-apiserver"]
	binary, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		logf("no profile of kube-apiserver: %v", err)
		return func() {}
	}
	data := filepath.Join(e.stack.Dir(), name+"-kube-apiserver.perf.data")
	cmd := exec.Command("perf", "record", "-F", perfHz, "-g", "-p", strconv.Itoa(pid), "-o", data)
	if err := cmd.Start(); err != nil {
		logf("perf unavailable, no profile: %v", err)
		return func() {}
	}
	return func() {
		// perf writes its data file on SIGINT.
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		report := strings.TrimSuffix(data, ".data") + ".txt"
		if err := writePerfReport(data, binary, report); err != nil {
			logf("perf report %s: %v", data, err)
			return
		}
		*reports = append(*reports, report)
	}
}

// writePerfReport writes the functions that used the most CPU in the samples of data,
// by self time and by time including callees.
func writePerfReport(data, binary, out string) error {
	script, err := exec.Command("perf", "script", "-F", "ip,sym,dso", "-i", data).Output()
	if err != nil {
		return fmt.Errorf("perf script: %w", err)
	}
	samples := parseCallchains(script)
	if err := symbolize(binary, samples); err != nil {
		return err
	}
	self, total, packages := map[string]int{}, map[string]int{}, map[string]int{}
	for _, chain := range samples {
		self[chain[0].sym]++
		packages[chain[0].pkg()]++
		seen := map[string]bool{}
		for _, frame := range chain {
			if !seen[frame.sym] {
				seen[frame.sym] = true
				total[frame.sym]++
			}
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "%s: %d samples at %s Hz\n\nself, by package:\n", binary, len(samples), perfHz)
	writeTop(f, packages, len(samples), 25)
	fmt.Fprintf(f, "\nself:\n")
	writeTop(f, self, len(samples), 40)
	fmt.Fprintf(f, "\nincluding callees:\n")
	writeTop(f, total, len(samples), 200)
	return nil
}

// frame is one entry of a callchain as perf script prints it.
type frame struct {
	ip       uint64
	sym, dso string
}

// pkg is the Go package of the frame's function, or the kernel.
func (f *frame) pkg() string {
	if strings.HasPrefix(f.dso, "[kernel") {
		return "[kernel]"
	}
	slash := strings.LastIndex(f.sym, "/")
	if dot := strings.Index(f.sym[slash+1:], "."); dot >= 0 {
		return f.sym[:slash+1+dot]
	}
	return f.sym
}

// parseCallchains reads perf script's "ip sym (dso)" lines, leaf first, a blank line
// after each sample.
func parseCallchains(script []byte) [][]*frame {
	var samples [][]*frame
	var chain []*frame
	scanner := bufio.NewScanner(bytes.NewReader(script))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" {
			if len(chain) > 0 {
				samples = append(samples, chain)
			}
			chain = nil
			continue
		}
		ip, rest, _ := strings.Cut(line, " ")
		f := &frame{sym: rest}
		f.ip, _ = strconv.ParseUint(ip, 16, 64)
		// Go symbols may contain spaces and parentheses; the DSO is the last group.
		if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			f.sym, f.dso = rest[:i], rest[i+2:len(rest)-1]
		}
		chain = append(chain, f)
	}
	if len(chain) > 0 {
		samples = append(samples, chain)
	}
	return samples
}

// symbolize names the frames of binary that perf left unresolved, which in a stripped
// binary is all of them. perf prints their offsets into the file; go tool addr2line wants
// addresses, so the text segment's base is added.
func symbolize(binary string, samples [][]*frame) error {
	base, err := textBase(binary)
	if err != nil {
		return err
	}
	unresolved := map[uint64][]*frame{}
	for _, chain := range samples {
		for _, f := range chain {
			if f.sym == "[unknown]" && f.dso == binary {
				unresolved[f.ip+base] = append(unresolved[f.ip+base], f)
			}
		}
	}
	addrs := make([]uint64, 0, len(unresolved))
	var in bytes.Buffer
	for addr := range unresolved {
		addrs = append(addrs, addr)
		fmt.Fprintf(&in, "0x%x\n", addr)
	}
	cmd := exec.Command("go", "tool", "addr2line", binary)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go tool addr2line: %w", err)
	}
	// Two lines per address: the function, then file:line.
	lines := strings.Split(string(out), "\n")
	for i, addr := range addrs {
		if 2*i >= len(lines) || lines[2*i] == "?" {
			continue
		}
		for _, f := range unresolved[addr] {
			f.sym = lines[2*i]
		}
	}
	return nil
}

// textBase is the address at which binary's file offset 0 is loaded.
func textBase(binary string) (uint64, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			return p.Vaddr, nil
		}
	}
	return 0, fmt.Errorf("%s has no segment loaded from offset 0", binary)
}

func writeTop(w io.Writer, counts map[string]int, total, n int) {
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return counts[names[i]] > counts[names[j]] })
	for _, name := range names[:min(n, len(names))] {
		fmt.Fprintf(w, "%6.2f%%  %s\n", 100*float64(counts[name])/float64(total), name)
	}
}
