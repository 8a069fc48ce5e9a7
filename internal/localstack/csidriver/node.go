//go:build linux

package csidriver

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeGetInfo implements csi.NodeServer. The kubelet labels the Node with the
// zone and the scheduler counts the node's volumes against MaxVolumesPerNode.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             d.cfg.NodeID,
		MaxVolumesPerNode:  d.cfg.MaxVolumesPerNode,
		AccessibleTopology: &csi.Topology{Segments: map[string]string{ZoneKey: d.cfg.Zone}},
	}, nil
}

// NodeGetCapabilities implements csi.NodeServer. There is no STAGE_UNSTAGE_VOLUME
// (a directory needs no per-node staging mount) and no VOLUME_MOUNT_GROUP: the
// driver does not apply fsGroup itself, the kubelet does, because the CSIDriver
// object says fsGroupPolicy: File.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

// NodePublishVolume implements csi.NodeServer: a bind mount of the volume's
// directory on the target path, which the driver creates.
func (d *Driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path is missing")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is missing")
	}
	if why := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); why != "" {
		return nil, status.Error(codes.InvalidArgument, why)
	}
	readOnly := req.GetReadonly() ||
		req.GetVolumeCapability().GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY

	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.store.getVolume(req.GetVolumeId())
	if err != nil {
		return nil, d.internal("NodePublishVolume", err)
	}
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", req.GetVolumeId())
	}
	source, target := d.store.volumeDir(v.ID), req.GetTargetPath()
	// The kubelet creates the target's parent; the target itself is the driver's.
	if err := os.Mkdir(target, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, d.internal("NodePublishVolume", err)
	}
	mounted, err := isMountPoint(target)
	if err != nil {
		return nil, d.internal("NodePublishVolume", err)
	}
	if mounted {
		return d.alreadyPublished(source, target, readOnly)
	}
	if err := bindMount(source, target, readOnly); err != nil {
		return nil, d.internal("NodePublishVolume", err)
	}
	d.cfg.Log.Info("Published volume", "volumeID", v.ID, "targetPath", target, "readOnly", readOnly)
	return &csi.NodePublishVolumeResponse{}, nil
}

// alreadyPublished answers a repeated NodePublishVolume: success when the same
// volume is mounted the same way, AlreadyExists when something else is there.
func (d *Driver) alreadyPublished(source, target string, readOnly bool) (*csi.NodePublishVolumeResponse, error) {
	same, err := sameFile(source, target)
	if err != nil {
		return nil, d.internal("NodePublishVolume", err)
	}
	if !same {
		return nil, status.Errorf(codes.AlreadyExists, "target path %s has another mount", target)
	}
	ro, err := isReadOnlyMount(target)
	if err != nil {
		return nil, d.internal("NodePublishVolume", err)
	}
	if ro != readOnly {
		return nil, status.Errorf(codes.AlreadyExists, "volume is already mounted on %s with readonly=%t", target, ro)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume implements csi.NodeServer: unmount, then remove the target.
// A target that is already gone is success, so the kubelet's retries converge.
func (d *Driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is missing")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "target path is missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.store.getVolume(req.GetVolumeId())
	if err != nil {
		return nil, d.internal("NodeUnpublishVolume", err)
	}
	if v == nil {
		// The spec's answer for an unknown volume, unless there is still a mount to
		// clean up: a volume deleted while published must not pin its target.
		mounted, err := isMountPoint(req.GetTargetPath())
		if err != nil || !mounted {
			return nil, status.Errorf(codes.NotFound, "volume %q does not exist", req.GetVolumeId())
		}
	}
	if err := unmountAndRemove(req.GetTargetPath()); err != nil {
		return nil, d.internal("NodeUnpublishVolume", err)
	}
	d.cfg.Log.Info("Unpublished volume", "volumeID", req.GetVolumeId(), "targetPath", req.GetTargetPath())
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
