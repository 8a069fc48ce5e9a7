package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bench is one benchmark run's state.
type bench struct {
	cfg      *config
	env      *env
	tree     *tree
	agentBin string
	workDir  string
}

// sample is one measured run of one variant.
type sample struct {
	Variant     string        `json:"variant"`
	Run         int           `json:"run"`
	Wall        time.Duration `json:"wall_ns"`
	UserCPU     time.Duration `json:"user_cpu_ns"`
	SysCPU      time.Duration `json:"sys_cpu_ns"`
	MaxRSS      int64         `json:"max_rss_bytes"`
	StoredBytes int64         `json:"stored_bytes"`
	// ServerCPU is MinIO's CPU time during the run: the server's share of
	// the two cores, which the variants compete with.
	ServerCPU time.Duration `json:"server_cpu_ns"`
	// GatewayCPU is the benchmark process's CPU time during the run,
	// almost all of it the gateway proxying S3 requests to MinIO.
	GatewayCPU time.Duration `json:"gateway_cpu_ns"`
	// Requests and Failed count the requests the variant sent through the
	// gateway, and those answered 4xx or 5xx (errors the client retries,
	// or probes for objects that do not exist).
	requestCounts
	// Load1 is the one-minute load average before the run: other work on
	// the machine competes for its cores and inflates wall times.
	Load1 float64 `json:"load1_before"`
}

func (s *sample) cpu() time.Duration { return s.UserCPU + s.SysCPU }

// measure runs every variant cfg.runs times, interleaved: run 1 of every
// variant, then run 2, and so on.
func (b *bench) measure(ctx context.Context) ([]sample, error) {
	if _, err := os.Executable(); err != nil {
		return nil, fmt.Errorf("find this binary for the floor: %w", err)
	}
	var samples []sample
	for run := 1; run <= b.cfg.runs; run++ {
		for _, name := range b.cfg.variants {
			s, err := b.runOnce(ctx, variantByName[name], run)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", name, run, err)
			}
			log.Printf("%-14s run %d: %6.2fs  %7.1f MiB/s  cpu %6.2fs  rss %5d MiB  stored %5d MiB  minio cpu %6.2fs  gateway cpu %5.2fs  load %4.1f  requests %d (%d failed)",
				s.Variant, s.Run, s.Wall.Seconds(), mibPerSec(b.tree.Bytes, s.Wall), s.cpu().Seconds(), s.MaxRSS>>20, s.StoredBytes>>20, s.ServerCPU.Seconds(), s.GatewayCPU.Seconds(), s.Load1, s.Requests, s.Failed)
			samples = append(samples, s)
		}
	}
	return samples, nil
}

// runOnce prepares fresh buckets, runs the variant's command as a child
// and measures it.
func (b *bench) runOnce(ctx context.Context, v *variant, run int) (sample, error) {
	r, err := b.newRunDir(ctx, v, run)
	if err != nil {
		return sample{}, err
	}
	if v.prepare != nil {
		if err := v.prepare(ctx, b, r); err != nil {
			return sample{}, err
		}
	}
	serverBefore, err := b.env.serverCPU()
	if err != nil {
		return sample{}, err
	}
	selfBefore, load, reqBefore := selfCPU(), loadAverage(), b.env.requests.counts()
	s, err := runChild(ctx, v.command(b, r), r)
	if err != nil {
		return sample{}, err
	}
	s.GatewayCPU = selfCPU() - selfBefore
	reqAfter := b.env.requests.counts()
	s.Requests, s.Failed = reqAfter.Requests-reqBefore.Requests, reqAfter.Failed-reqBefore.Failed
	serverAfter, err := b.env.serverCPU()
	if err != nil {
		return sample{}, err
	}
	s.Variant, s.Run, s.ServerCPU, s.Load1 = v.name, run, serverAfter-serverBefore, load
	if s.StoredBytes, err = b.env.storedBytes(ctx, r.buckets); err != nil {
		return sample{}, err
	}
	return s, b.env.deleteBuckets(ctx, r.buckets)
}

// newRunDir makes the run's directory and buckets.
func (b *bench) newRunDir(ctx context.Context, v *variant, run int) (*runDir, error) {
	r := &runDir{dir: filepath.Join(b.workDir, "runs", fmt.Sprintf("%s-%d", v.name, run))}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	for i := range v.buckets {
		name := fmt.Sprintf("%s-r%d-%d", v.name, run, i+1)
		if err := b.env.createBucket(ctx, name); err != nil {
			return nil, err
		}
		r.buckets = append(r.buckets, name)
	}
	return r, nil
}

// runChild runs cmd with its output in the run's directory and returns its
// wall time, CPU time and peak RSS. The rusage of a waited-for child is its
// own (and that of any children it waited for), so nothing of the
// benchmark's process is counted.
func runChild(ctx context.Context, cmd *exec.Cmd, r *runDir) (sample, error) {
	stdout, err := os.Create(r.path("stdout"))
	if err != nil {
		return sample{}, err
	}
	defer stdout.Close()
	stderr, err := os.Create(r.path("stderr"))
	if err != nil {
		return sample{}, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr

	started := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
	err = cmd.Wait()
	wall := time.Since(started)
	stop()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(r.path("stderr")))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{
		Wall:    wall,
		UserCPU: time.Duration(ru.Utime.Nano()),
		SysCPU:  time.Duration(ru.Stime.Nano()),
		MaxRSS:  ru.Maxrss << 10, // KiB on Linux
	}, nil
}

// selfCPU is the benchmark process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the one-minute load average, or -1 if unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return -1
	}
	return v
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	data, _ := os.ReadFile(path) // best effort
	const limit = 4 << 10
	if len(data) > limit {
		data = data[len(data)-limit:]
	}
	return string(data)
}

func mibPerSec(bytes int64, d time.Duration) float64 {
	return float64(bytes) / (1 << 20) / d.Seconds()
}
