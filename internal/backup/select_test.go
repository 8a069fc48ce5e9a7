package backup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSelectBackup(t *testing.T) {
	manifest := func(id string, hours int, sources ...string) *Manifest {
		m := &Manifest{BackupID: id, Created: epoch.Add(time.Duration(hours) * time.Hour)}
		for _, s := range sources {
			m.Sources = append(m.Sources, SourceStats{Name: s})
		}
		return m
	}
	const (
		old = "20300301T020000Z"
		run = "20300302T020000Z"
		// A claim too long for the ID: cut, with the hash of the name.
		hashed = run + "-" + "data-postgres-primary-0-with-a-very-lo-5f2c9a1b"
	)
	long := "data-postgres-primary-0-with-a-very-long-name-indeed"
	// Oldest first, as completeBackups orders them: the old layout,
	// then one run of the data mover, one volume per backup.
	complete := []*Manifest{
		manifest(old, 0, "data", "home", "files"),
		manifest(run+"-data", 24, "data"),
		manifest(hashed, 25, long),
		manifest(run+"_files", 26, "files"),
		manifest(run+"-home", 27, "home"),
	}
	tests := []struct {
		name    string
		id      string
		sources []string
		want    string
		wantErr []string
	}{
		{name: "latest", id: Latest, want: run + "-home"},
		{name: "latest of a volume backed up before the newest", id: Latest, sources: []string{"data"}, want: run + "-data"},
		{name: "latest holding a long claim", id: Latest, sources: []string{long}, want: hashed},
		{name: "latest holding two volumes: only the old layout", id: Latest, sources: []string{"data", "home"}, want: old},
		{name: "latest of no backup", id: Latest, sources: []string{"nope"}, wantErr: []string{"latest holding source nope"}},
		{name: "old layout, all", id: old, want: old},
		{name: "old layout, one source", id: old, sources: []string{"home"}, want: old},
		{name: "run, one volume", id: run, sources: []string{"home"}, want: run + "-home"},
		{name: "run, long claim matched on the manifest", id: run, sources: []string{long}, want: hashed},
		{name: "run, file bucket", id: run, sources: []string{"files"}, want: run + "_files"},
		{name: "per-volume ID", id: run + "-data", want: run + "-data"},
		{
			name: "run without a source", id: run,
			wantErr: []string{"no such complete backup: " + run + ";", run + "-data (data)", run + "-home (home)", hashed + " (" + long + ")"},
		},
		{name: "run, two volumes", id: run, sources: []string{"data", "home"}, wantErr: []string{run + " holding source data, home", run + "-data (data)"}},
		{name: "run, missing volume", id: run, sources: []string{"nope"}, wantErr: []string{run + " holding source nope"}},
		{name: "unknown", id: "20300303T020000Z", sources: []string{"data"}, wantErr: []string{"no such complete backup: 20300303T020000Z holding source data"}},
		// A prefix of an ID is not a run: 2030030 is no run of 20300301T...
		{name: "ID prefix without separator", id: "2030030", sources: []string{"data"}, wantErr: []string{"2030030 holding source data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := selectBackup(complete, tc.id, tc.sources)
			if tc.wantErr != nil {
				if !errors.Is(err, ErrBackupNotFound) {
					t.Fatalf("selectBackup = %v, %v; want ErrBackupNotFound", m, err)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("selectBackup: %v", err)
			}
			if m.BackupID != tc.want {
				t.Errorf("selected %s, want %s", m.BackupID, tc.want)
			}
		})
	}
}
