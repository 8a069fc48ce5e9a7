package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// archiveDir archives one directory into a tar stream; hook, when set,
// sees the stream as it is written.
func archiveDir(t *testing.T, src Source, hook func(written []byte)) ([]byte, SourceStats, error) {
	t.Helper()
	var out bytes.Buffer
	w := io.Writer(&out)
	if hook != nil {
		w = writerFunc(func(p []byte) (int, error) {
			out.Write(p)
			hook(out.Bytes())
			return len(p), nil
		})
	}
	ar := newArchiver(w, testLogger(t), new(atomic.Int64))
	stats, err := ar.addDirectory(context.Background(), src)
	if err == nil {
		err = ar.close()
	}
	return out.Bytes(), stats, err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// unpack extracts a tar stream into a new directory, with the given
// top-level directories as the backup's sources.
func unpack(t *testing.T, stream []byte, sources ...string) (string, ExtractStats, error) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	existing := map[string]bool{}
	for _, s := range sources {
		existing[s] = false
	}
	x := newExtractor(root, existing, nil, testLogger(t))
	err = x.extract(context.Background(), bytes.NewReader(stream))
	if err == nil {
		err = x.finish()
	}
	return dir, x.stats, err
}

func TestArchiveRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "vol")
	makeTree(t, src, 0)
	writeFile(t, filepath.Join(src, "setgid-dir", "f"), []byte("x"), 0o644)
	if err := os.Chmod(filepath.Join(src, "setgid-dir"), 0o2775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, strings.Repeat("long-name-", 20)), []byte("long"), 0o644)
	stream, stats, err := archiveDir(t, Source{Name: "vol", Path: src}, nil)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	if stats.Files != 7 || stats.Symlinks != 2 || stats.Skipped != 0 {
		t.Errorf("stats = %+v", stats)
	}
	dir, xstats, err := unpack(t, stream, "vol")
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	if xstats.Files != stats.Files || xstats.Dirs != stats.Dirs || xstats.Symlinks != stats.Symlinks || xstats.Bytes != stats.Bytes {
		t.Errorf("extracted %+v, archived %+v", xstats, stats)
	}
	compareTrees(t, src, filepath.Join(dir, "vol"))
}

func TestArchiveSkipsLostFoundAtTheRoot(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "lost+found", "#12345"), []byte("fsck debris"), 0o600)
	writeFile(t, filepath.Join(src, "sub", "lost+found", "kept"), []byte("data"), 0o600)
	stream, stats, err := archiveDir(t, Source{Name: "s", Path: src}, nil)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	if bytes.Contains(stream, []byte("fsck debris")) || !bytes.Contains(stream, []byte("s/sub/lost+found/kept")) || stats.Files != 1 {
		t.Errorf("stats = %+v; want the root's lost+found left out, and only it", stats)
	}
}

func TestArchiveSkipsSpecialFiles(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "file"), []byte("x"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(src, "socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, stats, err := archiveDir(t, Source{Name: "s", Path: src}, nil)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	if stats.Files != 1 || stats.Skipped != 2 {
		t.Errorf("stats = %+v, want the file stored and FIFO and socket skipped", stats)
	}
}

func TestArchiveSkipsFileVanishedAfterListing(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("b"), 0o644)
	_, stats, err := archiveDir(t, Source{Name: "s", Path: src}, func(written []byte) {
		if bytes.Contains(written, []byte("s/a.txt")) {
			_ = os.Remove(filepath.Join(src, "b.txt"))
		}
	})
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	if stats.Files != 1 || stats.Skipped != 1 {
		t.Errorf("stats = %+v, want a.txt stored and b.txt skipped", stats)
	}
}

func TestArchiveFailsWhenSourceVanishes(t *testing.T) {
	deleted := func(src string) { _ = os.RemoveAll(src) }
	// What a lost mount looks like: the mount point is still there,
	// empty, but it is another directory.
	unmounted := func(src string) {
		_ = os.Rename(src, src+".gone")
		_ = os.Mkdir(src, 0o755)
	}
	for _, tc := range []struct {
		name   string
		after  string // entry after which the source vanishes
		vanish func(src string)
	}{
		{"deleted", "vol/a/1.txt", deleted},
		{"unmounted", "vol/a/1.txt", unmounted},
		{"unmounted after the last entry", "vol/b/2.txt", unmounted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "vol")
			writeFile(t, filepath.Join(src, "a", "1.txt"), []byte("1"), 0o644)
			writeFile(t, filepath.Join(src, "b", "2.txt"), []byte("2"), 0o644)
			done := false
			_, _, err := archiveDir(t, Source{Name: "vol", Path: src}, func(written []byte) {
				if !done && bytes.Contains(written, []byte(tc.after)) {
					done = true
					tc.vanish(src)
				}
			})
			if err == nil || !strings.Contains(err.Error(), "vanished during the backup") {
				t.Fatalf("error = %v, want the source reported as vanished", err)
			}
		})
	}
}

func TestArchiveFailsOnMissingSource(t *testing.T) {
	_, _, err := archiveDir(t, Source{Name: "vol", Path: filepath.Join(t.TempDir(), "nope")}, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want not exist", err)
	}
}

func TestArchiveFailsOnUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; TestProcessUnreadableFile runs the agent unprivileged")
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "secret"), []byte("x"), 0o000)
	_, _, err := archiveDir(t, Source{Name: "s", Path: src}, nil)
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("error = %v, want permission denied", err)
	}
}

func TestArchiveFailsWhenFileShrinks(t *testing.T) {
	ar := newArchiver(io.Discard, testLogger(t), new(atomic.Int64))
	if err := ar.writeHeader(&tar.Header{Name: "f", Size: 10, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	err := ar.copyContent(context.Background(), strings.NewReader("short"), 10, "f")
	if err == nil || !strings.Contains(err.Error(), "shrank") {
		t.Errorf("error = %v, want the file reported as shrunk", err)
	}
}

// tarStream builds a tar stream from headers, with content for regular
// files.
func tarStream(t *testing.T, headers ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range headers {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(h.Name))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/evil", "a/../../evil", "a/./b", "", "a//b"} {
		_, _, err := unpack(t, tarStream(t, &tar.Header{Name: name, Typeflag: tar.TypeReg}), "a")
		if err == nil || !strings.Contains(err.Error(), "not a clean relative path") {
			t.Errorf("entry %q: error = %v, want a refusal", name, err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(t.TempDir()), "evil")); err == nil {
			t.Fatalf("entry %q was written outside the target", name)
		}
	}
}

func TestExtractRefusesEntriesOutsideTheSources(t *testing.T) {
	_, _, err := unpack(t, tarStream(t, &tar.Header{Name: "other/f", Typeflag: tar.TypeReg}), "s")
	if err == nil || !strings.Contains(err.Error(), "not below one of the backup's sources") {
		t.Errorf("error = %v, want a refusal", err)
	}
}

func TestExtractRefusesEscapingLinks(t *testing.T) {
	link := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeSymlink}
	}
	stream := tarStream(t,
		&tar.Header{Name: "s/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "s/d/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "s/d/file", Typeflag: tar.TypeReg},
		link("s/d/ok", "file"),
		link("s/d/ok-up", "../d/file"),
		link("s/d/other-source", "../../t/file"),
		link("s/d/dangling", "missing"),
		link("s/abs", "/etc/passwd"),
		link("s/d/up", "../../.."),
		// Each harmless alone, x escapes through y: y/y/.. is ..
		link("s/x", "y/y/../.."),
		link("s/y", "."),
		link("s/loop1", "loop2"),
		link("s/loop2", "loop1"),
	)
	dir, stats, err := unpack(t, stream, "s", "t")
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	for _, name := range []string{"s/d/ok", "s/d/ok-up", "s/d/other-source", "s/d/dangling", "s/y", "s/loop1", "s/loop2"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was not restored: %v", name, err)
		}
	}
	for _, name := range []string{"s/abs", "s/d/up", "s/x"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			t.Errorf("escaping link %s was restored", name)
		}
	}
	if stats.Symlinks != 7 || stats.SkippedSymlinks != 3 {
		t.Errorf("stats = %+v, want 7 links restored and 3 refused", stats)
	}
}

// TestExtractNeverWritesThroughLinks: even an entry below a link that
// leads outside (planted by a crafted archive) cannot write there.
func TestExtractNeverWritesThroughLinks(t *testing.T) {
	outside := t.TempDir()
	stream := tarStream(t,
		&tar.Header{Name: "s/y", Linkname: ".", Typeflag: tar.TypeSymlink},
		&tar.Header{Name: "s/x", Linkname: "y/y/../..", Typeflag: tar.TypeSymlink},
		&tar.Header{Name: "s/x/" + filepath.Base(outside) + "/pwned", Typeflag: tar.TypeReg},
	)
	_, _, err := unpack(t, stream, "s")
	if err == nil {
		t.Error("extract wrote through an escaping link")
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("file written outside the target")
	}
}

func TestExtractRefusesDuplicates(t *testing.T) {
	_, _, err := unpack(t, tarStream(t, &tar.Header{Name: "s/f", Typeflag: tar.TypeReg}, &tar.Header{Name: "s/f", Typeflag: tar.TypeReg}), "s")
	if err == nil {
		t.Error("second entry overwrote the first")
	}
}

func TestExtractAppliesDirectoryAttributesLast(t *testing.T) {
	mtime := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	dir, _, err := unpack(t, tarStream(t,
		&tar.Header{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555, ModTime: mtime},
		&tar.Header{Name: "ro/f", Typeflag: tar.TypeReg, Mode: 0o444, ModTime: mtime},
	), "ro")
	if err != nil {
		t.Fatalf("extract into a read-only directory: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "ro"))
	if err != nil || info.Mode().Perm() != 0o555 || !info.ModTime().Equal(mtime) {
		t.Errorf("ro: %v %v, want 0555 and %v", info.Mode(), info.ModTime(), mtime)
	}
	_ = os.Chmod(filepath.Join(dir, "ro"), 0o755) // let t.TempDir clean up as non-root
}
