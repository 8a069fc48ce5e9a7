package backup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeXattrs answers list and get calls the way the kernel does: the size
// for an empty buffer, ERANGE for one too small.
type fakeXattrs struct {
	names  []string
	values map[string]string
	// errs, by name, fail get; by "", list.
	errs map[string]error
}

func (f *fakeXattrs) list(b []byte) (int, error) {
	if err := f.errs[""]; err != nil {
		return 0, err
	}
	var list []byte
	for _, n := range f.names {
		list = append(append(list, n...), 0)
	}
	return answer(b, list)
}

func (f *fakeXattrs) get(name string, b []byte) (int, error) {
	if err := f.errs[name]; err != nil {
		return 0, err
	}
	return answer(b, []byte(f.values[name]))
}

func answer(b, data []byte) (int, error) {
	switch {
	case len(b) == 0:
		return len(data), nil
	case len(b) < len(data):
		return 0, unix.ERANGE
	}
	return copy(b, data), nil
}

func TestXattrReader(t *testing.T) {
	long := strings.Repeat("v", 5000)
	longName := "user." + strings.Repeat("n", 2000)
	tests := []struct {
		name    string
		fake    fakeXattrs
		want    map[string]string
		wantErr error
	}{
		{name: "none"},
		{
			name: "archived and not",
			fake: fakeXattrs{
				names: []string{"user.a", "trusted.b", "security.capability", "security.selinux", "system.posix_acl_access",
					"system.posix_acl_default", "system.nfs4_acl", "user.x=y"},
				values: map[string]string{"user.a": "1", "trusted.b": "\x00\xff", "security.capability": "cap",
					"security.selinux": "label", "system.posix_acl_access": "acl", "system.posix_acl_default": "dacl",
					"system.nfs4_acl": "nfs", "user.x=y": "eq"},
			},
			want: map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.trusted.b": "\x00\xff",
				"SCHILY.xattr.security.capability": "cap", "SCHILY.xattr.system.posix_acl_access": "acl",
				"SCHILY.xattr.system.posix_acl_default": "dacl"},
		},
		{
			name: "larger than the buffers",
			fake: fakeXattrs{names: []string{longName, "user.long"}, values: map[string]string{longName: "1", "user.long": long}},
			want: map[string]string{"SCHILY.xattr." + longName: "1", "SCHILY.xattr.user.long": long},
		},
		{
			name: "removed between list and get",
			fake: fakeXattrs{names: []string{"user.gone", "user.a"}, values: map[string]string{"user.a": "1"}, errs: map[string]error{"user.gone": unix.ENODATA}},
			want: map[string]string{"SCHILY.xattr.user.a": "1"},
		},
		{name: "file system without", fake: fakeXattrs{errs: map[string]error{"": unix.ENOTSUP}}, wantErr: errXattrsUnsupported},
		{name: "vanished", fake: fakeXattrs{errs: map[string]error{"": unix.ENOENT}}, wantErr: os.ErrNotExist},
		{name: "unreadable", fake: fakeXattrs{names: []string{"user.a"}, errs: map[string]error{"user.a": unix.EIO}}, wantErr: unix.EIO},
	}
	r := newXattrReader() // reused, as by the archiver
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.read(tc.fake.list, tc.fake.get)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("read: error %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// xattrsOf reads every extended attribute of p but the SELinux label.
func xattrsOf(t *testing.T, p string) map[string]string {
	t.Helper()
	got, err := newXattrReader().read(
		func(b []byte) (int, error) { return unix.Llistxattr(p, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
	if err != nil {
		t.Fatalf("read extended attributes of %s: %v", p, err)
	}
	return got
}

func setXattr(t *testing.T, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Fatalf("set %s on %s: %v", name, p, err)
	}
}

// requireUserXattrs skips the test on a file system without user.*
// attributes, saying so.
func requireUserXattrs(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "probe")
	writeFile(t, p, nil, 0o644)
	err := unix.Lsetxattr(p, "user.probe", []byte("1"), 0)
	if errors.Is(err, unix.ENOTSUP) {
		t.Skipf("the test's file system at %s has no user.* extended attributes: nothing to test", dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// posixACL is a system.posix_acl_* value: the owner rw, user 1000 and
// the owning group r, mask r, others nothing.
func posixACL() string {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, uint32(2))
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, ^uint32(0)}, {0x02, 4, 1000}, {0x04, 4, ^uint32(0)}, {0x10, 4, ^uint32(0)}, {0x20, 0, ^uint32(0)}} {
		_ = binary.Write(&b, binary.LittleEndian, e)
	}
	return b.String()
}

// TestArchiveRoundTripXattrs backs up and restores extended attributes:
// user.* always; as root also trusted.*, ACLs, and a file capability on a
// file of another owner, which chown would clear if it came after.
func TestArchiveRoundTripXattrs(t *testing.T) {
	base := t.TempDir()
	requireUserXattrs(t, base)
	src := filepath.Join(base, "vol")
	writeFile(t, filepath.Join(src, "dir", "file"), []byte("data"), 0o640)
	writeFile(t, filepath.Join(src, "plain"), []byte("no attributes"), 0o644)
	setXattr(t, filepath.Join(src, "dir", "file"), "user.comment", "hello")
	// Past the reader's first buffers, and not text.
	setXattr(t, filepath.Join(src, "dir", "file"), "user.blob", "\x00\xff"+strings.Repeat("b", 3000))
	setXattr(t, filepath.Join(src, "dir"), "user.origin", "dir")
	setXattr(t, src, "user.volume", "root")
	paths := []string{".", "dir", "dir/file", "plain"}
	if os.Geteuid() == 0 {
		writeFile(t, filepath.Join(src, "tool"), []byte("#!/bin/sh\n"), 0o755)
		if err := os.Chown(filepath.Join(src, "tool"), 1000, 1000); err != nil {
			t.Fatal(err)
		}
		// CAP_NET_RAW, effective.
		setXattr(t, filepath.Join(src, "tool"), "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00"+strings.Repeat("\x00", 12))
		setXattr(t, filepath.Join(src, "dir", "file"), "trusted.origin", "t")
		setXattr(t, filepath.Join(src, "dir", "file"), "system.posix_acl_access", posixACL())
		setXattr(t, filepath.Join(src, "dir"), "system.posix_acl_default", posixACL())
		paths = append(paths, "tool")
	} else {
		t.Log("not root: trusted.*, security.capability and ACLs untested")
	}

	stream, _, err := archiveDir(t, Source{Name: "vol", Path: src}, nil)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	dir, xstats, err := unpack(t, stream, "vol")
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	compareTrees(t, src, filepath.Join(dir, "vol"))
	var count int64
	for _, p := range paths {
		want := xattrsOf(t, filepath.Join(src, p))
		count += int64(len(want))
		if diff := cmp.Diff(want, xattrsOf(t, filepath.Join(dir, "vol", p))); diff != "" {
			t.Errorf("%s: extended attributes (-source +restored):\n%s", p, diff)
		}
	}
	if xstats.Xattrs != count || xstats.SkippedXattrs != 0 {
		t.Errorf("restored %d extended attributes, skipped %d; want %d, none", xstats.Xattrs, xstats.SkippedXattrs, count)
	}
	if os.Geteuid() == 0 {
		info, err := os.Stat(filepath.Join(dir, "vol", "tool"))
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != 1000 {
			t.Errorf("tool restored with owner %d, want 1000", st.Uid)
		}
	}
}

// TestExtractSkipsRefusedXattrs restores attributes the target does not
// support (here a namespace no Linux file system has): skipped and counted,
// the others restored.
func TestExtractSkipsRefusedXattrs(t *testing.T) {
	requireUserXattrs(t, t.TempDir())
	records := map[string]string{paxXattrPrefix + "user.ok": "1", paxXattrPrefix + "bogus.ns": "x"}
	stream := tarStream(t,
		&tar.Header{Name: "s/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: records},
		&tar.Header{Name: "s/f", Typeflag: tar.TypeReg, PAXRecords: records},
	)
	dir, xstats, err := unpack(t, stream, "s")
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	if xstats.Xattrs != 2 || xstats.SkippedXattrs != 2 {
		t.Errorf("restored %d extended attributes, skipped %d; want 2 and 2", xstats.Xattrs, xstats.SkippedXattrs)
	}
	for _, p := range []string{"s", "s/f"} {
		if diff := cmp.Diff(map[string]string{paxXattrPrefix + "user.ok": "1"}, xattrsOf(t, filepath.Join(dir, p))); diff != "" {
			t.Errorf("%s: extended attributes (-want +got):\n%s", p, diff)
		}
	}
}
