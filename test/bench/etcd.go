package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdSize is etcd's backend: the file, and the part of it live data uses. etcd refuses
// every write, for every client, once the file reaches its quota (2 GiB by default).
type EtcdSize struct {
	FileMiB  float64 `json:"fileMiB"`
	InUseMiB float64 `json:"inUseMiB"`
}

// etcdURL is the client URL the stack's etcd listens on, from its command line.
func etcdURL(pid int) (string, error) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", err
	}
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if url, ok := strings.CutPrefix(arg, "--listen-client-urls="); ok {
			return strings.Split(url, ",")[0], nil
		}
	}
	return "", fmt.Errorf("etcd (pid %d) has no --listen-client-urls", pid)
}

func (e *env) etcd(ctx context.Context, fn func(ctx context.Context, c *clientv3.Client, url string) error) error {
	url, err := etcdURL(e.pids["etcd"])
	if err != nil {
		return err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return fn(ctx, c, url)
}

// measureEtcd is etcd's size now, nil when it cannot be read: the figure is context.
func (e *env) measureEtcd(ctx context.Context) *EtcdSize {
	size, err := e.etcdSize(ctx)
	if err != nil {
		logf("could not read etcd's size: %v", err)
		return nil
	}
	return &size
}

func (e *env) etcdSize(ctx context.Context) (EtcdSize, error) {
	var size EtcdSize
	err := e.etcd(ctx, func(ctx context.Context, c *clientv3.Client, url string) error {
		status, err := c.Status(ctx, url)
		if err != nil {
			return err
		}
		size = EtcdSize{FileMiB: float64(status.DbSize) / mib, InUseMiB: float64(status.DbSizeInUse) / mib}
		return nil
	})
	return size, err
}

// resetEtcd compacts etcd's history and defragments its file, so that a phase starts with
// the backend the previous phase found rather than with its garbage: kube-apiserver only
// compacts every five minutes and nothing defragments, and at 1,000 workspaces the floor
// alone leaves more than a gigabyte of old revisions, enough to run etcd out of quota in
// the next phase.
func (e *env) resetEtcd(ctx context.Context) error {
	return e.etcd(ctx, func(ctx context.Context, c *clientv3.Client, url string) error {
		current, err := c.Get(ctx, "compact-revision-probe")
		if err != nil {
			return err
		}
		if _, err := c.Compact(ctx, current.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !strings.Contains(err.Error(), "compacted") {
			return fmt.Errorf("compact etcd: %w", err)
		}
		if _, err := c.Defragment(ctx, url); err != nil {
			return fmt.Errorf("defragment etcd: %w", err)
		}
		return nil
	})
}
