package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// agentBinary is cmd/backup-agent, built once for all process tests.
var agentBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agentBinary.dir != "" {
		_ = os.RemoveAll(agentBinary.dir)
	}
	os.Exit(code)
}

func buildAgent(t *testing.T) string {
	t.Helper()
	agentBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "backup-agent-")
		if err != nil {
			agentBinary.err = err
			return
		}
		agentBinary.dir = dir
		// World-readable, so that the agent can also run unprivileged.
		if err := os.Chmod(dir, 0o755); err != nil {
			agentBinary.err = err
			return
		}
		agentBinary.path = filepath.Join(dir, "backup-agent")
		out, err := exec.Command("go", "build", "-o", agentBinary.path, "./cmd/backup-agent").CombinedOutput()
		if err != nil {
			agentBinary.err = errors.New(string(out))
		}
	})
	if agentBinary.err != nil {
		t.Fatalf("build backup-agent: %v", agentBinary.err)
	}
	return agentBinary.path
}

// agentRun is a finished run of the agent binary.
type agentRun struct {
	stdout, stderr string
	exitCode       int
}

// runAgent runs the agent binary against the emulator of e. wrap, when
// set, adjusts the command before it starts.
func runAgent(t *testing.T, e *env, wrap func(*exec.Cmd), args ...string) agentRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildAgent(t), args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"AWS_ACCESS_KEY_ID=" + awsemu.TestAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + awsemu.TestSecretAccessKey,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
		// One emulator for every region: the SDK's endpoint settings are not per region.
		"AWS_ENDPOINT_URL_KMS=" + e.emus[primary].url,
		"AWS_ENDPOINT_URL_S3=" + e.emus[primary].url,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if wrap != nil {
		wrap(cmd)
	}
	err := cmd.Run()
	run := agentRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		run.exitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("run agent: %v", err)
	}
	t.Logf("backup-agent %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), run.exitCode, run.stdout, run.stderr)
	return run
}

// locationArgs are the --location flags of e's locations.
func locationArgs(e *env) []string {
	var args []string
	for _, l := range e.locations {
		args = append(args, "--location", l.String()+","+l.Key)
	}
	return args
}

func TestProcessBackupAndRestore(t *testing.T) {
	e := newSharedEnv(t)
	sources := twoSources(t, 6<<20)
	summaryFile := filepath.Join(t.TempDir(), "termination-log")

	args := append([]string{"backup", "--workspace", testWorkspace, "--summary-file", summaryFile, "--log-format", "json"}, locationArgs(e)...)
	for _, s := range sources {
		args = append(args, "--source", s.Path)
	}
	run := runAgent(t, e, nil, args...)
	if run.exitCode != 0 {
		t.Fatalf("backup exited %d", run.exitCode)
	}
	written, err := os.ReadFile(summaryFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != run.stdout {
		t.Errorf("summary file %q differs from stdout %q", written, run.stdout)
	}
	var sum Summary
	if err := json.Unmarshal(written, &sum); err != nil {
		t.Fatalf("summary is not JSON: %v", err)
	}
	if sum.Status != StatusSucceeded || len(sum.Locations) != 2 || sum.Locations[1].Backups != 1 || sum.Locations[1].Newest != sum.BackupID {
		t.Errorf("summary = %+v", sum)
	}
	for _, line := range strings.Split(strings.TrimSpace(run.stderr), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not a JSON log record: %q", line)
		}
	}

	run = runAgent(t, e, nil, append([]string{"restore", "--workspace", testWorkspace, "--list"}, locationArgs(e)...)...)
	if run.exitCode != 0 || strings.Count(run.stdout, sum.BackupID) != 2 {
		t.Errorf("--list exited %d and printed %q, want backup %s in both locations", run.exitCode, run.stdout, sum.BackupID)
	}

	for _, backupID := range []string{"latest", sum.BackupID} {
		target := filepath.Join(t.TempDir(), "restore")
		run = runAgent(t, e, nil, append([]string{"restore", "--workspace", testWorkspace, "--backup", backupID, "--target", target}, locationArgs(e)...)...)
		if run.exitCode != 0 {
			t.Fatalf("restore exited %d", run.exitCode)
		}
		checkRestored(t, target, sources)
	}
}

// TestProcessUnreadableFile runs the agent unprivileged (as nobody when
// the tests run as root), as the CronJob would.
func TestProcessUnreadableFile(t *testing.T) {
	e := newSharedEnv(t)
	src := filepath.Join(t.TempDir(), "vol")
	writeFile(t, filepath.Join(src, "readable"), []byte("ok"), 0o644)
	writeFile(t, filepath.Join(src, "secret"), []byte("no"), 0o000)
	var wrap func(*exec.Cmd)
	if os.Geteuid() == 0 {
		for dir := src; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		wrap = func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
	}
	run := runAgent(t, e, wrap, append([]string{"backup", "--workspace", testWorkspace, "--source", src, "--summary-file", ""}, locationArgs(e)...)...)
	if run.exitCode == 0 {
		t.Fatal("backup with an unreadable file succeeded")
	}
	if !strings.Contains(run.stderr, "permission denied") || !strings.Contains(run.stderr, filepath.Join(src, "secret")) {
		t.Errorf("stderr does not name the unreadable file and the reason")
	}
	var sum Summary
	if err := json.Unmarshal([]byte(run.stdout), &sum); err != nil || sum.Status != StatusFailed {
		t.Errorf("summary %q: %v", run.stdout, err)
	}
	for _, l := range e.locations {
		for _, k := range e.keys(t, l) {
			if strings.HasSuffix(k, manifestName) {
				t.Errorf("location %s has a manifest: %s", l, k)
			}
		}
	}
}

// TestProcessRestoreTargetFull restores into a target that takes no more
// than 512 KiB per file (a file size limit stands in for a full volume):
// the restore fails with the reason, does not try the next location, and
// leaves the target as it was.
func TestProcessRestoreTargetFull(t *testing.T) {
	e := newSharedEnv(t)
	e.mustBackup(t, twoSources(t, 3<<20)...)
	target := filepath.Join(t.TempDir(), "restore")
	limit := func(cmd *exec.Cmd) {
		// Go ignores SIGXFSZ, so the write fails with EFBIG instead.
		cmd.Args = append([]string{"sh", "-c", `ulimit -f 1024 && exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
	run := runAgent(t, e, limit, append([]string{"restore", "--workspace", testWorkspace, "--target", target}, locationArgs(e)...)...)
	if run.exitCode == 0 {
		t.Fatal("restore into a full target succeeded")
	}
	if !strings.Contains(run.stderr, "file too large") || !strings.Contains(run.stderr, "big.bin") {
		t.Errorf("stderr does not say which file could not be written and why")
	}
	if strings.Contains(run.stderr, e.locations[1].String()) {
		t.Errorf("restore tried the next location after a failure of the target")
	}
	if entries, err := os.ReadDir(target); err != nil || len(entries) != 0 {
		t.Errorf("target holds %d entries after the failed restore (%v)", len(entries), err)
	}
}

func TestProcessRejectsBadInvocations(t *testing.T) {
	e := newSharedEnv(t)
	src := t.TempDir()
	loc := e.locations[0].String() + "," + testAlias
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no subcommand"},
		{[]string{"prune"}, `unknown subcommand "prune"`},
		{[]string{"backup", "--workspace", testWorkspace, "--location", loc, "--source", src, "--retention-days", "8", "--summary-file", ""}, "retention of 8 days"},
		{[]string{"backup", "--location", loc, "--source", src, "--summary-file", ""}, "workspace"},
		{[]string{"backup", "--workspace", testWorkspace, "--location", "eu-west-1:bucket", "--source", src}, "want region=bucket"},
		{[]string{"backup", "--workspace", testWorkspace, "--location", loc, "--source", src, "--part-size-mib", "1"}, "must be 0 (automatic) or 5 to 5120"},
		{[]string{"restore", "--workspace", testWorkspace, "--location", loc}, "no target directory"},
		{[]string{"restore", "--workspace", testWorkspace, "--location", loc, "--target", src, "stray"}, "unexpected arguments"},
	} {
		run := runAgent(t, e, nil, tc.args...)
		if run.exitCode != 1 || !strings.Contains(run.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and %q", tc.args, run.exitCode, run.stderr, tc.want)
		}
	}
}
