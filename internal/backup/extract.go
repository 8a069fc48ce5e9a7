package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExtractStats counts what a restore wrote.
type ExtractStats struct {
	Files    int64
	Dirs     int64
	Symlinks int64
	Bytes    int64
	// SkippedSymlinks counts symbolic links not restored because their
	// target is absolute or resolves outside the target directory; each
	// is logged with its target.
	SkippedSymlinks int64
	// Xattrs counts the extended attributes restored; SkippedXattrs those
	// the target refused for want of support (ENOTSUP: a file system
	// without them, or without that namespace) or of privilege (EPERM:
	// trusted.* and most of security.* take CAP_SYS_ADMIN,
	// security.capability CAP_SETFCAP). The first of each is logged.
	Xattrs        int64
	SkippedXattrs int64
}

// targetError is a failure of the restore target (disk full, permission
// denied) rather than of the archive: another location would fail the
// same way, so a restore does not fall back on it.
type targetError struct{ err error }

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

func targetErr(format string, args ...any) error {
	return &targetError{err: fmt.Errorf(format, args...)}
}

// lostFound is the directory ext4 and friends keep at the root of a file
// system: metadata of the volume, not data of the workspace.
const lostFound = "lost+found"

// extractor unpacks a backup's tar stream into a target directory. Every
// file system operation goes through os.Root, so no entry, however named,
// and no symbolic link, however crafted, can make it write outside the
// target. Entries must lie below one of the backup's sources, each a
// top-level directory of the target that was empty or absent; undo
// empties them again.
type extractor struct {
	root *os.Root
	log  *slog.Logger
	buf  []byte
	// sources maps the top-level directories the archive may fill to
	// whether each existed before, like a volume's mount point, which is
	// emptied rather than removed by undo, and whose own attributes are
	// applied only if its owner allows.
	sources map[string]bool
	// skip are the backup's other sources, read through but not written.
	skip map[string]bool
	// chown restores owners, which only root may do.
	chown bool
	stats ExtractStats
	// dirs are applied mode and time after their contents are written.
	dirs []*tar.Header
	// links are the symbolic links created, checked again at the end.
	links []string
	// xattrRefusals are the extended attribute refusals logged so far.
	xattrRefusals map[string]bool
}

func newExtractor(root *os.Root, sources, skip map[string]bool, log *slog.Logger) *extractor {
	return &extractor{
		root: root, sources: sources, skip: skip, log: log, buf: make([]byte, 1<<20), chown: os.Geteuid() == 0,
		xattrRefusals: map[string]bool{},
	}
}

// extract writes every entry of r. Entry names must be clean relative
// paths: absolute names and names with ".." are refused as malformed,
// whoever sealed the archive. Existing files are never overwritten.
// Directories stay writable by their owner until finish.
func (x *extractor) extract(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar stream: %w", err)
		}
		if err := x.entry(tr, h); err != nil {
			return err
		}
	}
}

// finish removes links that resolve outside the target and applies the
// directories' attributes, once the whole archive is verified.
func (x *extractor) finish() error {
	if err := x.dropEscapingLinks(); err != nil {
		return err
	}
	return x.finishDirs()
}

// undo removes everything the extractor may have written: the sources'
// directories it created, and the contents of those that existed, their
// lost+found aside.
func (x *extractor) undo() error {
	var errs []error
	for name, existed := range x.sources {
		if !existed {
			errs = append(errs, x.root.RemoveAll(name))
			continue
		}
		entries, err := readDir(x.root, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if e.Name() != lostFound {
				errs = append(errs, x.root.RemoveAll(name+"/"+e.Name()))
			}
		}
	}
	return errors.Join(errs...)
}

func readDir(root *os.Root, name string) ([]fs.DirEntry, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	return f.ReadDir(-1)
}

func (x *extractor) entry(tr *tar.Reader, h *tar.Header) error {
	name := strings.TrimSuffix(h.Name, "/")
	if !filepath.IsLocal(name) || path.Clean(name) != name || strings.ContainsRune(name, 0) {
		return fmt.Errorf("tar entry %q: not a clean relative path", h.Name)
	}
	top, _, _ := strings.Cut(name, "/")
	if x.skip[top] {
		return nil
	}
	if _, ok := x.sources[top]; !ok {
		return fmt.Errorf("tar entry %q: not below one of the backup's sources", h.Name)
	}
	h.Name = name
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o700); err != nil {
			return targetErr("create directory %s: %w", dir, err)
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		// Owner-only until its own mode is applied at the end, so that
		// read-only directories can still be filled.
		if err := x.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return targetErr("create directory %s: %w", name, err)
		}
		x.stats.Dirs++
		x.dirs = append(x.dirs, h)
		return nil
	case tar.TypeReg:
		return x.file(tr, h)
	case tar.TypeSymlink:
		return x.symlink(h)
	default:
		return fmt.Errorf("tar entry %q: unsupported type %q", h.Name, h.Typeflag)
	}
}

func (x *extractor) file(tr *tar.Reader, h *tar.Header) error {
	f, err := x.root.OpenFile(h.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return targetErr("create %s: %w", h.Name, err)
	}
	dst := &targetWriter{w: f}
	n, err := io.CopyBuffer(dst, tr, x.buf)
	closeErr := f.Close()
	switch {
	case dst.err != nil:
		return targetErr("write %s: %w", h.Name, dst.err)
	case err != nil:
		return fmt.Errorf("read %s from the archive: %w", h.Name, err)
	case closeErr != nil:
		return targetErr("write %s: %w", h.Name, closeErr)
	}
	x.stats.Files++
	x.stats.Bytes += n
	return x.setAttributes(h)
}

func (x *extractor) symlink(h *tar.Header) error {
	target := h.Linkname
	if target == "" || filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(h.Name), target)) {
		x.log.Warn("symbolic link points outside the restored tree, not restored", "path", h.Name, "target", target)
		x.stats.SkippedSymlinks++
		return nil
	}
	if err := x.root.Symlink(target, h.Name); err != nil {
		return targetErr("create symbolic link %s: %w", h.Name, err)
	}
	if x.chown {
		if err := x.root.Lchown(h.Name, h.Uid, h.Gid); err != nil {
			return targetErr("set owner of %s: %w", h.Name, err)
		}
	}
	if err := x.setXattrs(h); err != nil {
		return err
	}
	x.stats.Symlinks++
	x.links = append(x.links, h.Name)
	return nil
}

// dropEscapingLinks removes links that resolve outside the tree through
// other links, which no look at a single target can tell: with y -> .,
// x -> y/y/.. is x -> .. (whatever order they were restored in).
func (x *extractor) dropEscapingLinks() error {
	for _, name := range x.links {
		if !x.escapes(name) {
			continue
		}
		target, _ := x.root.Readlink(name)
		x.log.Warn("symbolic link resolves outside the restored tree, not restored", "path", name, "target", target)
		if err := x.root.Remove(name); err != nil {
			return targetErr("remove symbolic link %s: %w", name, err)
		}
		x.stats.Symlinks--
		x.stats.SkippedSymlinks++
	}
	return nil
}

// maxLinkHops is where path resolution gives up on a chain of links, as
// Linux does with ELOOP.
const maxLinkHops = 40

// escapes resolves the link name component by component, following links
// within the tree, and reports whether it climbs above the root. Every
// link in the tree is relative, symlink made sure of that. A component
// that is missing is taken as a plain directory, so a target that would
// escape once it exists counts as escaping now; a loop counts as not
// escaping, since it resolves nowhere.
func (x *extractor) escapes(name string) bool {
	var at []string // resolved position, below the root
	if dir := path.Dir(name); dir != "." {
		at = strings.Split(dir, "/")
	}
	target, err := x.root.Readlink(name)
	if err != nil {
		return false
	}
	pending := strings.Split(target, "/")
	for hops := 0; len(pending) > 0; {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return true
			}
			at = at[:len(at)-1]
			continue
		}
		next, err := x.root.Readlink(path.Join(append(at, c)...))
		if err != nil {
			at = append(at, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return false
		}
		pending = append(strings.Split(next, "/"), pending...)
	}
	return false
}

// setAttributes applies owner, extended attributes, mode and modification
// time, in that order: chown clears setuid, setgid and
// security.capability; setting an ACL may clear setgid, and chmod
// brings the ACL's base entries back to the mode; and until chmod the
// file or directory is writable by its owner, whom setting user.*
// attributes requires when not root.
func (x *extractor) setAttributes(h *tar.Header) error {
	if x.chown {
		if err := x.root.Lchown(h.Name, h.Uid, h.Gid); err != nil {
			return targetErr("set owner of %s: %w", h.Name, err)
		}
	}
	if err := x.setXattrs(h); err != nil {
		return err
	}
	if err := x.root.Chmod(h.Name, h.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return targetErr("set mode of %s: %w", h.Name, err)
	}
	if err := x.root.Chtimes(h.Name, time.Time{}, h.ModTime); err != nil {
		return targetErr("set time of %s: %w", h.Name, err)
	}
	return nil
}

// setXattrs sets the extended attributes of the entry h, through its
// parent directory opened in the root: os.Root has no xattr calls, and
// /proc/self/fd/N/<base> reaches the entry itself (even a link, with the
// l* calls) without resolving anything outside the root.
func (x *extractor) setXattrs(h *tar.Header) error {
	names := headerXattrs(h)
	if len(names) == 0 {
		return nil
	}
	dir, base := path.Split(h.Name)
	d, err := x.root.Open(path.Clean("./" + dir))
	if err != nil {
		return targetErr("set extended attributes of %s: %w", h.Name, err)
	}
	defer func() { _ = d.Close() }() // read only
	rc, err := d.SyscallConn()
	if err != nil {
		return targetErr("set extended attributes of %s: %w", h.Name, err)
	}
	var setErr error
	err = rc.Control(func(fd uintptr) {
		p := fmt.Sprintf("/proc/self/fd/%d/%s", fd, base)
		for _, name := range names {
			err := unix.Lsetxattr(p, name, []byte(h.PAXRecords[paxXattrPrefix+name]), 0)
			switch {
			case err == nil:
				x.stats.Xattrs++
			case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EPERM):
				x.stats.SkippedXattrs++
				if key := name + ": " + err.Error(); !x.xattrRefusals[key] {
					x.xattrRefusals[key] = true
					x.log.Warn("the target refuses an extended attribute, skipped here and wherever else refused alike",
						"path", h.Name, "attribute", name, "error", err)
				}
			default:
				setErr = targetErr("set extended attribute %s of %s: %w", name, h.Name, err)
				return
			}
		}
	})
	if err != nil {
		return targetErr("set extended attributes of %s: %w", h.Name, err)
	}
	return setErr
}

// finishDirs applies directories' attributes deepest first, once nothing
// more is written into them.
func (x *extractor) finishDirs() error {
	for _, h := range slices.Backward(x.dirs) {
		err := x.setAttributes(h)
		if err != nil && x.sources[h.Name] {
			// A mount point belongs to whoever provisioned the volume.
			x.log.Warn("cannot restore the attributes of an existing source directory", "path", h.Name, "error", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// targetWriter keeps write errors of the restore target apart from read
// errors of the archive.
type targetWriter struct {
	w   io.Writer
	err error
}

func (t *targetWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}
