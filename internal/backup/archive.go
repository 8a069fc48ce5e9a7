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
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Source is a directory to back up, stored in the archive under Name.
type Source struct {
	Name string
	Path string
}

// BucketSourceName is the top-level archive directory of objects included
// from the workspace's file bucket.
const BucketSourceName = "files"

// Kinds of source in SourceStats.
const (
	SourceDirectory = "directory"
	SourceBucket    = "bucket"
)

// SourceStats counts what a backup stored of one source.
type SourceStats struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Files    int64  `json:"files"`
	Dirs     int64  `json:"dirs"`
	Symlinks int64  `json:"symlinks"`
	// Bytes is the total size of the files' contents.
	Bytes int64 `json:"bytes"`
	// Skipped counts entries not stored, each logged with its reason:
	// sockets, devices and FIFOs, files that disappeared between listing
	// and reading, and bucket keys that are not valid relative paths.
	Skipped int64 `json:"skipped,omitempty"`
}

// archiver writes sources into a tar stream. Contents are copied through
// one fixed buffer, so memory does not depend on file sizes.
type archiver struct {
	tw  *tar.Writer
	log *slog.Logger
	buf []byte
	// read counts content bytes read, for progress reports.
	read   *atomic.Int64
	xattrs *xattrReader
	// noXattrs is set once the source's file system turns out to have no
	// extended attributes, not to ask again for every file.
	noXattrs bool
}

func newArchiver(w io.Writer, log *slog.Logger, read *atomic.Int64) *archiver {
	return &archiver{tw: tar.NewWriter(w), log: log, buf: make([]byte, 1<<20), read: read, xattrs: newXattrReader()}
}

// close writes the tar end-of-archive marker.
func (a *archiver) close() error {
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("finish tar stream: %w", err)
	}
	return nil
}

// addDirectory stores the tree under src.Path: directories, regular files
// and symbolic links (as links), with modes, owners, modification times
// and extended attributes (see archivedXattr).
// Hard links are stored as separate files.
// Any file that cannot be read fails the backup. A file that disappears
// between listing and reading is skipped with a warning, as routine on a
// live volume, but only while the source root itself is still the same
// directory: a volume unmounted or deleted under the backup fails it.
func (a *archiver) addDirectory(ctx context.Context, src Source) (SourceStats, error) {
	stats := SourceStats{Name: src.Name, Kind: SourceDirectory}
	root, err := filepath.EvalSymlinks(src.Path)
	if err != nil {
		return stats, fmt.Errorf("source %s: %w", src.Name, err)
	}
	rootInfo, err := os.Stat(root)
	if err != nil {
		return stats, fmt.Errorf("source %s: %w", src.Name, err)
	}
	if !rootInfo.IsDir() {
		return stats, fmt.Errorf("source %s: %s is not a directory", src.Name, src.Path)
	}
	rootIntact := func() bool {
		fi, err := os.Stat(root)
		return err == nil && os.SameFile(fi, rootInfo)
	}
	skipVanished := func(p string, err error) error {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !rootIntact() {
			return fmt.Errorf("source %s (%s) vanished during the backup: %w", src.Name, src.Path, err)
		}
		a.log.Warn("file vanished during the backup, skipped", "source", src.Name, "path", p)
		stats.Skipped++
		return nil
	}

	a.noXattrs = false
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, walkErr error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if walkErr != nil {
			return skipVanished(p, walkErr)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := src.Name
		if rel != "." {
			name += "/" + filepath.ToSlash(rel)
		}
		switch typ := d.Type(); {
		case typ.IsDir() && rel == lostFound:
			// Volume metadata, and unreadable to the unprivileged agent.
			a.log.Info("lost+found at the volume root, not backed up", "source", src.Name)
			return filepath.SkipDir
		case typ.IsDir():
			info, err := d.Info()
			if err != nil {
				return skipVanished(p, err)
			}
			h := headerFor(info, tar.TypeDir, name+"/", "")
			if err := a.pathXattrs(h, src.Name, p); err != nil {
				return skipVanished(p, err)
			}
			stats.Dirs++
			return a.writeHeader(h)
		case typ&fs.ModeSymlink != 0:
			info, err := d.Info()
			if err != nil {
				return skipVanished(p, err)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return skipVanished(p, err)
			}
			h := headerFor(info, tar.TypeSymlink, name, target)
			if err := a.pathXattrs(h, src.Name, p); err != nil {
				return skipVanished(p, err)
			}
			stats.Symlinks++
			return a.writeHeader(h)
		case typ.IsRegular():
			size, err := a.addFile(ctx, src.Name, p, name)
			if err != nil {
				return skipVanished(p, err)
			}
			if size >= 0 {
				stats.Files++
				stats.Bytes += size
			}
			return nil
		default:
			a.log.Warn("not a file, directory or symbolic link, skipped", "source", src.Name, "path", p, "type", typ.String())
			stats.Skipped++
			return nil
		}
	})
	if err != nil {
		return stats, fmt.Errorf("source %s: %w", src.Name, err)
	}
	if !rootIntact() {
		return stats, fmt.Errorf("source %s (%s) vanished during the backup", src.Name, src.Path)
	}
	return stats, nil
}

// addFile stores one regular file and returns its size, or -1 if it
// turned out not to be a regular file any more. The header is built from
// the open file, so that size and content belong together. Opening never
// follows a symbolic link swapped in since the listing, and never blocks on
// a FIFO.
func (a *archiver) addFile(ctx context.Context, source, p, name string) (int64, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !info.Mode().IsRegular() {
		a.log.Warn("file changed type during the backup, skipped", "path", p)
		return -1, nil
	}
	h := headerFor(info, tar.TypeReg, name, "")
	if err := a.fileXattrs(h, source, f); err != nil {
		return 0, err
	}
	if err := a.writeHeader(h); err != nil {
		return 0, err
	}
	if err := a.copyContent(ctx, f, info.Size(), p); err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// copyContent copies exactly size bytes of r into the tar stream. A source
// that ends early (a file truncated while being read) fails the backup:
// tar has already recorded the size, and padding would store content that
// never existed.
func (a *archiver) copyContent(ctx context.Context, r io.Reader, size int64, what string) error {
	src := &sourceReader{ctx: ctx, r: r, read: a.read}
	n, err := io.CopyBuffer(a.tw, io.LimitReader(src, size), a.buf)
	switch {
	case src.err != nil:
		return fmt.Errorf("read %s: %w", what, src.err)
	case err != nil:
		return err
	case n < size:
		return fmt.Errorf("%s shrank from %d to %d bytes while being read", what, size, n)
	}
	return nil
}

// pathXattrs adds the extended attributes of the directory or link p to
// its header.
func (a *archiver) pathXattrs(h *tar.Header, source, p string) error {
	return a.addXattrs(h, source, p,
		func(b []byte) (int, error) { return unix.Llistxattr(p, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
}

// fileXattrs adds the extended attributes of the open file f to its
// header: those of the file whose content is stored, whatever happens to
// its path.
func (a *archiver) fileXattrs(h *tar.Header, source string, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var xerr error
	err = rc.Control(func(fd uintptr) {
		xerr = a.addXattrs(h, source, f.Name(),
			func(b []byte) (int, error) { return unix.Flistxattr(int(fd), b) },
			func(name string, b []byte) (int, error) { return unix.Fgetxattr(int(fd), name, b) })
	})
	return errors.Join(err, xerr)
}

func (a *archiver) addXattrs(h *tar.Header, source, p string, list func([]byte) (int, error), get func(string, []byte) (int, error)) error {
	if a.noXattrs {
		return nil
	}
	records, err := a.xattrs.read(list, get)
	switch {
	case errors.Is(err, errXattrsUnsupported):
		a.log.Info("file system has no extended attributes, none backed up", "source", source)
		a.noXattrs = true
	case err != nil:
		return fmt.Errorf("read extended attributes of %s: %w", p, err)
	}
	h.PAXRecords = records
	return nil
}

func (a *archiver) writeHeader(h *tar.Header) error {
	if err := a.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write tar header for %s: %w", h.Name, err)
	}
	return nil
}

// headerFor builds a PAX header, which keeps long names, large sizes and
// sub-second modification times.
func headerFor(info fs.FileInfo, typ byte, name, link string) *tar.Header {
	h := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Linkname: link,
		Mode:     tarMode(info.Mode()),
		ModTime:  info.ModTime(),
		Format:   tar.FormatPAX,
	}
	if typ == tar.TypeReg {
		h.Size = info.Size()
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	return h
}

// tarMode is the tar mode field of a file mode: permissions plus the
// setuid, setgid and sticky bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// addBucket stores the objects under prefix in bucket as files below
// BucketSourceName, named by their keys without the prefix. Objects are
// streamed one at a time; keys ending in "/" (folder placeholders) are
// not stored, and keys that would not be safe relative paths are skipped
// with a warning.
func (a *archiver) addBucket(ctx context.Context, client S3, bucket, prefix string) (SourceStats, error) {
	stats := SourceStats{Name: BucketSourceName, Kind: SourceBucket}
	if err := a.writeHeader(&tar.Header{Typeflag: tar.TypeDir, Name: BucketSourceName + "/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
		return stats, err
	}
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return stats, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			rel := strings.TrimPrefix(key, prefix)
			if strings.HasSuffix(rel, "/") || rel == "" {
				continue
			}
			if !filepath.IsLocal(rel) || path.Clean(rel) != rel || strings.ContainsRune(rel, 0) {
				a.log.Warn("object key is not a safe relative path, skipped", "bucket", bucket, "key", key)
				stats.Skipped++
				continue
			}
			size, err := a.addObject(ctx, client, bucket, key, BucketSourceName+"/"+rel)
			if err != nil {
				return stats, err
			}
			stats.Files++
			stats.Bytes += size
		}
	}
	return stats, nil
}

func (a *archiver) addObject(ctx context.Context, client S3, bucket, key, name string) (int64, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	h := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     size,
		ModTime:  aws.ToTime(out.LastModified),
		Format:   tar.FormatPAX,
	}
	if err := a.writeHeader(h); err != nil {
		return 0, err
	}
	if err := a.copyContent(ctx, out.Body, size, "s3://"+bucket+"/"+key); err != nil {
		return 0, err
	}
	return size, nil
}

// sourceReader reads backup input: it keeps the read error apart from the
// archive's write errors, counts progress, and stops a long copy when the
// backup is canceled.
type sourceReader struct {
	ctx  context.Context
	r    io.Reader
	read *atomic.Int64
	err  error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.read.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}
