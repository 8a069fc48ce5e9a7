package localstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ownChain matches the iptables chains a node creates: kube-proxy's and the kubelet's
// (KUBE-), kube-router's (KUBE-ROUTER-, KUBE-NWPLCY-, KUBE-POD-FW-) and CNI plugins' (CNI-).
var ownChain = regexp.MustCompile(`^(KUBE-|KUBE_ROUTER|CNI-)`)

// ownIPSet matches the ipsets kube-router creates, IPv4 and IPv6.
var ownIPSet = regexp.MustCompile(`(?i)^(inet6:)?(kube-router|KUBE-)`)

// ipForwardFile remembers net.ipv4.ip_forward as it was before the first node started, so
// that cleanup puts it back even after a crash.
var ipForwardFile = filepath.Join(nodeRunDir, "ip_forward.orig")

// nodeLockFile serialises stacks with a node on one host: they share the node address,
// the bridge and the state directories. It lives outside them so that cleanup keeps it.
const nodeLockFile = "/run/workspace-operator-localstack.lock"

// lockHost waits until no other stack runs a node on this host (test packages run in
// parallel), and returns the held lock. The kernel releases it if this process dies.
func lockHost(ctx context.Context, logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(nodeLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the node lock: %w", err)
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", nodeLockFile, err)
		}
		if !waiting {
			logf("another stack runs a node on this host; waiting for it to stop")
			waiting = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("wait for another stack's node to stop (%s is locked): %w", nodeLockFile, context.Cause(ctx))
		case <-time.After(time.Second):
		}
	}
}

// prepareHost removes what a crashed node left, then gives the host what a node needs: the
// node address on lo, IP forwarding and the state directories.
func prepareHost(logf func(string, ...any)) error {
	if err := cleanupHost(logf); err != nil {
		return fmt.Errorf("remove a previous node's state: %w", err)
	}
	for _, dir := range []string{nodeRunDir, nodeDataDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	forward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return fmt.Errorf("read ip_forward: %w", err)
	}
	if err := os.WriteFile(ipForwardFile, forward, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IP forwarding: %w", err)
	}
	if err := os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("make bridged pod traffic pass iptables, which NetworkPolicies need (is br_netfilter loaded?): %w", err)
	}
	if out, err := exec.Command("ip", "address", "add", NodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("add the node address %s to lo: %w: %s", NodeIP, err, out)
	}
	// The kubelet refuses a cgroup root that does not exist; it creates the pods' cgroups
	// below it.
	for _, h := range cgroupHierarchies() {
		if err := os.Mkdir(filepath.Join(h, nodeCgroupParent), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create the node's cgroup: %w", err)
		}
	}
	return nil
}

// cleanupHost removes everything a node creates on the host, whether it stopped cleanly or
// crashed: its processes and containers, mounts, cgroups, iptables chains, ipsets, the
// bridge, the node address and its directories. It is a no-op on a clean host.
func cleanupHost(logf func(string, ...any)) error {
	var errs []error
	if n, err := killNodeProcesses(); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		logf("node cleanup: killed %d leftover processes (containers, shims)", n)
	}
	if err := unmountUnder(nodeRunDir, nodeDataDir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		if err := removeChains(family); err != nil {
			errs = append(errs, err)
		}
	}
	if err := destroyIPSets(); err != nil {
		errs = append(errs, err)
	}
	if err := exec.Command("ip", "link", "show", NodeBridge).Run(); err == nil {
		if out, err := exec.Command("ip", "link", "delete", NodeBridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w: %s", NodeBridge, err, out))
		}
	}
	if out, err := exec.Command("ip", "-o", "address", "show", "dev", "lo").Output(); err == nil &&
		bytes.Contains(out, []byte(" "+NodeIP+"/32 ")) {
		if out, err := exec.Command("ip", "address", "delete", NodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove the node address: %w: %s", err, out))
		}
	}
	if forward, err := os.ReadFile(ipForwardFile); err == nil {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", bytes.TrimSpace(forward), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore ip_forward: %w", err))
		}
	}
	removeContainerLogLinks(filepath.Join(nodeDataDir, "pod-logs"))
	if len(errs) == 0 {
		for _, dir := range []string{nodeRunDir, nodeDataDir} {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// killNodeProcesses kills every process that belongs to a node: those whose command line
// names the node's directories (containerd, its shims, the kubelet, the sidecars) and those in
// the node's cgroups (containers). It returns once they are gone.
func killNodeProcesses() (int, error) {
	self := os.Getpid()
	pids := map[int]bool{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(nodeRunDir)) || bytes.Contains(cmdline, []byte(nodeDataDir)) {
			pids[pid] = true
		}
	}
	for _, pid := range cgroupProcesses() {
		if pid != self {
			pids[pid] = true
		}
	}
	for pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				return len(pids), fmt.Errorf("process %d of the node survived SIGKILL", pid)
			}
			// A killed child of ours stays a zombie until reaped; it is harmless.
			if state, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && bytes.Contains(state, []byte(") Z ")) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return len(pids), nil
}

// cgroupHierarchies are the mounted cgroup v1 hierarchies (or the one v2 mount).
func cgroupHierarchies() []string {
	var dirs []string
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup")
	}
	return dirs
}

// cgroupProcesses are the processes in the node's cgroups.
func cgroupProcesses() []int {
	var pids []int
	for _, h := range cgroupHierarchies() {
		// A cgroup that vanishes during the walk holds no process: skip it.
		_ = filepath.WalkDir(filepath.Join(h, nodeCgroupParent), func(path string, d fs.DirEntry, walkErr error) error {
			if walkErr != nil || d.Name() != "cgroup.procs" {
				return nil //nolint:nilerr // see above
			}
			data, _ := os.ReadFile(path)
			for _, field := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(field); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the node's cgroups, children first.
func removeCgroups() error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, nodeCgroupParent), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for _, dir := range slices.Backward(dirs) {
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount below the given directories, deepest first: container
// root filesystems, volumes, network namespaces and shm mounts.
func unmountUnder(dirs ...string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountPath(fields[4])
		for _, dir := range dirs {
			if point == dir || strings.HasPrefix(point, dir+"/") {
				mounts = append(mounts, point)
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	var errs []error
	for _, point := range slices.Backward(mounts) {
		if err := syscall.Unmount(point, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) &&
			!errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", point, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes of spaces, tabs and backslashes.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeChains removes the node's chains, and every rule that jumps to them or matches their
// ipsets, from each table, leaving the host's own rules as they were.
func removeChains(family string) error {
	saved, err := exec.Command(family + "-save").Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("%s-save: %w", family, err)
	}
	kept, changed := withoutNodeRules(string(saved))
	if !changed {
		return nil
	}
	cmd := exec.Command(family + "-restore")
	cmd.Stdin = strings.NewReader(kept)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s-restore without the node's chains: %w: %s", family, err, out)
	}
	return nil
}

// withoutNodeRules is iptables-save output without the node's chains and the rules that
// refer to them, and whether anything was removed.
func withoutNodeRules(saved string) (string, bool) {
	var kept []string
	changed := false
	for _, line := range strings.Split(saved, "\n") {
		if nodeRule(line) {
			changed = true
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "\n"), changed
}

func nodeRule(line string) bool {
	fields := strings.Fields(line)
	switch {
	case len(fields) == 0:
		return false
	case strings.HasPrefix(fields[0], ":"):
		return ownChain.MatchString(strings.TrimPrefix(fields[0], ":"))
	case fields[0] != "-A" || len(fields) < 2:
		return false
	case ownChain.MatchString(fields[1]):
		return true
	}
	for i := 2; i+1 < len(fields); i++ {
		switch fields[i] {
		case "-j", "-g", "--jump", "--goto":
			if ownChain.MatchString(fields[i+1]) {
				return true
			}
		case "--match-set":
			if ownIPSet.MatchString(fields[i+1]) {
				return true
			}
		}
	}
	return false
}

// destroyIPSets destroys kube-router's ipsets; the rules using them are gone first.
func destroyIPSets() error {
	out, err := exec.Command("ipset", "list", "-n").Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("ipset list: %w", err)
	}
	var errs []error
	for _, name := range strings.Fields(string(out)) {
		if !ownIPSet.MatchString(name) {
			continue
		}
		if out, err := exec.Command("ipset", "destroy", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ipset destroy %s: %w: %s", name, err, out))
		}
	}
	return errors.Join(errs...)
}

// removeContainerLogLinks removes the kubelet's links in /var/log/containers (a path it does
// not let us choose) that point into the node's pod logs.
func removeContainerLogLinks(podLogs string) {
	const dir = "/var/log/containers"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, podLogs+"/") {
			_ = os.Remove(path)
		}
	}
	if rest, err := os.ReadDir(dir); err == nil && len(rest) == 0 {
		_ = os.Remove(dir)
	}
}
