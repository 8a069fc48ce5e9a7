package backup

import (
	"fmt"
	"slices"
	"strings"
)

// Backup IDs of the data mover. Each run with ID R backs up every volume
// in its own mover pod, as the backup R-<claim> (cut to the ID's 64
// characters and made unique with a hash when the claim is long) holding
// the one source <claim>, and the workspace's file bucket as R_files.
// Backups from before the mover have the ID R and hold every source.
const (
	volumeIDSeparator = "-"
	filesIDSeparator  = "_"
)

// partOfRun reports whether id is one of the data mover's backups of the
// run runID.
func partOfRun(id, runID string) bool {
	return strings.HasPrefix(id, runID+volumeIDSeparator) || strings.HasPrefix(id, runID+filesIDSeparator)
}

// holds reports whether a backup holds every source named.
func holds(m *Manifest, sources []string) bool {
	for _, name := range sources {
		if !slices.ContainsFunc(m.Sources, func(s SourceStats) bool { return s.Name == name }) {
			return false
		}
	}
	return true
}

// selectBackup picks the backup a restore of id and sources reads from a
// location's complete backups, oldest first:
//
//   - latest: the newest that holds every source named, so that a volume
//     backed up on its own is found whichever volume was backed up last;
//   - a run's ID: the backup of that ID if it holds the sources (the layout
//     before the data mover), or else the newest of the run's per-volume
//     backups that holds them. The match is on the manifest's sources, not
//     on the ID's suffix, which is hashed for long claims;
//   - any other ID is taken as it is.
//
// The error says what was looked for, and which backups the run has when
// it is split into per-volume backups that no single one answers.
func selectBackup(complete []*Manifest, id string, sources []string) (*Manifest, error) {
	var exact, ofRun *Manifest
	var run []string
	for _, m := range complete {
		switch {
		case id == Latest || m.BackupID == id:
			if holds(m, sources) {
				exact = m
			}
		case partOfRun(m.BackupID, id):
			run = append(run, describeBackup(m))
			if len(sources) > 0 && holds(m, sources) {
				ofRun = m
			}
		}
	}
	switch {
	case exact != nil:
		return exact, nil
	case ofRun != nil:
		return ofRun, nil
	}
	what := id
	if len(sources) > 0 {
		what += fmt.Sprintf(" holding source %s", strings.Join(sources, ", "))
	}
	if len(run) > 0 {
		return nil, fmt.Errorf("%w: %s; the run's per-volume backups are %s: restore them one at a time, by their ID or with --source",
			ErrBackupNotFound, what, strings.Join(run, ", "))
	}
	return nil, fmt.Errorf("%w: %s", ErrBackupNotFound, what)
}

// describeBackup names a backup and its sources.
func describeBackup(m *Manifest) string {
	names := make([]string, len(m.Sources))
	for i, s := range m.Sources {
		names[i] = s.Name
	}
	return fmt.Sprintf("%s (%s)", m.BackupID, strings.Join(names, ", "))
}
