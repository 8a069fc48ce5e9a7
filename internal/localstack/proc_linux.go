package localstack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// sysProcAttr puts a child in its own process group and has the kernel kill it when its
// parent dies, even by SIGKILL or a test timeout, which no deferred Stop survives.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// dieWithParent returns a path that runs binary so that the kernel kills it when this
// process dies. envtest starts etcd and kube-apiserver itself, with no way to set
// Pdeathsig, so they run through a script that execs setpriv, which sets it and execs the
// binary in the same process. Without setpriv the binary is returned unchanged and
// survives a crash of its parent.
func dieWithParent(binary, scriptDir string) (path string, wrapped bool, err error) {
	setpriv := lookSetpriv()
	if setpriv == "" {
		return binary, false, nil
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %s --pdeathsig KILL -- %s \"$@\"\n", shellQuote(setpriv), shellQuote(binary))
	path = filepath.Join(scriptDir, filepath.Base(binary))
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", false, fmt.Errorf("write launcher for %s: %w", binary, err)
	}
	return path, true, nil
}

// lookSetpriv is the path of util-linux's setpriv, or "" when it is not installed.
func lookSetpriv() string {
	path, err := exec.LookPath("setpriv")
	if err != nil {
		return ""
	}
	return path
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
