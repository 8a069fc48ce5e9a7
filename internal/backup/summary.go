package backup

import (
	"encoding/json"
	"fmt"
	"os"
)

// Statuses of a backup run.
const (
	// StatusSucceeded: the backup is complete in every location and
	// retention was applied.
	StatusSucceeded = "succeeded"
	// StatusFailed: the backup is complete nowhere.
	StatusFailed = "failed"
	// StatusPruneFailed: the backup is complete in every location, but
	// retention could not be applied everywhere.
	StatusPruneFailed = "pruneFailed"
)

// MaxSummarySize is the size Kubernetes keeps of a container's
// termination message, where the operator reads the summary.
const MaxSummarySize = 4096

// Summary is the machine-readable outcome of a backup run.
type Summary struct {
	Workspace string            `json:"workspace"`
	BackupID  string            `json:"backupID"`
	Status    string            `json:"status"`
	Error     string            `json:"error,omitempty"`
	Locations []LocationSummary `json:"locations"`
}

// LocationSummary is the state of one location after the run.
type LocationSummary struct {
	Region string `json:"region"`
	Bucket string `json:"bucket"`
	// ArchiveBytes is the size of this run's archive, once uploaded.
	ArchiveBytes int64 `json:"archiveBytes,omitempty"`
	// Backups is the number of complete backups after pruning (before the
	// run if it failed), and Newest and Oldest their IDs.
	Backups int    `json:"backups"`
	Newest  string `json:"newest,omitempty"`
	Oldest  string `json:"oldest,omitempty"`
	// Pruned is the number of backups retention deleted.
	Pruned int    `json:"pruned,omitempty"`
	Error  string `json:"error,omitempty"`
}

func newSummary(opts Options) *Summary {
	s := &Summary{Workspace: opts.Workspace, BackupID: opts.BackupID, Status: StatusFailed}
	for _, l := range opts.Locations {
		s.Locations = append(s.Locations, LocationSummary{Region: l.Region, Bucket: l.Bucket})
	}
	return s
}

// fail records err as location i's error and returns it.
func (s *Summary) fail(i int, err error) error {
	if err != nil {
		s.Locations[i].Error = err.Error()
	}
	return err
}

func (l *LocationSummary) setBackups(complete []*Manifest) {
	l.Backups = len(complete)
	l.Newest, l.Oldest = "", ""
	if len(complete) > 0 {
		l.Oldest = complete[0].BackupID
		l.Newest = complete[len(complete)-1].BackupID
	}
}

// Marshal encodes the summary as one JSON line of at most MaxSummarySize
// bytes, shortening error messages as far as needed, and as a last resort
// dropping the per-location details.
func (s *Summary) Marshal() []byte {
	c := *s
	c.Locations = append([]LocationSummary(nil), s.Locations...)
	for _, limit := range []int{-1, 1024, 256, 64} {
		if limit >= 0 {
			c.Error = truncate(s.Error, limit)
			for i := range c.Locations {
				c.Locations[i].Error = truncate(s.Locations[i].Error, limit)
			}
		}
		if out := mustJSON(c); len(out) <= MaxSummarySize {
			return out
		}
	}
	c.Locations = nil
	c.Error = truncate(fmt.Sprintf("%s (details of %d locations dropped to fit the termination message)", c.Error, len(s.Locations)), 1024)
	return mustJSON(c)
}

func mustJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		// Only strings and numbers: encoding cannot fail.
		panic(err)
	}
	return append(out, '\n')
}

func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	r := []rune(s[:limit])
	return string(r[:len(r)-1]) + "…"
}

// writeSummaryFile writes the summary where the operator will read it.
func writeSummaryFile(path string, sum *Summary) error {
	if err := os.WriteFile(path, sum.Marshal(), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
