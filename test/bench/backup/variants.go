package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/workspace-operator/workspace-operator/internal/backup"
)

// regions are the region names of the agent's locations. MinIO is started
// without a region, so it serves both; the second location is the same
// server under another name and another bucket, "as if" another region.
var regions = []string{"eu-west-1", "eu-central-1"}

// workspace is the workspace name the agent backs up as.
const workspace = "bench"

// variant is one way of backing up the tree.
type variant struct {
	name string
	// buckets is how many fresh buckets a run needs.
	buckets int
	// prepare runs before the measured command, unmeasured.
	prepare func(ctx context.Context, b *bench, r *runDir) error
	// command is the measured command.
	command func(b *bench, r *runDir) *exec.Cmd
}

// runDir is where one run of one variant keeps its buckets' names, logs
// and scratch files.
type runDir struct {
	dir     string
	buckets []string
}

func (r *runDir) path(name string) string { return filepath.Join(r.dir, name) }

var defaultVariants = []string{"floor", "restic", "ours-1", "ours-2", "ours-1-fastest"}

var variantByName = map[string]*variant{
	"floor":  {name: "floor", buckets: 1, command: floorCommand},
	"restic": {name: "restic", buckets: 1, prepare: resticInit, command: resticBackup},
	"ours-1": {name: "ours-1", buckets: 1, command: oursCommand()},
	"ours-2": {name: "ours-2", buckets: 2, command: oursCommand()},
	// Knobs of the agent, for finding what moves its time and memory.
	"ours-1-fastest": {name: "ours-1-fastest", buckets: 1, command: oursCommand("--compression", "fastest")},
	"ours-2-fastest": {name: "ours-2-fastest", buckets: 2, command: oursCommand("--compression", "fastest")},
	"ours-1-part8":   {name: "ours-1-part8", buckets: 1, command: oursCommand("--part-size-mib", "8")},
	"ours-2-part8":   {name: "ours-2-part8", buckets: 2, command: oursCommand("--part-size-mib", "8")},
}

func variantNames() []string {
	var names []string
	for n := range variantByName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// s3Env is the environment of a child that signs requests to MinIO.
func s3Env(b *bench) []string {
	env := cleanEnv()
	if b.env.caFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+b.env.caFile)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+minioUser,
		"AWS_SECRET_ACCESS_KEY="+minioPassword,
		// Keep the host's shared files out of the SDK's configuration.
		"AWS_CONFIG_FILE="+os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
		// KMS and S3 both at the gateway; restic takes its endpoint from
		// RESTIC_REPOSITORY.
		"AWS_ENDPOINT_URL="+b.env.gatewayURL,
	)
}

// floorCommand runs this binary's floor subcommand (floor.go).
func floorCommand(b *bench, r *runDir) *exec.Cmd {
	cmd := floorUpload(b.tree.Dir, r.buckets[0])
	cmd.Env = s3Env(b)
	return cmd
}

// floorUpload is the floor subcommand uploading source to bucket, with the agent's part
// size and concurrency.
func floorUpload(source, bucket string) *exec.Cmd {
	self, _ := os.Executable() // checked in bench.measure
	return exec.Command(self, "floor",
		"-bucket", bucket,
		"-source", source,
		"-part-size", strconv.FormatInt(backup.DefaultPartSize, 10),
		"-concurrency", strconv.Itoa(backup.DefaultUploadConcurrency))
}

// resticEnv points restic at the run's bucket, with its cache and the
// temporary files it stages packs in kept in the run's directory.
func resticEnv(b *bench, r *runDir) []string {
	return append(s3Env(b),
		"RESTIC_REPOSITORY=s3:"+b.env.gatewayURL+"/"+r.buckets[0],
		"RESTIC_PASSWORD=bench-backup",
		"RESTIC_CACHE_DIR="+r.path("restic-cache"),
		"TMPDIR="+r.dir,
	)
}

func resticInit(ctx context.Context, b *bench, r *runDir) error {
	cmd := exec.CommandContext(ctx, b.cfg.restic, resticArgs(b, "init")...)
	cmd.Env = resticEnv(b, r)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("restic init: %w\n%s", err, out)
	}
	return nil
}

// resticArgs has restic trust the gateway's certificate.
func resticArgs(b *bench, args ...string) []string {
	if b.env.caFile != "" {
		args = append([]string{"--cacert", b.env.caFile}, args...)
	}
	return args
}

func resticBackup(b *bench, r *runDir) *exec.Cmd {
	cmd := exec.Command(b.cfg.restic, resticArgs(b, "backup", "--host", "bench", b.tree.Dir)...)
	cmd.Env = resticEnv(b, r)
	return cmd
}

// oursCommand runs the agent with one location per bucket, the first in
// regions[0] and so on, and extra flags.
func oursCommand(extra ...string) func(b *bench, r *runDir) *exec.Cmd {
	return func(b *bench, r *runDir) *exec.Cmd {
		cmd := exec.Command(b.agentBin, agentArgs(b, r, extra)...)
		cmd.Env = s3Env(b)
		return cmd
	}
}

func agentArgs(b *bench, r *runDir, extra []string) []string {
	args := []string{"backup",
		"--workspace", workspace,
		"--source", b.tree.Dir,
		"--summary-file", r.path("summary.json"),
		"--log-format", "json",
	}
	for i, bucket := range r.buckets {
		args = append(args, "--location", regions[i]+"="+bucket+","+kmsAlias)
	}
	return append(args, extra...)
}
