//go:build linux

package csidriver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const testKey = "arn:aws:kms:eu-west-2:111122223333:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"

// startDriver serves a driver from a temporary root on a unix socket, with
// registration into a temporary plugins_registry, and stops it when t ends.
func startDriver(t *testing.T) (root, endpoint, registry string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bind mounts and chown need root")
	}
	dir := t.TempDir()
	root, endpoint, registry = filepath.Join(dir, "root"), filepath.Join(dir, "csi.sock"), filepath.Join(dir, "registry")
	d, err := New(Config{Name: DefaultName, Root: root, NodeID: "node-1", Zone: "local-1a", Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, d, ServeConfig{Endpoint: endpoint, RegistryDir: registry}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		for _, p := range []string{endpoint, RegistrationSocket(registry, DefaultName)} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("socket %s left behind", p)
			}
		}
	})
	waitForSocket(t, endpoint)
	waitForSocket(t, RegistrationSocket(registry, DefaultName))
	return root, endpoint, registry
}

func waitForSocket(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

func dial(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestSanity runs the kubernetes-csi sanity suite, specs we did not write, against
// the driver. Every spec runs; none is skipped by configuration.
func TestSanity(t *testing.T) {
	_, endpoint, _ := startDriver(t)
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix:" + endpoint
	dir := t.TempDir()
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeParameters = map[string]string{ParamEncrypted: "true", ParamKMSKeyID: testKey, ParamType: "gp3"}
	cfg.TestVolumeSize = 1 * gib
	sanity.Test(t, cfg)
}

func mountCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func createVolume(t *testing.T, c csi.ControllerClient, req *csi.CreateVolumeRequest) *csi.Volume {
	t.Helper()
	req.VolumeCapabilities = []*csi.VolumeCapability{mountCap()}
	resp, err := c.CreateVolume(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", req.Name, err)
	}
	return resp.Volume
}

// publish mounts the volume in a temporary target and unmounts it when t ends.
func publish(t *testing.T, n csi.NodeClient, volumeID string, readOnly bool) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "mount")
	req := &csi.NodePublishVolumeRequest{VolumeId: volumeID, TargetPath: target, VolumeCapability: mountCap(), Readonly: readOnly}
	for range 2 { // the second call proves idempotency
		if _, err := n.NodePublishVolume(context.Background(), req); err != nil {
			t.Fatalf("NodePublishVolume: %v", err)
		}
	}
	t.Cleanup(func() {
		for range 2 {
			if _, err := n.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target}); err != nil {
				t.Errorf("NodeUnpublishVolume: %v", err)
			}
		}
		if _, err := os.Lstat(target); !os.IsNotExist(err) {
			t.Errorf("target %s not removed: %v", target, err)
		}
	})
	return target
}

// writeTree fills dir with what a restore must keep: owners, modes, a setuid bit,
// an xattr, a symlink, a hard link, a FIFO.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "data"), []byte("before"), 0o640))
	must(os.Chown(filepath.Join(dir, "sub", "data"), 1001, 2002))
	must(unix.Chmod(filepath.Join(dir, "sub", "data"), 0o4750)) // os.Chmod would drop the raw setuid bit
	must(os.Chown(filepath.Join(dir, "sub"), 1001, 2002))
	must(unix.Chmod(filepath.Join(dir, "sub"), 0o2770))
	must(unix.Setxattr(filepath.Join(dir, "sub", "data"), "user.note", []byte("kept"), 0))
	must(os.Symlink("sub/data", filepath.Join(dir, "link")))
	must(unix.Lchown(filepath.Join(dir, "link"), 1003, 1003))
	must(os.Link(filepath.Join(dir, "sub", "data"), filepath.Join(dir, "hard")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
}

func checkTree(t *testing.T, dir string) {
	t.Helper()
	var st unix.Stat_t
	data := filepath.Join(dir, "sub", "data")
	if err := unix.Lstat(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1001 || st.Gid != 2002 || st.Mode&0o7777 != 0o4750 || st.Nlink != 2 {
		t.Errorf("%s: uid %d gid %d mode %#o nlink %d, want 1001 2002 04750 2", data, st.Uid, st.Gid, st.Mode&0o7777, st.Nlink)
	}
	var hard unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "hard"), &hard); err != nil || hard.Ino != st.Ino {
		t.Errorf("hard link not kept: %v, inode %d vs %d", err, hard.Ino, st.Ino)
	}
	if err := unix.Lstat(filepath.Join(dir, "sub"), &st); err != nil || st.Uid != 1001 || st.Mode&0o7777 != 0o2770 {
		t.Errorf("sub: uid %d mode %#o (%v), want 1001 02770", st.Uid, st.Mode&0o7777, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(data, "user.note", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("xattr user.note = %q, %v; want kept", buf[:max(n, 0)], err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "sub/data" {
		t.Errorf("symlink = %q, %v", target, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "link"), &st); err != nil || st.Uid != 1003 {
		t.Errorf("symlink owner %d (%v), want 1003", st.Uid, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo: mode %#o, %v", st.Mode, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSnapshotRestoreClone goes through a volume's life as the sidecars drive it:
// a snapshot taken while it is published sees none of the later writes, and both
// a restore and a clone keep the files' metadata and the encryption key.
func TestSnapshotRestoreClone(t *testing.T) {
	_, endpoint, _ := startDriver(t)
	conn := dial(t, endpoint)
	c, n := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()

	params := map[string]string{ParamEncrypted: "true", ParamKMSKeyID: testKey, "csi.storage.k8s.io/pvc/name": "data"}
	vol := createVolume(t, c, &csi.CreateVolumeRequest{Name: "pvc-1", Parameters: params})
	if again := createVolume(t, c, &csi.CreateVolumeRequest{Name: "pvc-1", Parameters: params}); again.VolumeId != vol.VolumeId {
		t.Errorf("repeated CreateVolume gave %s, then %s", vol.VolumeId, again.VolumeId)
	}
	if vol.VolumeContext[ParamKMSKeyID] != testKey || vol.AccessibleTopology[0].Segments[ZoneKey] != "local-1a" {
		t.Errorf("volume context %v topology %v", vol.VolumeContext, vol.AccessibleTopology)
	}
	target := publish(t, n, vol.VolumeId, false)
	writeTree(t, target)

	snapReq := &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: vol.VolumeId}
	snap, err := c.CreateSnapshot(ctx, snapReq)
	if err != nil || !snap.Snapshot.ReadyToUse {
		t.Fatalf("CreateSnapshot: %v, %v", snap, err)
	}
	if again, err := c.CreateSnapshot(ctx, snapReq); err != nil || again.Snapshot.SnapshotId != snap.Snapshot.SnapshotId {
		t.Errorf("repeated CreateSnapshot: %v, %v", again, err)
	}
	if err := os.WriteFile(filepath.Join(target, "sub", "data"), []byte("after"), 0o640); err != nil {
		t.Fatal(err)
	}

	restored := createVolume(t, c, &csi.CreateVolumeRequest{Name: "pvc-restored", VolumeContentSource: &csi.VolumeContentSource{
		Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}}})
	if restored.VolumeContext[ParamKMSKeyID] != testKey {
		t.Errorf("restored volume context %v lost the source's key", restored.VolumeContext)
	}
	restoredTarget := publish(t, n, restored.VolumeId, true)
	if got := readFile(t, filepath.Join(restoredTarget, "sub", "data")); got != "before" {
		t.Errorf("restored data = %q, want the snapshot's %q", got, "before")
	}
	checkTree(t, restoredTarget)
	if err := os.WriteFile(filepath.Join(restoredTarget, "new"), nil, 0o600); err == nil {
		t.Error("a readonly publish accepted a write")
	}

	clone := createVolume(t, c, &csi.CreateVolumeRequest{Name: "pvc-clone", VolumeContentSource: &csi.VolumeContentSource{
		Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: vol.VolumeId}}}})
	cloneTarget := publish(t, n, clone.VolumeId, false)
	if got := readFile(t, filepath.Join(cloneTarget, "sub", "data")); got != "after" {
		t.Errorf("clone data = %q, want %q", got, "after")
	}
	checkTree(t, cloneTarget)

	if _, err := c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.Snapshot.SnapshotId}); err != nil {
		t.Error(err)
	}
	if got := readFile(t, filepath.Join(restoredTarget, "sub", "data")); got != "before" {
		t.Errorf("deleting the snapshot changed the restored volume: %q", got)
	}
}

func TestCreateVolumeErrors(t *testing.T) {
	_, endpoint, _ := startDriver(t)
	c := csi.NewControllerClient(dial(t, endpoint))
	for name, tc := range map[string]struct {
		req  *csi.CreateVolumeRequest
		code codes.Code
	}{
		"encrypted without key": {&csi.CreateVolumeRequest{Name: "a", Parameters: map[string]string{ParamEncrypted: "true"}}, codes.InvalidArgument},
		"unknown parameter":     {&csi.CreateVolumeRequest{Name: "a", Parameters: map[string]string{"iops": "3000"}}, codes.InvalidArgument},
		"other zone": {&csi.CreateVolumeRequest{Name: "a", AccessibilityRequirements: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{{Segments: map[string]string{ZoneKey: "local-1b"}}}}}, codes.ResourceExhausted},
		"missing snapshot": {&csi.CreateVolumeRequest{Name: "a", VolumeContentSource: &csi.VolumeContentSource{
			Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "../../etc"}}}}, codes.NotFound},
	} {
		t.Run(name, func(t *testing.T) {
			tc.req.VolumeCapabilities = []*csi.VolumeCapability{mountCap()}
			_, err := c.CreateVolume(context.Background(), tc.req)
			if status.Code(err) != tc.code {
				t.Errorf("CreateVolume: %v, want code %s", err, tc.code)
			}
		})
	}
}

// TestRegistration plays the kubelet's plugin watcher against the registration socket.
func TestRegistration(t *testing.T) {
	_, endpoint, registry := startDriver(t)
	r := registerapi.NewRegistrationClient(dial(t, RegistrationSocket(registry, DefaultName)))
	info, err := r.GetInfo(context.Background(), &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != DefaultName || info.Endpoint != endpoint || len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
		t.Errorf("GetInfo = %v", info)
	}
	if _, err := r.NotifyRegistrationStatus(context.Background(), &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Error(err)
	}
}

// TestRegistrationRejected: the kubelet never retries a rejected plugin while its
// socket stays, so Serve must end with the kubelet's error, and leave no socket.
func TestRegistrationRejected(t *testing.T) {
	dir := t.TempDir()
	d, err := New(Config{Name: DefaultName, Root: filepath.Join(dir, "root"), NodeID: "node-1", Zone: "local-1a", Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	sc := ServeConfig{Endpoint: filepath.Join(dir, "csi.sock"), RegistryDir: filepath.Join(dir, "registry")}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), d, sc) }()
	regPath := RegistrationSocket(sc.RegistryDir, DefaultName)
	waitForSocket(t, regPath)
	r := registerapi.NewRegistrationClient(dial(t, regPath))
	if _, err := r.NotifyRegistrationStatus(context.Background(), &registerapi.RegistrationStatus{Error: "version 2.0.0 only"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "version 2.0.0 only") {
			t.Errorf("Serve = %v, want the kubelet's rejection", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve kept running after the kubelet rejected the driver")
	}
	for _, p := range []string{sc.Endpoint, regPath} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("socket %s left behind", p)
		}
	}
}
