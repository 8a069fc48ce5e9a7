//go:build linux

package csidriver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyTree copies the directory src to dst, which must not exist, keeping what a
// block-level EBS snapshot keeps: owners, modes (setuid included), symlinks,
// hard links within the tree, device nodes, FIFOs, extended attributes (POSIX ACLs
// and file capabilities among them) and timestamps. It is written with syscalls
// rather than `cp -a` so that every failure carries the path it failed on.
//
// A copy is not atomic: a file written while the copy runs may be caught half
// written, where an EBS snapshot is crash-consistent. Writes made after copyTree
// returns never reach the copy.
func copyTree(src, dst string) error {
	c := copier{links: map[fileKey]string{}}
	return c.copy(src, dst, true)
}

type fileKey struct{ dev, ino uint64 }

type copier struct {
	// links maps an inode with more than one link to the copy of its first path.
	links map[fileKey]string
}

func (c *copier) copy(src, dst string, top bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		// A file deleted while the copy runs was not there at the copy's moment.
		if !top && errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &fs.PathError{Op: "lstat", Path: src, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.copy(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), false); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := fileKey{dev: st.Dev, ino: st.Ino}
			if first, ok := c.links[key]; ok {
				return os.Link(first, dst)
			}
			c.links[key] = dst
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return &fs.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("copy %s: unsupported file type %#o", src, st.Mode&unix.S_IFMT)
	}
	// Attributes go on after a directory's children so that a read-only directory
	// can still be filled and its times are not bumped by the filling.
	return copyAttrs(src, dst, &st)
}

// copyAttrs sets ownership, then mode, then extended attributes: chown clears
// setuid bits and file capabilities, so both must come after it.
func copyAttrs(src, dst string, st *unix.Stat_t) error {
	symlink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &fs.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if !symlink {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := copyXattrs(src, dst, symlink); err != nil {
		return err
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

func copyXattrs(src, dst string, symlink bool) error {
	names, err := listXattrs(src)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	for _, name := range names {
		value, err := getXattr(src, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return &fs.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		err = unix.Lsetxattr(dst, name, value, 0)
		// The kernel refuses user.* attributes on symlinks, and a destination file
		// system may lack a namespace the source had: those are the "where possible".
		if err != nil && (errors.Is(err, unix.ENOTSUP) || symlink && errors.Is(err, unix.EPERM)) {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "lsetxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	buf, err := readSized(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
	if err != nil {
		return nil, err
	}
	var names []string
	for start := 0; start < len(buf); {
		end := start
		for end < len(buf) && buf[end] != 0 {
			end++
		}
		if end > start {
			names = append(names, string(buf[start:end]))
		}
		start = end + 1
	}
	return names, nil
}

func getXattr(path, name string) ([]byte, error) {
	return readSized(func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// readSized calls an xattr syscall first for the size, then with a buffer of it,
// retrying if the attribute grew in between.
func readSized(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// copyFile shares the source's blocks where the file system can (reflink on XFS
// and btrfs), and otherwise copies in the kernel (copy_file_range, via io.Copy).
func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	return out.Close()
}
