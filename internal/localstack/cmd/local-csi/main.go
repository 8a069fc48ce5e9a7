//go:build linux

// Command local-csi is the local stack's CSI driver: one process serving the CSI
// Identity, Controller and Node services over directories, and registering itself
// with the kubelet as node-driver-registrar would. See package csidriver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/workspace-operator/workspace-operator/internal/localstack/csidriver"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "local-csi:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	hostname, _ := os.Hostname()
	fs := flag.NewFlagSet("local-csi", flag.ContinueOnError)
	var (
		cfg   csidriver.Config
		serve csidriver.ServeConfig
		zopts zap.Options
	)
	fs.StringVar(&cfg.Name, "driver-name", csidriver.DefaultName, "CSI driver name, as StorageClasses and the CSIDriver object name it")
	fs.StringVar(&cfg.Root, "root", "/var/lib/workspace-operator-localstack/csi", "directory volumes and snapshots are kept under")
	fs.StringVar(&cfg.NodeID, "node-id", hostname, "node ID reported to the kubelet: the Node's name")
	fs.StringVar(&cfg.Zone, "zone", "local-1a", "this node's zone, the value of "+csidriver.ZoneKey)
	fs.Int64Var(&cfg.MaxVolumesPerNode, "max-volumes-per-node", 0, "volumes the scheduler may place on the node; 0 for no limit")
	fs.StringVar(&serve.Endpoint, "endpoint", "/var/lib/kubelet/plugins/"+csidriver.DefaultName+"/csi.sock", "path of the CSI socket the sidecars and the kubelet dial")
	fs.StringVar(&serve.RegistryDir, "registration-dir", "/var/lib/kubelet/plugins_registry", "the kubelet's plugins_registry directory; empty to serve without registering")
	zopts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Log = zap.New(zap.UseFlagOptions(&zopts)).WithName("local-csi")

	d, err := csidriver.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return csidriver.Serve(ctx, d, serve)
}
