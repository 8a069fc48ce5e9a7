package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// config is the bench's command line.
type config struct {
	workspaces      int
	probes          int
	workers         int
	unrelated       int
	steady          time.Duration
	settle          time.Duration
	driftInterval   time.Duration
	readyTimeout    time.Duration
	flags           operatorFlags
	compareDefaults bool
	operatorBinary  string
	dir             string
	keep            bool
	out             string
	cpuprofile      string
	pprof           bool
	pprofSeconds    int
	perf            bool
	cacheFootprint  bool
	goMemLimit      string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.workspaces, "workspaces", 1000, "Workspaces to provision, for the floor and for the operator.")
	fs.IntVar(&c.probes, "probes", 20, "Workspaces created one at a time once the others are steady, for single-workspace latency.")
	fs.IntVar(&c.workers, "workers", 32, "Concurrent requests of the bench's client: the floor's writers, and whoever creates the Workspaces.")
	fs.IntVar(&c.unrelated, "unrelated", 5000, "Unrelated objects created first, which the operator's cache must not hold.")
	fs.DurationVar(&c.steady, "steady-state", time.Minute, "Quiet period in which the operator should write nothing and call no AWS API.")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "Wait after the last Ready before counting, for reconciles the last writes trigger.")
	fs.DurationVar(&c.driftInterval, "aws-drift-check-interval", 10*time.Minute, "The operator's --aws-drift-check-interval.")
	fs.DurationVar(&c.readyTimeout, "timeout", 15*time.Minute, "Longest wait for all workspaces to be Ready, or gone.")
	// 32 reconciles keep as many requests in flight as the floor's 32 writers; 1000 QPS is
	// more than this API server serves, so that, like the floor, the operator is bounded by
	// the API server and not by its own client.
	fs.IntVar(&c.flags.MaxConcurrentReconciles, "max-concurrent-reconciles", 32, "The operator's --max-concurrent-reconciles.")
	fs.Float64Var(&c.flags.KubeAPIQPS, "kube-api-qps", 1000, "The operator's --kube-api-qps.")
	fs.IntVar(&c.flags.KubeAPIBurst, "kube-api-burst", 2000, "The operator's --kube-api-burst.")
	fs.BoolVar(&c.compareDefaults, "compare-defaults", false, "Provision and delete N workspaces again with the operator's default concurrency and rate limits.")
	fs.StringVar(&c.operatorBinary, "operator", "", "Operator binary; built from this checkout when empty.")
	fs.StringVar(&c.dir, "dir", "", "Directory for the stack's state and logs; a temporary one, removed after a successful run, when empty.")
	fs.BoolVar(&c.keep, "keep", false, "Keep -dir after a successful run; always with -pprof or -perf, whose profiles it holds.")
	fs.StringVar(&c.out, "out", "", "Write every figure to this JSON file.")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "Write the bench process's own CPU profile (client and AWS emulator) to this file.")
	fs.BoolVar(&c.cacheFootprint, "cache-footprint", true, "List what the operator's informers hold once all are Ready. At 1,000 workspaces that is about a gigabyte, which the API server of a small machine may not serve in time.")
	fs.BoolVar(&c.pprof, "pprof", false, "Run the operator with --pprof-bind-address and take Go profiles of it: CPU while it provisions and deletes, heap once provisioning has converged; profiles and their summaries go to -dir.")
	fs.IntVar(&c.pprofSeconds, "pprof-seconds", 20, "Length of each -pprof CPU profile, from the start of its phase.")
	fs.StringVar(&c.goMemLimit, "operator-gomemlimit", "", "GOMEMLIMIT of the operator process (e.g. 110MiB): the Go runtime's soft memory limit, which trades GC CPU for a lower peak; unset when empty.")
	fs.BoolVar(&c.perf, "perf", false, "Sample kube-apiserver's CPU with Linux perf while the operator provisions and deletes; reports go to -dir.")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.workspaces < 1 || c.workers < 1 || c.unrelated < 0 || c.probes < 0 {
		return c, errors.New("-workspaces and -workers must be positive, -unrelated and -probes not negative")
	}
	if c.pprofSeconds < 1 {
		return c, errors.New("-pprof-seconds must be positive")
	}
	c.keep = c.keep || c.pprof || c.perf
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = runBench(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runBench(cfg config) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.dir == "" {
		if cfg.dir, err = os.MkdirTemp("", "workspace-operator-bench-"); err != nil {
			return err
		}
	} else if cfg.dir, err = filepath.Abs(cfg.dir); err != nil {
		return err
	}
	defer func() {
		if err != nil || cfg.keep {
			logf("the stack's logs are kept in %s", cfg.dir)
			return
		}
		_ = os.RemoveAll(cfg.dir)
	}()
	if cfg.cpuprofile != "" {
		stopProfile, err := startCPUProfile(cfg.cpuprofile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}

	e, err := startEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.stop()) }()

	r, err := e.run(ctx)
	if err == nil {
		printTable(os.Stdout, r)
		printDetails(os.Stdout, r)
	} else {
		// Keep what was measured: a large run may fail late.
		r.Error = err.Error()
	}
	if cfg.out != "" {
		if werr := writeJSON(cfg.out, r); werr != nil {
			return errors.Join(err, werr)
		}
		logf("wrote %s", cfg.out)
	}
	return err
}

// run measures the phases in order on the running stack.
func (e *env) run(ctx context.Context) (*Results, error) {
	r := &Results{Started: benchStart}
	version, err := e.discovery.ServerVersion()
	if err != nil {
		return r, err
	}
	*r = Results{
		Started: benchStart,
		Machine: describeMachine(version.GitVersion),
		Settings: Settings{
			Workspaces: e.cfg.workspaces, Workers: e.cfg.workers, Probes: e.cfg.probes,
			SteadySeconds: e.cfg.steady.Seconds(), SettleSeconds: e.cfg.settle.Seconds(),
			DriftInterval: e.cfg.driftInterval.String(),
			GoMemLimit:    e.cfg.goMemLimit,
		},
	}
	defer func() { r.TotalSeconds = time.Since(benchStart).Seconds() }()
	if r.Unrelated, err = e.createUnrelated(ctx, e.cfg.unrelated); err != nil {
		return r, err
	}
	if r.Calibration, err = e.calibrate(ctx, e.cfg.flags); err != nil {
		return r, fmt.Errorf("calibration: %w", err)
	}
	if r.Floor, err = e.runFloor(ctx, r.Calibration); err != nil {
		return r, fmt.Errorf("floor: %w", err)
	}
	if r.Operator, err = e.runOperator(ctx, e.cfg.flags, operatorPrefix, "operator-main", true); err != nil {
		return r, fmt.Errorf("operator: %w", err)
	}
	if e.cfg.compareDefaults {
		if r.Defaults, err = e.runOperator(ctx, operatorFlags{Defaults: true}, defaultsPrefix, "operator-defaults", false); err != nil {
			return r, fmt.Errorf("operator with defaults: %w", err)
		}
	}
	return r, nil
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
