//go:build linux

package csidriver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The root directory holds
//
//	volumes/<id>/       the volume's files, bind-mounted into pods
//	volumes/<id>.json   its metadata, written last: a volume exists once this file does
//	snapshots/<id>/     a snapshot's files, a copy of its volume at one moment
//	snapshots/<id>.json its metadata
//	tmp/                copies under way; emptied on start, so a crash mid-copy leaves nothing
const (
	volumesDir   = "volumes"
	snapshotsDir = "snapshots"
	tmpDir       = "tmp"
)

// IDs are derived from the CO's names so that a retried CreateVolume or
// CreateSnapshot finds its earlier result after a restart, with no index to keep.
var (
	volumeIDPattern   = regexp.MustCompile(`^vol-[0-9a-f]{32}$`)
	snapshotIDPattern = regexp.MustCompile(`^snap-[0-9a-f]{32}$`)
)

func nameID(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:16])
}

func volumeID(name string) string   { return nameID("vol-", name) }
func snapshotID(name string) string { return nameID("snap-", name) }

// volume is the metadata file of a volume.
type volume struct {
	ID             string       `json:"id"`
	Name           string       `json:"name"`
	CapacityBytes  int64        `json:"capacityBytes"`
	Params         volumeParams `json:"params"`
	Zone           string       `json:"zone"`
	SourceSnapshot string       `json:"sourceSnapshot,omitempty"`
	SourceVolume   string       `json:"sourceVolume,omitempty"`
	CreatedAt      time.Time    `json:"createdAt"`
}

// snapshot is the metadata file of a snapshot. Params are the source volume's, so a
// volume restored from it keeps the key the data was encrypted with.
type snapshot struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	SourceVolume string       `json:"sourceVolume"`
	SizeBytes    int64        `json:"sizeBytes"`
	Params       volumeParams `json:"params"`
	CreatedAt    time.Time    `json:"createdAt"`
}

// store keeps volumes and snapshots as directories under root. It is not safe for
// concurrent use; the driver serialises calls.
type store struct {
	root string
}

// open creates the layout and removes copies a previous process left unfinished.
func openStore(root string) (*store, error) {
	s := &store{root: root}
	if err := os.RemoveAll(s.path(tmpDir)); err != nil {
		return nil, fmt.Errorf("remove unfinished copies: %w", err)
	}
	// 0700: volume directories hold tenants' data with their own owners and modes;
	// nobody else on the host should be able to walk into them.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	for _, dir := range []string{volumesDir, snapshotsDir, tmpDir} {
		if err := os.MkdirAll(s.path(dir), 0o700); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// VolumeDir is the directory holding the files of the volume with this ID, under the
// driver's root directory.
func VolumeDir(root, id string) string {
	return filepath.Join(root, volumesDir, id)
}

func (s *store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *store) volumeDir(id string) string   { return VolumeDir(s.root, id) }
func (s *store) snapshotDir(id string) string { return s.path(snapshotsDir, id) }

// getVolume returns nil for an ID that is malformed or unknown: an ID from the CO
// never becomes a path unless it has the driver's own shape.
func (s *store) getVolume(id string) (*volume, error) {
	if !volumeIDPattern.MatchString(id) {
		return nil, nil
	}
	var v volume
	return readMeta(s.path(volumesDir, id+".json"), &v)
}

func (s *store) getSnapshot(id string) (*snapshot, error) {
	if !snapshotIDPattern.MatchString(id) {
		return nil, nil
	}
	var snap snapshot
	return readMeta(s.path(snapshotsDir, id+".json"), &snap)
}

func readMeta[T any](path string, into *T) (*T, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return into, nil
}

// createVolume makes the volume's directory, filled by fill when it is not nil,
// then commits it by writing the metadata.
func (s *store) createVolume(v volume, fill func(dst string) error) error {
	return s.create(volumesDir, v.ID, v, fill)
}

func (s *store) createSnapshot(snap snapshot, fill func(dst string) error) error {
	return s.create(snapshotsDir, snap.ID, snap, fill)
}

// create builds the directory under tmp and renames it into place, so a directory
// in volumes/ or snapshots/ is always complete.
func (s *store) create(kind, id string, meta any, fill func(dst string) error) error {
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	staging := s.path(tmpDir, id)
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if fill != nil {
		err = fill(staging)
	} else {
		// 0755 root:root, as the root directory of a fresh EBS file system: pods that
		// do not run as root need an fsGroup to write, on both drivers.
		err = os.Mkdir(staging, 0o755)
		if err == nil {
			err = os.Chmod(staging, 0o755) // past the umask
		}
	}
	if err != nil {
		return errors.Join(err, os.RemoveAll(staging))
	}
	final := s.path(kind, id)
	// A directory without metadata is the leftover of a crash between the two renames.
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(staging, final); err != nil {
		return err
	}
	return writeFileAtomic(s.path(kind, id+".json"), data)
}

// deleteVolume removes the metadata first, so a half-deleted volume is gone to the
// CO rather than a volume with missing files.
func (s *store) deleteVolume(id string) error { return s.delete(volumesDir, id) }

func (s *store) deleteSnapshot(id string) error { return s.delete(snapshotsDir, id) }

func (s *store) delete(kind, id string) error {
	if err := os.Remove(s.path(kind, id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(s.path(kind, id))
}

// listSnapshots returns every snapshot sorted by ID, the order pagination relies on.
func (s *store) listSnapshots() ([]snapshot, error) {
	entries, err := os.ReadDir(s.path(snapshotsDir))
	if err != nil {
		return nil, err
	}
	var snaps []snapshot
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		snap, err := s.getSnapshot(id)
		if err != nil {
			return nil, err
		}
		if snap != nil {
			snaps = append(snaps, *snap)
		}
	}
	slices.SortFunc(snaps, func(a, b snapshot) int { return strings.Compare(a.ID, b.ID) })
	return snaps, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, path)
}
