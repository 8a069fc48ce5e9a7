//go:build unix && !linux

package localstack

import "syscall"

// sysProcAttr puts a child in its own process group, so that a terminal's Ctrl-C reaches
// only its parent. Only Linux can also tie the child's life to its parent's.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// dieWithParent returns binary unchanged: without Pdeathsig a child outlives a crashed parent.
func dieWithParent(binary, _ string) (path string, wrapped bool, err error) {
	return binary, false, nil
}
