package localstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shell starts sh -c script as a Process logging into a temporary directory.
func shell(t *testing.T, script string) *Process {
	t.Helper()
	p, err := StartProcess(ProcessOptions{
		Name:        "sh",
		Path:        "/bin/sh",
		Args:        []string{"-c", script},
		LogPath:     filepath.Join(t.TempDir(), "sh.log"),
		StopTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

func waitExit(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("process did not exit")
	}
}

func TestStopTerminatesTheProcess(t *testing.T) {
	p := shell(t, "sleep 30")
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopKillsAGroupThatIgnoresSIGTERM(t *testing.T) {
	// The ignored SIGTERM is inherited by sleep, a grandchild that must die too.
	p := shell(t, `trap "" TERM; sleep 30 & echo started; wait`)
	waitForLog(t, p, "started")

	err := p.Stop()
	if err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("Stop = %v, want an error saying the process was killed", err)
	}
	// The killed grandchild lingers until init reaps it.
	deadline := time.Now().Add(5 * time.Second)
	for err := syscall.Kill(-p.Pid(), 0); !errors.Is(err, syscall.ESRCH); err = syscall.Kill(-p.Pid(), 0) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has members (kill -0: %v)", p.Pid(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopReportsAnEarlierCrash(t *testing.T) {
	p := shell(t, "echo first; echo boom; exit 3")
	waitExit(t, p)

	err := p.Stop()
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Stop = %v, want the exit status", err)
	}
	if tail := p.Tail(1); tail != "boom" {
		t.Fatalf("Tail(1) = %q, want the last line", tail)
	}
}

func TestWaitHealthy(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer server.Close()
	p := shell(t, "sleep 30")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitHealthy(ctx, server.URL); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
}

func TestWaitHealthyGivesUpWhenTheProcessExits(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := shell(t, "echo cannot start; exit 1")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.WaitHealthy(ctx, "http://127.0.0.1:"+port+"/readyz")
	if err == nil || !strings.Contains(err.Error(), "exited before it became healthy") || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("WaitHealthy = %v, want an error quoting the log", err)
	}
	if ctx.Err() != nil {
		t.Fatal("WaitHealthy waited for the timeout instead of noticing the exit")
	}
}

func TestWaitForLine(t *testing.T) {
	p := shell(t, "echo starting; echo URL=http://127.0.0.1:1234; sleep 30")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	line, err := p.WaitForLine(ctx, "URL=")
	if err != nil || line != "URL=http://127.0.0.1:1234" {
		t.Fatalf("WaitForLine = %q, %v; want the announced line", line, err)
	}

	silent := shell(t, "echo starting; exit 2")
	if _, err := silent.WaitForLine(ctx, "URL="); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("WaitForLine = %v, want an error saying the process exited", err)
	}
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{1: "three", 2: "two\nthree", 5: "one\ntwo\nthree"} {
		if got, err := tailFile(path, n); err != nil || got != want {
			t.Errorf("tailFile(%d) = %q, %v; want %q", n, got, err, want)
		}
	}
}

func waitForLog(t *testing.T, p *Process, text string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Tail(10), text) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q; it says %q", text, p.Tail(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
