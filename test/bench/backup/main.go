// Command backup measures the backup agent (internal/backup) against a floor
// and a peer, side by side on one machine, uploading to a local MinIO:
//
//   - floor: a plain tar of the tree (no compression, no encryption) streamed
//     through the SDK's multipart uploader with the agent's part size and
//     concurrency: the cost of reading the tree and moving it to S3 at all;
//   - restic: `restic backup` into a fresh repository in a bucket;
//   - ours-1, ours-2: the agent binary with one location, and with two
//     (two buckets under two region names, on the same server);
//   - ours-1-fastest: ours-1 with zstd's fastest level.
//
// Every variant runs as a child process against a fresh bucket, so that its
// wall time, CPU time and peak RSS are its own; runs are interleaved so that
// drift (other load, MinIO's background work) spreads over all variants. All
// of them reach MinIO through one HTTPS gateway in this process, which also
// serves the AWS emulator's KMS (servers.go explains why).
//
//	go run ./test/bench/backup -size 1GiB -runs 5 -out bin/bench-backup.json -pprof bin/bench-backup
//
// The benchmark binary is also its own helper: "floor" runs the floor upload
// and "agent-pprof" runs the agent (backup.Main) under the CPU profiler.
//
// "full-path" (fullpath.go) measures the data mover's whole path on the local
// node instead: snapshot, clone, mover pod, two locations, cleanup, next to the
// floor and the agent on the host in the same run:
//
//	go run ./test/bench/backup full-path -size 1GiB -runs 3 -out bin/bench-backup-full-path.json
//
// See docs/performance-backup.md for the method and the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// config is the benchmark's command line.
type config struct {
	size     int64
	seed     uint64
	runs     int
	out      string
	pprofDir string
	workDir  string
	keep     bool
	tls      bool
	variants []string
	minio    string
	minioDir string
	restic   string
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench-backup: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

// dispatch runs a helper subcommand, or the benchmark when the first
// argument is a flag (or there is none).
func dispatch(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "floor":
			return floorMain(ctx, args[1:])
		case "agent-pprof":
			return agentPprofMain(ctx, args[1:])
		case "full-path":
			return fullPathMain(ctx, args[1:])
		}
	}
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	return run(ctx, cfg)
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("bench-backup", flag.ContinueOnError)
	size := fs.String("size", "1GiB", "Size of the generated tree (KiB, MiB, GiB suffixes).")
	fs.Uint64Var(&cfg.seed, "seed", 1, "Seed of the generated tree; the tree is cached per seed and size.")
	fs.IntVar(&cfg.runs, "runs", 5, "Runs of every variant; the report gives the median.")
	fs.StringVar(&cfg.out, "out", "", "Write the results as JSON to this file.")
	fs.StringVar(&cfg.pprofDir, "pprof", "", "After the measured runs, back up once more with ours-1 under the CPU profiler and write agent.cpu.pprof here.")
	fs.StringVar(&cfg.workDir, "workdir", "", "Directory for the built agent, the runs' logs and scratch files; default: a new temporary directory.")
	fs.BoolVar(&cfg.keep, "keep", false, "Keep the work directory.")
	fs.BoolVar(&cfg.tls, "tls", true, "Serve the clients' endpoint over HTTPS, as AWS does; false sends plain HTTP (and the SDK then signs every part's SHA-256).")
	variants := fs.String("variants", strings.Join(defaultVariants, ","), "Comma-separated variants to run, of: "+strings.Join(variantNames(), ", ")+".")
	fs.StringVar(&cfg.minio, "minio", "", "MinIO server binary; default: built by setup.sh.")
	fs.StringVar(&cfg.minioDir, "minio-dir", "", "MinIO's drive: empty for a directory on tmpfs (/dev/shm) when there is one, \"disk\" for one in the work directory, or a path.")
	fs.StringVar(&cfg.restic, "restic", "", "restic binary; default: found (or installed) by setup.sh.")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.size, err = parseSize(*size); err != nil {
		return nil, err
	}
	if cfg.runs < 1 {
		return nil, fmt.Errorf("-runs %d: want at least 1", cfg.runs)
	}
	for _, v := range strings.Split(*variants, ",") {
		if _, ok := variantByName[v]; !ok {
			return nil, fmt.Errorf("-variants: unknown variant %q", v)
		}
		cfg.variants = append(cfg.variants, v)
	}
	return cfg, nil
}

// run is the benchmark: tools, tree, servers, measured runs, report.
func run(ctx context.Context, cfg *config) error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	if err := resolveTools(ctx, cfg, repo); err != nil {
		return err
	}
	tree, err := cachedTree(cfg.size, cfg.seed)
	if err != nil {
		return err
	}
	workDir, cleanup, err := makeWorkDir(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	agentBin, err := buildAgent(ctx, repo, workDir)
	if err != nil {
		return err
	}
	env, err := startEnv(ctx, cfg, workDir)
	if err != nil {
		return err
	}
	defer env.close()

	// Warm the page cache for every variant alike: the tree is read once
	// before the runs, so no variant pays for the disk and none profits
	// from the one before it.
	if err := warmCache(tree.Dir); err != nil {
		return err
	}
	b := &bench{cfg: cfg, env: env, tree: tree, agentBin: agentBin, workDir: workDir}
	samples, err := b.measure(ctx)
	if err != nil {
		return err
	}
	rep := newReport(cfg, tree, env, samples)
	rep.print(os.Stdout)
	if cfg.out != "" {
		if err := rep.writeJSON(cfg.out); err != nil {
			return err
		}
		log.Printf("wrote %s", cfg.out)
	}
	if cfg.pprofDir != "" {
		return b.profile(ctx, cfg.pprofDir)
	}
	return nil
}

// makeWorkDir returns the work directory and what removes it.
func makeWorkDir(cfg *config) (string, func(), error) {
	dir := cfg.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "bench-backup-"); err != nil {
			return "", nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	cleanup := func() {
		if cfg.keep {
			log.Printf("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}
	return dir, cleanup, nil
}
