package localstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop waits for a process to exit after SIGTERM before it
// kills it.
const DefaultStopTimeout = 15 * time.Second

// healthPollInterval is how often a starting process is checked for being up.
const healthPollInterval = 100 * time.Millisecond

// ProcessOptions describe a child process.
type ProcessOptions struct {
	// Name identifies the process in errors.
	Name string
	// Path is the binary to run.
	Path string
	Args []string
	// Env is added to this process's environment.
	Env []string
	// LogPath receives the process's stdout and stderr. It is truncated first.
	LogPath string
	// StopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL;
	// DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// StopExitCode is a non-zero exit status that, after SIGTERM, still means a clean stop:
	// kube-scheduler without leader election exits 1 when told to stop.
	StopExitCode int
}

// Process is a child process running in its own process group, so that a terminal's
// Ctrl-C reaches only its parent, which stops it in order. On Linux it is also killed
// when its parent dies, so that a crashed test leaves nothing behind.
type Process struct {
	name        string
	logPath     string
	stopTimeout time.Duration
	stopCode    int
	cmd         *exec.Cmd

	// done is closed once the process has exited and exitErr is set.
	done    chan struct{}
	exitErr error

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts a child process with its output going to opts.LogPath.
func StartProcess(opts ProcessOptions) (*Process, error) {
	logFile, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log file for %s: %w", opts.Name, err)
	}
	cmd := exec.Command(opts.Path, opts.Args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}

	p := &Process{
		name:        opts.Name,
		logPath:     opts.LogPath,
		stopTimeout: opts.StopTimeout,
		stopCode:    opts.StopExitCode,
		cmd:         cmd,
		done:        make(chan struct{}),
	}
	if p.stopTimeout == 0 {
		p.stopTimeout = DefaultStopTimeout
	}
	go func() {
		p.exitErr = cmd.Wait()
		// The child holds its own copy of the descriptor; this one is no longer needed.
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file holding the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// exitStatus is how the exited process ended, as an error even when it exited with 0.
func (p *Process) exitStatus() error {
	if p.exitErr == nil {
		return errors.New("exit status 0")
	}
	return p.exitErr
}

// Stop sends SIGTERM to the process group and waits for the process to exit, killing the
// group when it takes longer than the stop timeout. It reports an exit on its own before
// Stop with a non-zero status, so that a crash is never mistaken for a clean stop. Stop is
// safe to call more than once and returns the same result each time.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

// Kill ends the process group at once, as a crash or an OOM kill would. A deliberate kill
// is not a failure: a later Stop reports nothing for it.
func (p *Process) Kill() error {
	var err error
	p.stopOnce.Do(func() {
		if err = signalGroup(p.Pid(), syscall.SIGKILL); err != nil {
			err = fmt.Errorf("kill %s: %w", p.name, err)
			return
		}
		<-p.done
	})
	return err
}

func (p *Process) stop() error {
	select {
	case <-p.done:
		if p.exitErr != nil {
			return fmt.Errorf("%s had already exited: %w (log: %s)", p.name, p.exitErr, p.logPath)
		}
		return nil
	default:
	}

	if err := signalGroup(p.Pid(), syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		if !exitedCleanly(p.exitErr, p.stopCode) {
			return fmt.Errorf("%s exited with %w after SIGTERM%s", p.name, p.exitErr, p.logHint())
		}
		return nil
	case <-time.After(p.stopTimeout):
		if err := signalGroup(p.Pid(), syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill %s: %w", p.name, err)
		}
		<-p.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.name, p.stopTimeout)
	}
}

// exitedCleanly reports whether a process asked to stop did so: with status 0 (or
// stopCode), or by dying of the SIGTERM itself because it installs no handler.
func exitedCleanly(err error, stopCode int) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return err == nil
	}
	status, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && (status.Signaled() && status.Signal() == syscall.SIGTERM ||
		stopCode != 0 && status.Exited() && status.ExitStatus() == stopCode)
}

func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// WaitHealthy polls url until it answers 200 OK, the process exits or ctx ends. HTTPS
// certificates are not verified: the url is a child's loopback endpoint serving a
// self-signed certificate.
func (p *Process) WaitHealthy(ctx context.Context, url string) error {
	client := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health check of a child process
		},
	}
	defer client.CloseIdleConnections()
	ticker := time.NewTicker(healthPollInterval)
	defer ticker.Stop()
	for {
		if answersOK(ctx, client, url) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become healthy at %s: %w%s", p.name, url, context.Cause(ctx), p.logHint())
		case <-p.done:
			return fmt.Errorf("%s exited before it became healthy: %w%s", p.name, p.exitStatus(), p.logHint())
		case <-ticker.C:
		}
	}
}

// WaitForLine waits until the process logs a line starting with prefix, and returns it.
// It gives up when the process exits or ctx ends.
func (p *Process) WaitForLine(ctx context.Context, prefix string) (string, error) {
	ticker := time.NewTicker(healthPollInterval)
	defer ticker.Stop()
	for {
		if line, ok := findLine(p.logPath, prefix); ok {
			return line, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s logged no line starting with %q: %w%s", p.name, prefix, context.Cause(ctx), p.logHint())
		case <-p.done:
			if line, ok := findLine(p.logPath, prefix); ok {
				return line, nil
			}
			return "", fmt.Errorf("%s exited before it logged a line starting with %q: %w%s", p.name, prefix, p.exitStatus(), p.logHint())
		case <-ticker.C:
		}
	}
}

// findLine returns the first line of the file at path that starts with prefix.
func findLine(path, prefix string) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	lines := strings.Split(string(data), "\n")
	// The last element is a line still being written, or empty.
	for _, line := range lines[:len(lines)-1] {
		if strings.HasPrefix(line, prefix) {
			return line, true
		}
	}
	return "", false
}

func answersOK(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	tail, err := tailFile(p.logPath, n)
	if err != nil {
		return err.Error()
	}
	return tail
}

// logHint points at the log and quotes its end, for errors that a human reads.
func (p *Process) logHint() string {
	return fmt.Sprintf("\nlast lines of %s:\n%s", p.logPath, p.Tail(20))
}

// tailBytes bounds how much of a log tailFile reads: control plane logs grow large.
const tailBytes = 64 << 10

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	offset := max(info.Size()-tailBytes, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, offset, info.Size()-offset))
	if err != nil {
		return "", fmt.Errorf("read log %s: %w", path, err)
	}
	lines := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n"), nil
}

// freePort finds a loopback port that nothing listens on. Another process may take it
// before the child binds it; the window is small enough for a development stack.
func freePort() (string, error) {
	return freePortOn("127.0.0.1")
}

// freePortOn is a free TCP port on the local address host.
func freePortOn(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
