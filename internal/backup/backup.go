package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"
)

// BackupIDLayout is the time layout of default backup IDs: the UTC start
// time, which sorts like the backups' age.
const BackupIDLayout = "20060102T150405Z"

// S3's limits on one multipart upload.
const (
	maxUploadParts = 10000
	maxPartSize    = 5 << 30
)

// abortTimeout bounds the AbortMultipartUpload the transfer manager sends
// after a failed upload. It runs on a fresh context, because the backup's
// own is usually canceled by then.
const abortTimeout = 30 * time.Second

// Options says what a backup run backs up and where to.
type Options struct {
	Workspace string
	// BackupID defaults to the start time in BackupIDLayout.
	BackupID string
	// Sources are directories, each stored under its Name.
	Sources []Source
	// IncludeBucket, when set, is the workspace's file bucket in the
	// primary region (the first location's): the objects under
	// IncludePrefix are stored under BucketSourceName.
	IncludeBucket string
	IncludePrefix string
	// Locations receive one copy each; the first is the primary.
	Locations []Location
	// RetentionDays is how long complete backups are kept, 1 to
	// MaxRetentionDays; 0 means MaxRetentionDays.
	RetentionDays int
}

func (o *Options) validate() error {
	if !workspacePattern.MatchString(o.Workspace) {
		return fmt.Errorf("workspace %q is not a valid name", o.Workspace)
	}
	if !backupIDPattern.MatchString(o.BackupID) {
		return fmt.Errorf("backup ID %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", o.BackupID)
	}
	if len(o.Sources) == 0 && o.IncludeBucket == "" {
		return errors.New("nothing to back up: give at least one source directory or a bucket to include")
	}
	names := map[string]bool{}
	if o.IncludeBucket != "" {
		names[BucketSourceName] = true
	}
	for _, s := range o.Sources {
		if s.Name == "" || s.Name == "." || s.Name == ".." || s.Name != filepath.Base(s.Name) {
			return fmt.Errorf("source %s: %q is not usable as a top-level archive name", s.Path, s.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("source %s: the name %q is already taken; source directories must have distinct base names, and %q is reserved with --include-bucket", s.Path, s.Name, BucketSourceName)
		}
		names[s.Name] = true
	}
	if len(o.Locations) == 0 {
		return errors.New("no backup location")
	}
	seen := map[Location]bool{}
	for _, l := range o.Locations {
		if l.Key == "" {
			return fmt.Errorf("location %s: no KMS key", l)
		}
		if seen[Location{Region: l.Region, Bucket: l.Bucket}] {
			return fmt.Errorf("location %s given twice", l)
		}
		seen[Location{Region: l.Region, Bucket: l.Bucket}] = true
	}
	if o.RetentionDays < 1 || o.RetentionDays > MaxRetentionDays {
		return fmt.Errorf("retention of %d days: must be 1 to %d", o.RetentionDays, MaxRetentionDays)
	}
	return nil
}

// Backup archives the sources once, encrypts the archive separately for
// every location under that location's key, uploads all copies at the same
// time, and commits the backup by writing its manifests only once every
// copy is uploaded and verified. Then it applies retention in every
// location. It always returns a summary; on error the summary says how far
// the backup got.
//
// A backup that fails leaves no manifest anywhere: all locations hold the
// same set of complete backups, and an interrupted one is only ever seen
// as incomplete (and deleted after a day). Nothing is pruned after a
// failure.
func (a *Agent) Backup(ctx context.Context, opts Options) (*Summary, error) {
	started := a.now()
	if opts.BackupID == "" {
		opts.BackupID = started.UTC().Format(BackupIDLayout)
	}
	if opts.RetentionDays == 0 {
		opts.RetentionDays = MaxRetentionDays
	}
	sum := newSummary(opts)
	err := a.backup(ctx, &opts, started, sum)
	if err != nil {
		sum.Error = err.Error()
		a.log().Error("backup failed", "workspace", opts.Workspace, "backup", opts.BackupID, "status", sum.Status, "error", err)
		return sum, err
	}
	sum.Status = StatusSucceeded
	a.log().Info("backup complete", "workspace", opts.Workspace, "backup", opts.BackupID, "duration", a.now().Sub(started).Round(time.Millisecond))
	return sum, nil
}

func (a *Agent) backup(ctx context.Context, opts *Options, started time.Time, sum *Summary) error {
	if err := opts.validate(); err != nil {
		return err
	}
	sites, err := connect(ctx, a.Clients, opts.Locations)
	if err != nil {
		return err
	}
	log := a.log().With("workspace", opts.Workspace, "backup", opts.BackupID)
	log.Info("backup starting", "sources", len(opts.Sources), "locations", len(sites))

	// Before reading a byte: every location must be reachable, must not
	// have this backup yet, and must hand out a data key.
	if err := forEachSite(sites, func(i int, s *site) error {
		entries, err := s.inventory(ctx, opts.Workspace)
		if err != nil {
			return sum.fail(i, locationErr(s, err))
		}
		sum.Locations[i].setBackups(completeBackups(entries))
		for _, e := range entries {
			if e.ID == opts.BackupID && e.manifestPresent {
				return sum.fail(i, locationErr(s, fmt.Errorf("backup %s already exists", opts.BackupID)))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	uploads := make([]*upload, len(sites))
	if err := forEachSite(sites, func(i int, s *site) error {
		u, err := newUpload(ctx, s, opts, a.ChunkSize)
		uploads[i] = u
		return sum.fail(i, locationErr(s, err))
	}); err != nil {
		return err
	}

	sources, err := a.stream(ctx, opts, uploads, log)
	if err != nil {
		for i, u := range uploads {
			if u.err != nil {
				sum.Locations[i].Error = u.err.Error()
			}
		}
		return err
	}
	if err := forEachSite(sites, func(i int, s *site) error {
		sum.Locations[i].ArchiveBytes = uploads[i].written.Load()
		return sum.fail(i, locationErr(s, uploads[i].verify(ctx)))
	}); err != nil {
		return err
	}
	if err := a.commit(ctx, opts, started, sources, uploads, sum); err != nil {
		return err
	}
	sum.Status = StatusPruneFailed
	return a.pruneAll(ctx, sites, opts, sum, log)
}

// upload is one location's copy of the archive on its way to S3: the
// envelope writer feeds the encrypted stream through Write into a pipe the
// transfer manager reads.
type upload struct {
	site      *site
	key       string
	writer    *Writer
	pr        *io.PipeReader
	pw        *io.PipeWriter
	digest    hash.Hash
	written   atomic.Int64
	versionID string
	err       error
}

func newUpload(ctx context.Context, s *site, opts *Options, chunkSize int) (*upload, error) {
	u := &upload{site: s, key: objectKey(opts.Workspace, opts.BackupID, archiveName), digest: sha256.New()}
	u.pr, u.pw = io.Pipe()
	w, err := NewWriter(ctx, s.kms, u, s.Key, encryptionContext(opts.Workspace, opts.BackupID), chunkSize)
	if err != nil {
		return nil, err
	}
	u.writer = w
	return u, nil
}

// Write takes encrypted bytes: they are hashed for the manifest and
// handed to the uploader.
func (u *upload) Write(p []byte) (int, error) {
	n, err := u.pw.Write(p)
	u.digest.Write(p[:n])
	u.written.Add(int64(n))
	return n, err
}

// send uploads the pipe's content with SSE-KMS under the location's key.
// Every part carries an SDK checksum that S3 verifies on receipt; CRC32C,
// because the CPU computes it (SSE4.2, ARMv8 CRC) at memory speed.
func (u *upload) send(ctx context.Context, partSize int64, concurrency int) error {
	tm := transfermanager.New(u.site.s3, func(o *transfermanager.Options) {
		o.PartSizeBytes = partSize
		o.MultipartUploadThreshold = partSize
		o.Concurrency = concurrency
		o.FailTimeout = abortTimeout
		o.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmCrc32c
	})
	out, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:               aws.String(u.site.Bucket),
		Key:                  aws.String(u.key),
		Body:                 u.pr,
		ContentType:          aws.String("application/octet-stream"),
		ServerSideEncryption: tmtypes.ServerSideEncryptionAwsKms,
		SSEKMSKeyID:          aws.String(u.writer.Header().KeyARN),
	})
	if err != nil {
		if limit := partSize * maxUploadParts; u.written.Load() >= limit {
			return fmt.Errorf("upload s3://%s/%s: the archive exceeds %d bytes, the most %d parts of %d bytes hold (raise the part size): %w",
				u.site.Bucket, u.key, limit, maxUploadParts, partSize, err)
		}
		return fmt.Errorf("upload s3://%s/%s: %w", u.site.Bucket, u.key, err)
	}
	u.versionID = aws.ToString(out.VersionID)
	return nil
}

// verify reads back what S3 stored before the backup is committed: the
// size the agent wrote, encrypted at rest under the location's key.
func (u *upload) verify(ctx context.Context) error {
	in := &s3.HeadObjectInput{Bucket: aws.String(u.site.Bucket), Key: aws.String(u.key)}
	if u.versionID != "" {
		in.VersionId = aws.String(u.versionID)
	}
	out, err := u.site.s3.HeadObject(ctx, in)
	if err != nil {
		return fmt.Errorf("verify uploaded archive: %w", err)
	}
	keyARN := u.writer.Header().KeyARN
	switch {
	case aws.ToInt64(out.ContentLength) != u.written.Load():
		return fmt.Errorf("uploaded archive has %d bytes, %d were sent", aws.ToInt64(out.ContentLength), u.written.Load())
	case out.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != keyARN:
		return fmt.Errorf("uploaded archive is encrypted with %q under %q, want aws:kms under %s", out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId), keyARN)
	}
	return nil
}

// stream produces the compressed tar stream once and fans it out to every
// location's envelope writer and upload. The first failure anywhere (a
// source, an upload) cancels everything, and is what stream returns.
func (a *Agent) stream(ctx context.Context, opts *Options, uploads []*upload, log *slog.Logger) ([]SourceStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	partSize := a.partSize(sourceBytes(opts.Sources))
	var wg sync.WaitGroup
	for _, u := range uploads {
		wg.Go(func() {
			if err := u.send(ctx, partSize, a.uploadConcurrency()); err != nil {
				// Only a failure of its own counts against the location,
				// not one caused by another location's canceling all.
				if ctx.Err() == nil {
					u.err = err
				}
				cancel(locationErr(u.site, err))
				u.pr.CloseWithError(err)
				return
			}
			_ = u.pr.Close() // never fails
		})
	}
	var read atomic.Int64
	stopProgress := a.reportProgress(log, &read, uploads)
	sources, err := a.produce(ctx, opts, uploads, &read, log)
	stopProgress()
	if err != nil {
		cancel(err)
	}
	for _, u := range uploads {
		if cause := context.Cause(ctx); cause != nil {
			u.pw.CloseWithError(cause)
		} else {
			_ = u.pw.Close() // never fails
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	for _, u := range uploads {
		log.Info("archive uploaded", "location", u.site.Location, "bytes", u.written.Load())
	}
	return sources, nil
}

// produce writes the tar stream of all sources, compressed, into every
// upload, and seals each upload's final chunk.
func (a *Agent) produce(ctx context.Context, opts *Options, uploads []*upload, read *atomic.Int64, log *slog.Logger) (sources []SourceStats, err error) {
	out := &fanOut{uploads: uploads, errs: make([]error, len(uploads))}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(a.compression()))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer func() {
		if err != nil {
			// Release the encoder without sending anything more.
			out.failed.Store(true)
			_ = zw.Close()
		}
	}()
	ar := newArchiver(zw, log, read)
	for _, src := range opts.Sources {
		stats, err := ar.addDirectory(ctx, src)
		if err != nil {
			return nil, err
		}
		log.Info("source archived", "source", src.Name, "files", stats.Files, "bytes", stats.Bytes, "skipped", stats.Skipped)
		sources = append(sources, stats)
	}
	if opts.IncludeBucket != "" {
		stats, err := ar.addBucket(ctx, uploads[0].site.s3, opts.IncludeBucket, opts.IncludePrefix)
		if err != nil {
			return nil, fmt.Errorf("include bucket %s: %w", opts.IncludeBucket, err)
		}
		log.Info("bucket archived", "bucket", opts.IncludeBucket, "prefix", opts.IncludePrefix, "objects", stats.Files, "bytes", stats.Bytes, "skipped", stats.Skipped)
		sources = append(sources, stats)
	}
	if err := ar.close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("finish zstd stream: %w", err)
	}
	for _, u := range uploads {
		if err := u.writer.Close(); err != nil {
			return nil, locationErr(u.site, err)
		}
	}
	return sources, nil
}

// fanOut copies the compressed stream into every location's writer, in
// parallel so that encryption runs on as many cores as there are
// locations. Each write returns once every location took the data: the
// slowest location paces the backup, and nothing is buffered beyond each
// writer's chunk and the uploaders' parts.
type fanOut struct {
	uploads []*upload
	errs    []error
	// failed makes writes fail without reaching the uploads, for
	// releasing the compressor after an error. The compressor writes from
	// its own goroutine, hence atomic.
	failed atomic.Bool
}

func (f *fanOut) Write(p []byte) (int, error) {
	if f.failed.Load() {
		return 0, errors.New("backup stream abandoned")
	}
	if len(f.uploads) == 1 {
		return f.uploads[0].writer.Write(p)
	}
	var wg sync.WaitGroup
	for i, u := range f.uploads {
		wg.Go(func() { _, f.errs[i] = u.writer.Write(p) })
	}
	wg.Wait()
	if err := errors.Join(f.errs...); err != nil {
		return 0, err
	}
	return len(p), nil
}

// reportProgress logs bytes read and uploaded at every progress interval,
// until the returned function is called.
func (a *Agent) reportProgress(log *slog.Logger, read *atomic.Int64, uploads []*upload) func() {
	ticker := time.NewTicker(a.progressInterval())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				attrs := []any{"read", read.Load()}
				for _, u := range uploads {
					attrs = append(attrs, u.site.Region, u.written.Load())
				}
				log.Info("backup progress", attrs...)
			}
		}
	})
	return func() {
		ticker.Stop()
		close(done)
		wg.Wait()
	}
}

// commit writes the manifest of every location. A manifest is created,
// never replaced (If-None-Match), so two runs racing for one backup ID
// cannot both commit. If any location fails, the manifests already written
// by this run are deleted again, so that the backup is not complete in
// some locations only.
func (a *Agent) commit(ctx context.Context, opts *Options, started time.Time, sources []SourceStats, uploads []*upload, sum *Summary) error {
	completed := a.now()
	versions := make([]*string, len(uploads))
	committed := make([]bool, len(uploads))
	sites := make([]*site, len(uploads))
	for i, u := range uploads {
		sites[i] = u.site
	}
	err := forEachSite(sites, func(i int, s *site) error {
		u := uploads[i]
		m := &Manifest{
			FormatVersion: FormatVersion,
			Workspace:     opts.Workspace,
			BackupID:      opts.BackupID,
			Created:       started.UTC(),
			Completed:     completed.UTC(),
			Region:        s.Region,
			Sources:       sources,
			ArchiveKey:    u.key,
			ArchiveSize:   u.written.Load(),
			ArchiveSHA256: hex.EncodeToString(u.digest.Sum(nil)),
			KeyARN:        u.writer.Header().KeyARN,
		}
		body, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return sum.fail(i, locationErr(s, err))
		}
		out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket:               aws.String(s.Bucket),
			Key:                  aws.String(objectKey(opts.Workspace, opts.BackupID, manifestName)),
			Body:                 bytes.NewReader(body),
			ContentType:          aws.String("application/json"),
			IfNoneMatch:          aws.String("*"),
			ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
			SSEKMSKeyId:          aws.String(m.KeyARN),
		})
		if err != nil {
			return sum.fail(i, locationErr(s, fmt.Errorf("write manifest: %w", err)))
		}
		versions[i], committed[i] = out.VersionId, true
		return nil
	})
	if err == nil {
		return nil
	}
	for i, s := range sites {
		if !committed[i] {
			continue
		}
		key := objectKey(opts.Workspace, opts.BackupID, manifestName)
		id := s3types.ObjectIdentifier{Key: aws.String(key), VersionId: versions[i]}
		// A fresh context: the run's own may be what failed.
		rollbackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		rbErr := s.deleteVersions(rollbackCtx, []s3types.ObjectIdentifier{id})
		cancel()
		if rbErr != nil {
			err = errors.Join(err, locationErr(s, fmt.Errorf("withdraw manifest after the failure elsewhere: %w; the backup is complete here but not everywhere", rbErr)))
		}
	}
	return err
}

// sourceBytes estimates the size of the sources from their regular files, to choose the
// part size. An unreadable entry only makes the estimate smaller; reading the sources
// for the archive reports it.
func sourceBytes(sources []Source) int64 {
	var total int64
	for _, source := range sources {
		_ = filepath.WalkDir(source.Path, func(_ string, d fs.DirEntry, walkErr error) error {
			if walkErr == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil // keep estimating past what cannot be read
		})
	}
	return total
}
