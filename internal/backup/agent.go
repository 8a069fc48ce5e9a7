package backup

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Defaults of Agent's tunables.
const (
	// DefaultPartSize is the smallest multipart part size the agent chooses
	// by itself. Memory is dominated by the parts: each location holds up to
	// UploadConcurrency+2 of them (in flight, being filled, and the first one
	// read whole), so 8 MiB keeps two locations near 150 MiB. S3 allows
	// 10,000 parts, so larger sources get larger parts (partSizeFor).
	DefaultPartSize = 8 << 20
	// DefaultUploadConcurrency is the number of parts in flight per
	// location.
	DefaultUploadConcurrency = 4
	// DefaultProgressInterval is how often a running backup logs progress.
	DefaultProgressInterval = 30 * time.Second
	// MaxRetentionDays is the longest retention the agent accepts: the
	// backup policy keeps backups exactly a week.
	MaxRetentionDays = 7
	// incompleteGrace is how long an incomplete backup is left alone, in
	// case it is a backup still being written.
	incompleteGrace = 24 * time.Hour
)

// Agent backs up workspaces to, and restores them from, S3 locations. Its
// zero value needs only Clients; the other fields have defaults.
type Agent struct {
	// Clients builds the AWS clients of a region.
	Clients Clients
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// Now is the clock that dates backups and ages them for retention;
	// nil means time.Now.
	Now func() time.Time
	// ChunkSize is the archive chunk size; 0 means DefaultChunkSize.
	ChunkSize int
	// PartSize is the multipart upload part size; 0 chooses one from the
	// size of the sources (partSizeFor).
	PartSize int64
	// UploadConcurrency is the parts uploaded in parallel per location; 0
	// means DefaultUploadConcurrency.
	UploadConcurrency int
	// Compression is the zstd level; 0 means zstd.SpeedDefault.
	Compression zstd.EncoderLevel
	// ProgressInterval is how often a backup logs progress; 0 means
	// DefaultProgressInterval.
	ProgressInterval time.Duration
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Agent) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// partSize is the configured part size, or one that fits sourceBytes.
func (a *Agent) partSize(sourceBytes int64) int64 {
	if a.PartSize != 0 {
		return a.PartSize
	}
	return partSizeFor(sourceBytes)
}

// partSizeFor is the smallest part size, in whole MiB and at least DefaultPartSize, that
// fits an archive of sourceBytes (compression only shrinks it; tar and the envelope add a
// little) in S3's 10,000 parts with a tenth to spare.
func partSizeFor(sourceBytes int64) int64 {
	const mib = 1 << 20
	need := (sourceBytes + sourceBytes/20) / (maxUploadParts * 9 / 10)
	size := max(int64(DefaultPartSize), (need+mib-1)/mib*mib)
	return min(size, maxPartSize)
}

func (a *Agent) uploadConcurrency() int {
	if a.UploadConcurrency == 0 {
		return DefaultUploadConcurrency
	}
	return a.UploadConcurrency
}

func (a *Agent) compression() zstd.EncoderLevel {
	if a.Compression == 0 {
		return zstd.SpeedDefault
	}
	return a.Compression
}

func (a *Agent) progressInterval() time.Duration {
	if a.ProgressInterval == 0 {
		return DefaultProgressInterval
	}
	return a.ProgressInterval
}

// forEachSite runs fn for every site concurrently and joins the errors,
// which fn is expected to make name their location.
func forEachSite(sites []*site, fn func(i int, s *site) error) error {
	errs := make([]error, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() { errs[i] = fn(i, s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// locationErr names the location an error happened in.
func locationErr(s *site, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("location %s: %w", s.Location, err)
}
