package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
)

// Latest selects the newest complete backup of a location.
const Latest = "latest"

const (
	// maxDecoderWindow bounds the zstd window a restore accepts: the
	// agent's encoder uses at most 8 MiB, and a larger window would only
	// cost memory.
	maxDecoderWindow = 64 << 20
	// maxResumes is how often a download picks up again where a broken
	// connection left it, before the location counts as unavailable.
	maxResumes = 5
)

// ErrBackupNotFound means a location holds no complete backup that
// answers the ID and sources asked for.
var ErrBackupNotFound = errors.New("no such complete backup")

// RestoreOptions says what to restore from where to where.
type RestoreOptions struct {
	Workspace string
	// BackupID is a backup ID, the ID of a data mover run, or Latest
	// (also when empty): see selectBackup.
	BackupID string
	// Locations are tried in order until one restores the backup.
	Locations []Location
	// Target is the directory to restore into; each source comes back
	// as its subdirectory of the same name, which must be absent or empty
	// (lost+found aside).
	Target string
	// Sources, when set, restores only the sources of these names (as the
	// manifest lists them), and selects a backup that holds them all; the
	// backup's other sources are verified but not written.
	Sources []string
}

// RestoreResult describes a successful restore.
type RestoreResult struct {
	BackupID string
	Location Location
	Created  time.Time
	Stats    ExtractStats
}

// Restore restores a backup into a target directory, from the first
// location that can deliver it intact. Each source comes back as the
// target's subdirectory of the same name, which must be absent or empty
// (but for lost+found): typically the mount point of a fresh volume.
// Nothing else in the target is touched.
//
// A location is passed over if it is unreachable, lacks the backup,
// refuses the key, or its archive fails verification; whatever the
// attempt wrote is removed first. A failure of the target itself (a full
// disk) ends the restore, since another location would fail the same way.
func (a *Agent) Restore(ctx context.Context, opts RestoreOptions) (*RestoreResult, error) {
	if opts.BackupID == "" {
		opts.BackupID = Latest
	}
	if !workspacePattern.MatchString(opts.Workspace) {
		return nil, fmt.Errorf("workspace %q is not a valid name", opts.Workspace)
	}
	if opts.BackupID != Latest && !backupIDPattern.MatchString(opts.BackupID) {
		return nil, fmt.Errorf("backup ID %q is not valid", opts.BackupID)
	}
	if len(opts.Locations) == 0 {
		return nil, errors.New("no location to restore from")
	}
	if opts.Target == "" {
		return nil, errors.New("no target directory")
	}
	if err := os.MkdirAll(opts.Target, 0o755); err != nil {
		return nil, fmt.Errorf("create target: %w", err)
	}
	root, err := os.OpenRoot(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	defer func() { _ = root.Close() }() // a directory handle: nothing to flush
	sites, err := connect(ctx, a.Clients, opts.Locations)
	if err != nil {
		return nil, err
	}
	var failures []error
	for _, s := range sites {
		res, err := a.restoreFrom(ctx, s, &opts, root)
		if err == nil {
			a.log().Info("restore complete", "workspace", opts.Workspace, "backup", res.BackupID, "location", s.Location,
				"files", res.Stats.Files, "bytes", res.Stats.Bytes, "skippedSymlinks", res.Stats.SkippedSymlinks,
				"xattrs", res.Stats.Xattrs, "skippedXattrs", res.Stats.SkippedXattrs)
			return res, nil
		}
		if _, ok := errors.AsType[*targetError](err); ok || ctx.Err() != nil {
			return nil, locationErr(s, err)
		}
		a.log().Warn("location cannot deliver the backup", "location", s.Location, "error", err)
		failures = append(failures, locationErr(s, err))
	}
	return nil, fmt.Errorf("restore %s of %s: no location could deliver it: %w", opts.BackupID, opts.Workspace, errors.Join(failures...))
}

// selectSources splits a backup's sources into those to restore and
// those to skip; selectBackup made sure it holds every one named.
func selectSources(m *Manifest, only []string) (restore []string, skip map[string]bool) {
	skip = map[string]bool{}
	for _, s := range m.Sources {
		if len(only) == 0 || slices.Contains(only, s.Name) {
			restore = append(restore, s.Name)
		} else {
			skip[s.Name] = true
		}
	}
	return restore, skip
}

// checkTarget checks that the target's directory of every source to
// restore is absent or empty, but for lost+found, and reports which exist.
func checkTarget(root *os.Root, sources []string) (map[string]bool, error) {
	existing := map[string]bool{}
	for _, name := range sources {
		info, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			existing[name] = false
			continue
		}
		if err != nil {
			return nil, targetErr("check target for %s: %w", name, err)
		}
		if !info.IsDir() {
			return nil, targetErr("target %s exists and is not a directory", name)
		}
		entries, err := readDir(root, name)
		if err != nil {
			return nil, targetErr("check target for %s: %w", name, err)
		}
		for _, e := range entries {
			if e.Name() != lostFound {
				return nil, targetErr("target %s is not empty", name)
			}
		}
		existing[name] = true
	}
	return existing, nil
}

func (a *Agent) restoreFrom(ctx context.Context, s *site, opts *RestoreOptions, root *os.Root) (*RestoreResult, error) {
	entries, err := s.inventory(ctx, opts.Workspace)
	if err != nil {
		return nil, err
	}
	m, err := selectBackup(completeBackups(entries), opts.BackupID, opts.Sources)
	if err != nil {
		return nil, err
	}
	log := a.log().With("workspace", opts.Workspace, "backup", m.BackupID, "location", s.Location)
	log.Info("restoring", "created", m.Created, "archiveBytes", m.ArchiveSize)

	names, skip := selectSources(m, opts.Sources)
	existing, err := checkTarget(root, names)
	if err != nil {
		return nil, err
	}
	x := newExtractor(root, existing, skip, log)
	if err := a.unpack(ctx, s, m, x); err != nil {
		if undoErr := x.undo(); undoErr != nil {
			return nil, errors.Join(err, targetErr("remove the partial restore: %w", undoErr))
		}
		return nil, err
	}
	return &RestoreResult{BackupID: m.BackupID, Location: s.Location, Created: m.Created, Stats: x.stats}, nil
}

// unpack downloads, verifies, decrypts and extracts one archive in a
// single pass. Plaintext reaches the extractor only chunk by authenticated
// chunk; the end of the stream, the size and the SHA-256 recorded in the
// manifest are checked once the tar stream is through, and only then are
// links checked and directories closed.
func (a *Agent) unpack(ctx context.Context, s *site, m *Manifest, x *extractor) error {
	body := &objectReader{ctx: ctx, client: s.s3, bucket: s.Bucket, key: m.ArchiveKey, size: m.ArchiveSize, log: x.log}
	defer body.close()
	digest := sha256.New()
	ar, err := NewReader(ctx, s.kms, io.TeeReader(body, digest), ReaderOptions{
		KeyID:   s.Key,
		Context: encryptionContext(m.Workspace, m.BackupID),
	})
	if err != nil {
		return err
	}
	if ar.Header().KeyARN != m.KeyARN {
		return fmt.Errorf("archive is sealed under %s, manifest says %s", ar.Header().KeyARN, m.KeyARN)
	}
	zr, err := zstd.NewReader(ar, zstd.WithDecoderMaxWindow(maxDecoderWindow))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	defer zr.Close()
	if err := x.extract(ctx, zr); err != nil {
		return err
	}
	// The tar end marker is not the end of the archive: read on, so that
	// the zstd checksum and the final chunk are verified as well.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("read archive end: %w", err)
	}
	if body.offset != m.ArchiveSize {
		return fmt.Errorf("archive has %d bytes, manifest says %d", body.offset, m.ArchiveSize)
	}
	if sum := hex.EncodeToString(digest.Sum(nil)); sum != m.ArchiveSHA256 {
		return fmt.Errorf("archive SHA-256 is %s, manifest says %s", sum, m.ArchiveSHA256)
	}
	return x.finish()
}

// objectReader streams an S3 object and, when the connection breaks,
// resumes with a ranged GET from where it stopped, pinned to the same
// object by its ETag. The SDK retries requests, not bodies already being
// read; without this a network blip late in a large restore would send it
// to the next location.
type objectReader struct {
	ctx    context.Context
	client S3
	bucket string
	key    string
	size   int64
	log    *slog.Logger

	etag    string
	body    io.ReadCloser
	offset  int64
	resumes int
}

func (o *objectReader) Read(p []byte) (int, error) {
	for {
		if o.body == nil {
			if o.offset == o.size {
				return 0, io.EOF
			}
			if err := o.open(); err != nil {
				return 0, err
			}
		}
		n, err := o.body.Read(p)
		o.offset += int64(n)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && o.offset == o.size:
			return n, io.EOF
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
		o.close()
		if o.resumes == maxResumes || o.ctx.Err() != nil {
			return n, fmt.Errorf("download s3://%s/%s at byte %d: %w", o.bucket, o.key, o.offset, err)
		}
		o.resumes++
		o.log.Warn("download interrupted, resuming", "key", o.key, "offset", o.offset, "error", err)
		if n > 0 {
			return n, nil
		}
	}
}

func (o *objectReader) open() error {
	in := &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)}
	if o.offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", o.offset))
		in.IfMatch = aws.String(o.etag)
	}
	out, err := o.client.GetObject(o.ctx, in)
	if err != nil {
		return fmt.Errorf("download s3://%s/%s: %w", o.bucket, o.key, err)
	}
	if o.offset == 0 {
		if n := aws.ToInt64(out.ContentLength); n != o.size {
			out.Body.Close()
			return fmt.Errorf("archive has %d bytes, manifest says %d", n, o.size)
		}
		o.etag = aws.ToString(out.ETag)
	}
	o.body = out.Body
	return nil
}

func (o *objectReader) close() {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
}

// Listing is what a location holds of a workspace.
type Listing struct {
	Location Location
	// Backups are the complete backups, oldest first.
	Backups []*Manifest
	// Incomplete are the backups without a valid manifest, by ID.
	Incomplete []IncompleteBackup
	// Err is set when the location could not be listed.
	Err error
}

// IncompleteBackup is a backup ID with objects but no valid manifest: a
// backup being written, one that failed, or one whose manifest is damaged.
type IncompleteBackup struct {
	BackupID string
	// Problem says what is wrong with the manifest, if there is one.
	Problem string
}

// List lists the backups of a workspace in every location.
func (a *Agent) List(ctx context.Context, workspace string, locations []Location) ([]Listing, error) {
	if !workspacePattern.MatchString(workspace) {
		return nil, fmt.Errorf("workspace %q is not a valid name", workspace)
	}
	sites, err := connect(ctx, a.Clients, locations)
	if err != nil {
		return nil, err
	}
	listings := make([]Listing, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			l := &listings[i]
			l.Location = s.Location
			entries, err := s.inventory(ctx, workspace)
			l.Backups = completeBackups(entries)
			for _, e := range entries {
				if !e.complete() {
					l.Incomplete = append(l.Incomplete, IncompleteBackup{BackupID: e.ID, Problem: e.Problem})
				}
			}
			l.Err = err
		})
	}
	wg.Wait()
	return listings, nil
}
