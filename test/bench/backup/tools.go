package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// repoRoot is the main module's directory, where the agent is built from
// and setup.sh is found.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the workspace-operator module")
	}
	return filepath.Dir(gomod), nil
}

// resolveTools fills in the MinIO and restic binaries that were not given
// on the command line, from setup.sh.
func resolveTools(ctx context.Context, cfg *config, repo string) error {
	if cfg.minio != "" && cfg.restic != "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "test/bench/backup/setup.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("setup.sh: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), "=")
		switch {
		case name == "MINIO" && cfg.minio == "":
			cfg.minio = value
		case name == "RESTIC" && cfg.restic == "":
			cfg.restic = value
		}
	}
	if cfg.minio == "" || cfg.restic == "" {
		return fmt.Errorf("setup.sh did not name both MINIO and RESTIC:\n%s", out)
	}
	return nil
}

// buildAgent builds the standalone agent, the binary the "ours" variants
// run: the same code as the operator binary's backup subcommand, without
// the operator's weight.
func buildAgent(ctx context.Context, repo, workDir string) (string, error) {
	bin := filepath.Join(workDir, "backup-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./internal/backup/cmd/backup-agent")
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the agent: %w", err)
	}
	log.Printf("built %s", bin)
	return bin, nil
}

// toolVersion is the first line a program prints for its version flag.
func toolVersion(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// parseSize parses sizes like 1GiB, 512MiB or 4096 (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("size %q: want a positive integer with KiB, MiB or GiB", s)
			}
			return n << u.shift, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive integer with KiB, MiB or GiB", s)
	}
	return n, nil
}
