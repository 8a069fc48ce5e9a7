package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Bucket layout. Every object of a backup lives under its own prefix,
//
//	backups/<workspace>/<backup ID>/archive.tar.zst.enc
//	backups/<workspace>/<backup ID>/manifest.json
//
// and the manifest is written last: a backup is complete exactly when its
// manifest exists, parses, names the backup, and the archive it describes
// is present with the size it records. Anything else under the prefix is
// an incomplete backup, never restored and deleted after a day.
const (
	backupsRoot  = "backups/"
	archiveName  = "archive.tar.zst.enc"
	manifestName = "manifest.json"
	// maxManifestSize bounds what the agent reads as a manifest.
	maxManifestSize = 1 << 20
)

var (
	workspacePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	backupIDPattern  = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$`)
)

func workspacePrefix(workspace string) string { return backupsRoot + workspace + "/" }

func objectKey(workspace, backupID, name string) string {
	return workspacePrefix(workspace) + backupID + "/" + name
}

// Manifest describes a complete backup in one location.
type Manifest struct {
	// FormatVersion is the archive format version.
	FormatVersion int    `json:"formatVersion"`
	Workspace     string `json:"workspace"`
	BackupID      string `json:"backupID"`
	// Created is when the backup started reading its sources; retention
	// ages backups from it.
	Created   time.Time `json:"created"`
	Completed time.Time `json:"completed"`
	Region    string    `json:"region"`
	// Sources lists what the archive holds, in archive order.
	Sources []SourceStats `json:"sources"`
	// ArchiveKey, ArchiveSize and ArchiveSHA256 identify the encrypted
	// archive object exactly.
	ArchiveKey    string `json:"archiveKey"`
	ArchiveSize   int64  `json:"archiveSize"`
	ArchiveSHA256 string `json:"archiveSHA256"`
	// KeyARN is the KMS key of both the envelope and SSE-KMS.
	KeyARN string `json:"keyARN"`
}

// check verifies that the manifest describes the backup at its path.
func (m *Manifest) check(workspace, backupID string) error {
	switch {
	case m.FormatVersion != FormatVersion:
		return fmt.Errorf("archive format version %d, this agent reads %d", m.FormatVersion, FormatVersion)
	case m.Workspace != workspace || m.BackupID != backupID:
		return fmt.Errorf("manifest names backup %s/%s", m.Workspace, m.BackupID)
	case m.ArchiveKey != objectKey(workspace, backupID, archiveName):
		return fmt.Errorf("manifest names archive %q", m.ArchiveKey)
	case m.Created.IsZero() || m.ArchiveSize <= 0 || len(m.ArchiveSHA256) != 64 || m.KeyARN == "":
		return errors.New("manifest lacks created time, archive size, digest or key")
	}
	seen := map[string]bool{}
	for _, s := range m.Sources {
		// The names become directories of a restore's target.
		if !filepath.IsLocal(s.Name) || strings.ContainsAny(s.Name, "/\x00") || seen[s.Name] {
			return fmt.Errorf("manifest names source %q", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// backupEntry is everything a location holds for one backup ID.
type backupEntry struct {
	ID string
	// Manifest is set when the backup is complete.
	Manifest *Manifest
	// Problem says why a backup with a manifest is nevertheless not
	// complete.
	Problem string
	// Versions lists every object version and delete marker under the
	// backup's prefix: what deleting the backup has to remove.
	Versions []s3types.ObjectIdentifier
	// LastModified is the newest of those versions' times.
	LastModified time.Time

	manifestPresent bool
	archiveSize     int64 // of the current archive version, -1 if none
}

func (e *backupEntry) complete() bool { return e.Manifest != nil }

// inventory lists the backups of a workspace in a location, oldest first
// by ID, reading the manifest of each that has one. It lists versions, not
// just current objects, so that deleting a backup removes everything a
// versioned bucket keeps of it. Any error means the inventory is unknown:
// callers must not delete on the strength of a partial one.
func (s *site) inventory(ctx context.Context, workspace string) ([]*backupEntry, error) {
	prefix := workspacePrefix(workspace)
	entries := map[string]*backupEntry{}
	entry := func(key string) (*backupEntry, string) {
		id, name, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		if !ok || id == "" {
			return nil, ""
		}
		e := entries[id]
		if e == nil {
			e = &backupEntry{ID: id, archiveSize: -1}
			entries[id] = e
		}
		return e, name
	}
	note := func(e *backupEntry, key, versionID string, modified *time.Time) {
		e.Versions = append(e.Versions, s3types.ObjectIdentifier{Key: aws.String(key), VersionId: aws.String(versionID)})
		if t := aws.ToTime(modified); t.After(e.LastModified) {
			e.LastModified = t
		}
	}
	pages := s3.NewListObjectVersionsPaginator(s.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list backups: %w", err)
		}
		for _, v := range page.Versions {
			key := aws.ToString(v.Key)
			e, name := entry(key)
			if e == nil {
				continue
			}
			note(e, key, aws.ToString(v.VersionId), v.LastModified)
			if aws.ToBool(v.IsLatest) {
				switch name {
				case manifestName:
					e.manifestPresent = true
				case archiveName:
					e.archiveSize = aws.ToInt64(v.Size)
				}
			}
		}
		for _, m := range page.DeleteMarkers {
			key := aws.ToString(m.Key)
			if e, _ := entry(key); e != nil {
				note(e, key, aws.ToString(m.VersionId), m.LastModified)
			}
		}
	}
	list := make([]*backupEntry, 0, len(entries))
	for _, e := range entries {
		if e.manifestPresent {
			if err := s.readManifest(ctx, workspace, e); err != nil {
				return nil, err
			}
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b *backupEntry) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

// readManifest reads and checks an entry's manifest. A manifest that
// cannot be fetched fails the inventory; one that is fetched but wrong
// makes the backup incomplete, with the reason in Problem.
func (s *site) readManifest(ctx context.Context, workspace string, e *backupEntry) error {
	key := objectKey(workspace, e.ID, manifestName)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	m := &Manifest{}
	switch err := json.Unmarshal(raw, m); {
	case len(raw) > maxManifestSize:
		e.Problem = "manifest exceeds 1 MiB"
	case err != nil:
		e.Problem = fmt.Sprintf("manifest does not parse: %v", err)
	default:
		if err := m.check(workspace, e.ID); err != nil {
			e.Problem = err.Error()
		} else if e.archiveSize != m.ArchiveSize {
			e.Problem = fmt.Sprintf("archive is missing or has %d bytes, manifest says %d", e.archiveSize, m.ArchiveSize)
		} else {
			e.Manifest = m
		}
	}
	return nil
}

// completeBackups returns the complete backups of an inventory, oldest
// first by creation time.
func completeBackups(entries []*backupEntry) []*Manifest {
	var out []*Manifest
	for _, e := range entries {
		if e.complete() {
			out = append(out, e.Manifest)
		}
	}
	slices.SortStableFunc(out, func(a, b *Manifest) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.BackupID, b.BackupID)
	})
	return out
}
