//go:build linux

package csidriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// ServeConfig says where Serve listens.
type ServeConfig struct {
	// Endpoint is the path of the CSI socket the sidecars and the kubelet dial.
	Endpoint string
	// RegistryDir is the kubelet's plugins_registry directory; empty skips
	// registration (a controller-only process).
	RegistryDir string
}

// Serve runs the driver's CSI services and, when RegistryDir is set, the plugin
// registration service, until ctx ends or the kubelet rejects the driver. It
// replaces sockets a previous process left behind; its own go when the servers
// stop and close their listeners.
func Serve(ctx context.Context, d *Driver, sc ServeConfig) error {
	csiServer := grpc.NewServer()
	d.Register(csiServer)
	csiListener, err := listenUnix(sc.Endpoint)
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return csiServer.Serve(csiListener) })
	stop := []*grpc.Server{csiServer}

	var failed <-chan error
	if sc.RegistryDir != "" {
		// The CSI socket listens before the kubelet can learn of it: the kubelet
		// calls NodeGetInfo as soon as GetInfo has answered.
		reg := NewRegistrar(d.cfg.Name, sc.Endpoint, d.cfg.Log)
		regServer := grpc.NewServer()
		registerapi.RegisterRegistrationServer(regServer, reg)
		regPath := RegistrationSocket(sc.RegistryDir, d.cfg.Name)
		regListener, err := listenUnix(regPath)
		if err != nil {
			csiServer.Stop()
			return errors.Join(err, g.Wait())
		}
		g.Go(func() error { return regServer.Serve(regListener) })
		stop = append(stop, regServer)
		failed = reg.Failed()
	}
	d.cfg.Log.Info("Serving", "driver", d.cfg.Name, "endpoint", sc.Endpoint, "registryDir", sc.RegistryDir,
		"nodeID", d.cfg.NodeID, "zone", d.cfg.Zone, "root", d.cfg.Root)

	g.Go(func() error {
		var err error
		select {
		case <-ctx.Done():
		case err = <-failed:
		}
		for _, s := range stop {
			s.GracefulStop()
		}
		return err
	})
	return g.Wait()
}

// listenUnix listens on path, replacing a socket left by a process that died
// without removing it. Anything else at path is left alone and reported.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := removeSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
	}
	return os.Remove(path)
}
