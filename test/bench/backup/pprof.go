package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"

	"github.com/workspace-operator/workspace-operator/internal/backup"
)

// agentPprofMain runs the agent's command line (backup.Main, exactly what
// cmd/backup-agent runs) under the CPU profiler, and writes the
// allocation profile at the end.
//
//	bench-backup agent-pprof -cpuprofile cpu.pprof -allocprofile allocs.pprof -- backup --workspace ...
func agentPprofMain(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("agent-pprof", flag.ContinueOnError)
	cpuProfile := fs.String("cpuprofile", "", "Write the CPU profile here.")
	allocProfile := fs.String("allocprofile", "", "Write the allocation profile here.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			err = errors.Join(err, f.Close())
		}()
	}
	if err := backup.Main(ctx, fs.Args(), os.Stdout, os.Stderr); err != nil {
		return err
	}
	if *allocProfile != "" {
		return writeProfile("allocs", *allocProfile)
	}
	return nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup(name).WriteTo(f, 0), f.Close())
}

// profile backs up once more like ours-1, under the profiler, and writes
// the profiles into dir.
func (b *bench) profile(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	r, err := b.newRunDir(ctx, variantByName["ours-1"], 0)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cpu, allocs := filepath.Join(dir, "agent.cpu.pprof"), filepath.Join(dir, "agent.allocs.pprof")
	args := append([]string{"agent-pprof", "-cpuprofile", cpu, "-allocprofile", allocs, "--"}, agentArgs(b, r, nil)...)
	cmd := exec.Command(self, args...)
	cmd.Env = s3Env(b)
	s, err := runChild(ctx, cmd, r)
	if err != nil {
		return fmt.Errorf("profiled run: %w", err)
	}
	log.Printf("profiled ours-1 run: %.2fs, cpu %.2fs; wrote %s and %s (go tool pprof -top %s)",
		s.Wall.Seconds(), s.cpu().Seconds(), cpu, allocs, cpu)
	return nil
}
