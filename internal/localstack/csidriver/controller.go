//go:build linux

package csidriver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	gib = 1 << 30
	// defaultCapacity is what a volume gets when the claim names no size.
	defaultCapacity = 1 * gib
)

// supportedAccessModes are the modes an EBS volume offers: one node at a time.
var supportedAccessModes = []csi.VolumeCapability_AccessMode_Mode{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
}

// ControllerGetCapabilities implements csi.ControllerServer. There is no
// PUBLISH_UNPUBLISH_VOLUME: nothing is attached, so the CSIDriver object says
// attachRequired: false and no external-attacher is needed.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// checkCapabilities returns why caps cannot be served, or "" when they can.
func checkCapabilities(caps []*csi.VolumeCapability) string {
	if len(caps) == 0 {
		return "volume capabilities are missing"
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return "only filesystem (mount) volumes are supported, not raw block"
		}
		mode := c.GetAccessMode().GetMode()
		supported := false
		for _, m := range supportedAccessModes {
			supported = supported || m == mode
		}
		if !supported {
			return fmt.Sprintf("access mode %s is not supported: like EBS, a volume is used by one node at a time (ReadWriteOnce, ReadWriteOncePod)", mode)
		}
	}
	return ""
}

// capacity picks a volume's size from the request, in whole GiB as EBS sizes
// volumes. The size is recorded, not enforced: the directory shares the root's
// file system.
func capacity(r *csi.CapacityRange, minimum int64) (int64, error) {
	required, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if required < 0 || limit < 0 {
		return 0, status.Error(codes.InvalidArgument, "capacity range must not be negative")
	}
	if limit > 0 && required > limit {
		return 0, status.Errorf(codes.InvalidArgument, "required bytes %d exceed limit bytes %d", required, limit)
	}
	if limit > 0 && minimum > limit {
		return 0, status.Errorf(codes.OutOfRange, "the source holds %d bytes, more than the limit of %d", minimum, limit)
	}
	base := max(required, minimum)
	if base == 0 {
		base = defaultCapacity
		if limit > 0 {
			base = min(base, limit)
		}
	}
	size := (base + gib - 1) / gib * gib
	if limit > 0 && size > limit {
		size = base // a limit below the next GiB still gets a volume
	}
	return size, nil
}

// topologyAllows reports whether this node's zone satisfies the requirement; with
// no requisite topology any zone does.
func (d *Driver) topologyAllows(req *csi.TopologyRequirement) bool {
	if len(req.GetRequisite()) == 0 {
		return true
	}
	for _, t := range req.GetRequisite() {
		if zone, ok := t.GetSegments()[ZoneKey]; ok && zone == d.cfg.Zone {
			return true
		}
	}
	return false
}

func (d *Driver) csiVolume(v *volume) *csi.Volume {
	out := &csi.Volume{
		VolumeId:           v.ID,
		CapacityBytes:      v.CapacityBytes,
		VolumeContext:      v.Params.volumeContext(),
		AccessibleTopology: []*csi.Topology{{Segments: map[string]string{ZoneKey: v.Zone}}},
	}
	switch {
	case v.SourceSnapshot != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: v.SourceSnapshot}}}
	case v.SourceVolume != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.SourceVolume}}}
	}
	return out
}

// CreateVolume implements csi.ControllerServer.
func (d *Driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is missing")
	}
	if why := checkCapabilities(req.GetVolumeCapabilities()); why != "" {
		return nil, status.Error(codes.InvalidArgument, why)
	}
	params, err := parseVolumeParams(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if !d.topologyAllows(req.GetAccessibilityRequirements()) {
		return nil, status.Errorf(codes.ResourceExhausted, "this driver serves zone %s=%s only, which the requisite topology excludes", ZoneKey, d.cfg.Zone)
	}

	d.mu.Lock()
	defer d.mu.Unlock()

	want := volume{ID: volumeID(req.GetName()), Name: req.GetName(), Params: params, Zone: d.cfg.Zone}
	var (
		minimum int64
		fill    func(dst string) error
	)
	switch src := req.GetVolumeContentSource(); {
	case src == nil:
	case src.GetSnapshot() != nil:
		snap, err := d.store.getSnapshot(src.GetSnapshot().GetSnapshotId())
		if err != nil {
			return nil, d.internal("CreateVolume", err)
		}
		if snap == nil {
			return nil, status.Errorf(codes.NotFound, "source snapshot %q does not exist", src.GetSnapshot().GetSnapshotId())
		}
		want.SourceSnapshot, minimum = snap.ID, snap.SizeBytes
		want.Params = inheritKey(params, snap.Params)
		dir := d.store.snapshotDir(snap.ID)
		fill = func(dst string) error { return copyTree(dir, dst) }
	case src.GetVolume() != nil:
		source, err := d.store.getVolume(src.GetVolume().GetVolumeId())
		if err != nil {
			return nil, d.internal("CreateVolume", err)
		}
		if source == nil {
			return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", src.GetVolume().GetVolumeId())
		}
		want.SourceVolume, minimum = source.ID, source.CapacityBytes
		want.Params = inheritKey(params, source.Params)
		dir := d.store.volumeDir(source.ID)
		fill = func(dst string) error { return copyTree(dir, dst) }
	default:
		return nil, status.Error(codes.InvalidArgument, "volume content source is neither a snapshot nor a volume")
	}

	existing, err := d.store.getVolume(want.ID)
	if err != nil {
		return nil, d.internal("CreateVolume", err)
	}
	if existing != nil {
		if why := incompatible(existing, &want, req.GetCapacityRange()); why != "" {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists as %s with %s", req.GetName(), existing.ID, why)
		}
		return &csi.CreateVolumeResponse{Volume: d.csiVolume(existing)}, nil
	}

	if want.CapacityBytes, err = capacity(req.GetCapacityRange(), minimum); err != nil {
		return nil, err
	}
	want.CreatedAt = d.cfg.Clock.Now().UTC()
	if err := d.store.createVolume(want, fill); err != nil {
		return nil, d.internal("CreateVolume", err)
	}
	d.cfg.Log.Info("Created volume", "name", want.Name, "volumeID", want.ID, "capacityBytes", want.CapacityBytes,
		"kmsKeyId", want.Params.KMSKeyID, "sourceSnapshot", want.SourceSnapshot, "sourceVolume", want.SourceVolume)
	return &csi.CreateVolumeResponse{Volume: d.csiVolume(&want)}, nil
}

// inheritKey gives a volume made from a source the source's encryption when the
// request names no key, as EBS does: data encrypted under a key stays under it. A
// request that names a key gets it, as EBS re-encrypts a restore under the key
// CreateVolume names.
func inheritKey(requested, source volumeParams) volumeParams {
	if requested.KMSKeyID != "" || !source.Encrypted {
		return requested
	}
	requested.Encrypted, requested.KMSKeyID = true, source.KMSKeyID
	return requested
}

// incompatible says how an existing volume differs from a repeated request, or ""
// when the request is a retry of the one that made it.
func incompatible(existing, want *volume, r *csi.CapacityRange) string {
	switch {
	case r.GetRequiredBytes() > existing.CapacityBytes:
		return fmt.Sprintf("%d bytes, fewer than the %d required", existing.CapacityBytes, r.GetRequiredBytes())
	case r.GetLimitBytes() > 0 && existing.CapacityBytes > r.GetLimitBytes():
		return fmt.Sprintf("%d bytes, more than the limit of %d", existing.CapacityBytes, r.GetLimitBytes())
	case existing.Params != want.Params:
		return fmt.Sprintf("parameters %v, not %v", existing.Params.volumeContext(), want.Params.volumeContext())
	case existing.SourceSnapshot != want.SourceSnapshot || existing.SourceVolume != want.SourceVolume:
		return fmt.Sprintf("content source snapshot=%q volume=%q", existing.SourceSnapshot, existing.SourceVolume)
	}
	return ""
}

// DeleteVolume implements csi.ControllerServer; an unknown volume is already deleted.
func (d *Driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.store.getVolume(req.GetVolumeId())
	if err != nil {
		return nil, d.internal("DeleteVolume", err)
	}
	if v == nil {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err := d.store.deleteVolume(v.ID); err != nil {
		return nil, d.internal("DeleteVolume", err)
	}
	d.cfg.Log.Info("Deleted volume", "name", v.Name, "volumeID", v.ID)
	return &csi.DeleteVolumeResponse{}, nil
}

// ValidateVolumeCapabilities implements csi.ControllerServer.
func (d *Driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is missing")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are missing")
	}
	d.mu.Lock()
	v, err := d.store.getVolume(req.GetVolumeId())
	d.mu.Unlock()
	if err != nil {
		return nil, d.internal("ValidateVolumeCapabilities", err)
	}
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", req.GetVolumeId())
	}
	if why := checkCapabilities(req.GetVolumeCapabilities()); why != "" {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: why}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// GetCapacity implements csi.ControllerServer: the free space of the root's file
// system, which every volume shares, or none outside this node's zone.
func (d *Driver) GetCapacity(_ context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if t := req.GetAccessibleTopology(); t != nil && t.GetSegments()[ZoneKey] != d.cfg.Zone {
		return &csi.GetCapacityResponse{}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.cfg.Root, &st); err != nil {
		return nil, d.internal("GetCapacity", err)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: int64(st.Bavail) * st.Bsize}, nil
}

func csiSnapshot(s *snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     s.ID,
		SourceVolumeId: s.SourceVolume,
		SizeBytes:      s.SizeBytes,
		CreationTime:   timestamppb.New(s.CreatedAt),
		ReadyToUse:     true,
	}
}

// CreateSnapshot implements csi.ControllerServer. The copy completes before the
// call returns, so a snapshot is ready to use as soon as it exists.
func (d *Driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name is missing")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume ID is missing")
	}
	if err := parseSnapshotParams(req.GetParameters()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := snapshotID(req.GetName())
	existing, err := d.store.getSnapshot(id)
	if err != nil {
		return nil, d.internal("CreateSnapshot", err)
	}
	if existing != nil {
		if existing.SourceVolume != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists as %s of volume %s, not of %s",
				req.GetName(), existing.ID, existing.SourceVolume, req.GetSourceVolumeId())
		}
		return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(existing)}, nil
	}
	v, err := d.store.getVolume(req.GetSourceVolumeId())
	if err != nil {
		return nil, d.internal("CreateSnapshot", err)
	}
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", req.GetSourceVolumeId())
	}
	snap := snapshot{
		ID:           id,
		Name:         req.GetName(),
		SourceVolume: v.ID,
		SizeBytes:    v.CapacityBytes,
		Params:       v.Params,
		CreatedAt:    d.cfg.Clock.Now().UTC(),
	}
	dir := d.store.volumeDir(v.ID)
	if err := d.store.createSnapshot(snap, func(dst string) error { return copyTree(dir, dst) }); err != nil {
		return nil, d.internal("CreateSnapshot", err)
	}
	d.cfg.Log.Info("Created snapshot", "name", snap.Name, "snapshotID", snap.ID, "volumeID", v.ID, "kmsKeyId", snap.Params.KMSKeyID)
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(&snap)}, nil
}

// DeleteSnapshot implements csi.ControllerServer; an unknown snapshot is already
// deleted. Volumes restored from it are copies and stay.
func (d *Driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot ID is missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, err := d.store.getSnapshot(req.GetSnapshotId())
	if err != nil {
		return nil, d.internal("DeleteSnapshot", err)
	}
	if snap == nil {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err := d.store.deleteSnapshot(snap.ID); err != nil {
		return nil, d.internal("DeleteSnapshot", err)
	}
	d.cfg.Log.Info("Deleted snapshot", "name", snap.Name, "snapshotID", snap.ID)
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots implements csi.ControllerServer. The token is the index of the
// next entry in ID order.
func (d *Driver) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max entries must not be negative")
	}
	d.mu.Lock()
	all, err := d.store.listSnapshots()
	d.mu.Unlock()
	if err != nil {
		return nil, d.internal("ListSnapshots", err)
	}
	var matching []snapshot
	for _, s := range all {
		if (req.GetSnapshotId() == "" || s.ID == req.GetSnapshotId()) &&
			(req.GetSourceVolumeId() == "" || s.SourceVolume == req.GetSourceVolumeId()) {
			matching = append(matching, s)
		}
	}
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		start, err = strconv.Atoi(tok)
		if err != nil || start < 0 || start > len(matching) {
			return nil, status.Errorf(codes.Aborted, "starting token %q is not one this driver returned for this list", tok)
		}
	}
	end := len(matching)
	if n := int(req.GetMaxEntries()); n > 0 && start+n < end {
		end = start + n
	}
	resp := &csi.ListSnapshotsResponse{}
	for i := start; i < end; i++ {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(&matching[i])})
	}
	if end < len(matching) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}
