//go:build linux

package csidriver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"
)

const (
	// DefaultName is the driver name StorageClasses and the CSIDriver object use.
	DefaultName = "local.csi.workspace-operator.io"
	// ZoneKey is the topology key of a node's zone, like EBS's
	// topology.ebs.csi.aws.com/zone. The kubelet copies it onto the Node's labels.
	ZoneKey = "topology.local.csi.workspace-operator.io/zone"
	// Version is reported by GetPluginInfo.
	Version = "0.1.0"
)

// Config is what a driver serves and where it keeps its data.
type Config struct {
	// Name is the CSI driver name (DefaultName unless the stack runs two).
	Name string
	// Root is the directory volumes and snapshots are kept under.
	Root string
	// NodeID is reported by NodeGetInfo; the kubelet checks it against its node.
	NodeID string
	// Zone is this node's value of ZoneKey.
	Zone string
	// MaxVolumesPerNode is reported by NodeGetInfo; 0 means no limit.
	MaxVolumesPerNode int64
	// Clock stamps snapshots; the real clock when nil.
	Clock clock.PassiveClock
	Log   logr.Logger
}

// Driver serves the CSI Identity, Controller and Node services over directories.
// One machine runs both halves, so the controller and the node share the store.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg Config
	// mu serialises every call that reads or changes the store or a mount: a
	// snapshot copy holds it for its whole length, which is what makes the snapshot
	// see no write that a later call makes. The local stack's volumes are small.
	mu    sync.Mutex
	store *store
}

// New opens (creating if needed) the driver's root directory.
func New(cfg Config) (*Driver, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("driver name is empty"))
	}
	if cfg.Root == "" {
		errs = append(errs, errors.New("root directory is empty"))
	}
	if cfg.NodeID == "" {
		errs = append(errs, errors.New("node ID is empty"))
	}
	if cfg.Zone == "" {
		errs = append(errs, errors.New("zone is empty"))
	}
	if cfg.MaxVolumesPerNode < 0 {
		errs = append(errs, fmt.Errorf("max volumes per node %d is negative", cfg.MaxVolumesPerNode))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s, err := openStore(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Root, err)
	}
	return &Driver{cfg: cfg, store: s}, nil
}

// Register adds the three CSI services to a gRPC server.
func (d *Driver) Register(s grpc.ServiceRegistrar) {
	csi.RegisterIdentityServer(s, d)
	csi.RegisterControllerServer(s, d)
	csi.RegisterNodeServer(s, d)
}

// GetPluginInfo implements csi.IdentityServer.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.Name, VendorVersion: Version}, nil
}

// GetPluginCapabilities implements csi.IdentityServer.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	service := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		service(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		service(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
	}}, nil
}

// Probe implements csi.IdentityServer: the driver is ready once New returned.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// internal logs err with the call it failed and returns it as codes.Internal.
func (d *Driver) internal(call string, err error) error {
	d.cfg.Log.Error(err, "CSI call failed", "call", call)
	return status.Errorf(codes.Internal, "%s: %v", call, err)
}
