package backup

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxDeleteBatch is the most keys DeleteObjects takes at once.
const maxDeleteBatch = 1000

// expired picks the backups retention deletes from a location's
// inventory:
//
//   - a complete backup once its age, from the manifest's creation time,
//     reaches retention, except the newest complete backup, and the newest
//     complete backup of each source, which are kept whatever their age so
//     that a location never loses its last good copy of anything to the
//     calendar (say, after a week of failed runs). Per source matters with
//     the data mover, whose backups each hold one volume: the newest backup
//     overall would protect one volume only;
//   - an incomplete backup (no valid manifest) once a day has passed since
//     its last object was written, which leaves a backup still being
//     written alone.
//
// keep, the backup just taken, is never picked.
func expired(entries []*backupEntry, now time.Time, retention time.Duration, keep string) []*backupEntry {
	complete := completeBackups(entries)
	newest := map[string]bool{}
	newestOf := map[string]string{}
	for _, m := range complete { // oldest first
		for _, src := range m.Sources {
			newestOf[src.Name] = m.BackupID
		}
	}
	for _, id := range newestOf {
		newest[id] = true
	}
	if len(complete) > 0 {
		newest[complete[len(complete)-1].BackupID] = true
	}
	var out []*backupEntry
	for _, e := range entries {
		switch {
		case e.ID == keep || newest[e.ID]:
		case e.complete():
			if !now.Before(e.Manifest.Created.Add(retention)) {
				out = append(out, e)
			}
		case !now.Before(e.LastModified.Add(incompleteGrace)):
			out = append(out, e)
		}
	}
	return out
}

// pruneAll applies retention in every location, after a successful backup
// only, and records what remains in the summary.
func (a *Agent) pruneAll(ctx context.Context, sites []*site, opts *Options, sum *Summary, log *slog.Logger) error {
	retention := time.Duration(opts.RetentionDays) * 24 * time.Hour
	return forEachSite(sites, func(i int, s *site) error {
		entries, err := s.inventory(ctx, opts.Workspace)
		if err != nil {
			return sum.fail(i, locationErr(s, fmt.Errorf("retention: %w", err)))
		}
		doomed := expired(entries, a.now(), retention, opts.BackupID)
		deleted := map[string]bool{}
		for _, e := range doomed {
			if err := s.deleteBackup(ctx, e); err != nil {
				return sum.fail(i, locationErr(s, fmt.Errorf("retention: delete backup %s: %w", e.ID, err)))
			}
			deleted[e.ID] = true
			sum.Locations[i].Pruned++
			log.Info("backup deleted by retention", "location", s.Location, "deleted", e.ID, "complete", e.complete(), "problem", e.Problem, "versions", len(e.Versions))
		}
		var remaining []*Manifest
		for _, m := range completeBackups(entries) {
			if !deleted[m.BackupID] {
				remaining = append(remaining, m)
			}
		}
		sum.Locations[i].setBackups(remaining)
		return nil
	})
}

// deleteBackup removes every version of every object of a backup, the
// manifest first: interrupted half way, the backup is left incomplete,
// never complete with its archive gone.
func (s *site) deleteBackup(ctx context.Context, e *backupEntry) error {
	var manifests, others []s3types.ObjectIdentifier
	for _, v := range e.Versions {
		if strings.HasSuffix(aws.ToString(v.Key), "/"+manifestName) {
			manifests = append(manifests, v)
		} else {
			others = append(others, v)
		}
	}
	if err := s.deleteVersions(ctx, manifests); err != nil {
		return err
	}
	return s.deleteVersions(ctx, others)
}

// deleteVersions deletes object versions in batches and fails if S3
// reports any of them not deleted.
func (s *site) deleteVersions(ctx context.Context, ids []s3types.ObjectIdentifier) error {
	for len(ids) > 0 {
		batch := ids[:min(len(ids), maxDeleteBatch)]
		ids = ids[len(batch):]
		out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.Bucket),
			Delete: &s3types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete objects: %w", err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %s (version %s): %s: %s, and %d more errors",
				aws.ToString(e.Key), aws.ToString(e.VersionId), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return nil
}
