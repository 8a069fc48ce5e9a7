//go:build linux

package csidriver

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/go-logr/logr"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Registrar answers the kubelet's plugin watcher, which finds the registration
// socket in its plugins_registry directory, asks GetInfo, connects to Endpoint and
// reports the outcome. It does what node-driver-registrar does as a sidecar.
type Registrar struct {
	registerapi.UnimplementedRegistrationServer

	// DriverName and Endpoint (the CSI socket's path as the kubelet sees it) are
	// what the kubelet registers.
	DriverName string
	Endpoint   string
	Log        logr.Logger
	// failed receives the kubelet's error when it rejects the driver.
	failed chan error
}

// NewRegistrar returns a registrar for the driver listening on endpoint.
func NewRegistrar(driverName, endpoint string, log logr.Logger) *Registrar {
	return &Registrar{DriverName: driverName, Endpoint: endpoint, Log: log, failed: make(chan error, 1)}
}

// RegistrationSocket is where node-driver-registrar would put the socket, so a
// kubelet operator finds it where they expect.
func RegistrationSocket(registryDir, driverName string) string {
	return filepath.Join(registryDir, driverName+"-reg.sock")
}

// GetInfo implements registerapi.RegistrationServer.
func (r *Registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.DriverName,
		Endpoint:          r.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

// NotifyRegistrationStatus implements registerapi.RegistrationServer. A rejected
// registration is never retried by the kubelet while the socket stays, so it ends
// the process, as it ends node-driver-registrar, for the supervisor to see.
func (r *Registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.GetPluginRegistered() {
		r.Log.Info("Registered with the kubelet", "driver", r.DriverName, "endpoint", r.Endpoint)
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	err := fmt.Errorf("the kubelet rejected driver %s: %s", r.DriverName, s.GetError())
	r.Log.Error(err, "Registration failed")
	select {
	case r.failed <- err:
	default:
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Failed delivers the kubelet's rejection, if it comes.
func (r *Registrar) Failed() <-chan error { return r.failed }
