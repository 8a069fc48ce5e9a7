package backup

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrintListings(t *testing.T) {
	const run = "20300301T020000Z"
	backup := func(id string, sources ...string) *Manifest {
		m := &Manifest{BackupID: id, Created: epoch, ArchiveSize: 1234}
		for _, s := range sources {
			m.Sources = append(m.Sources, SourceStats{Name: s, Files: 2, Bytes: 10})
		}
		return m
	}
	listings := []Listing{
		{
			Location:   Location{Region: "eu-west-1", Bucket: "b1"},
			Backups:    []*Manifest{backup(run+"-data", "data"), backup(run+"-home", "home")},
			Incomplete: []IncompleteBackup{{BackupID: run + "-tmp"}},
		},
		{Location: Location{Region: "eu-central-1", Bucket: "b2"}, Err: errors.New("access denied")},
	}
	// Trailing blanks of tabwriter's empty cells are trimmed.
	tests := []struct {
		name    string
		sources []string
		want    string
	}{
		{
			name: "all",
			want: `
LOCATION         BACKUP                      CREATED                  ARCHIVE BYTES  SOURCES
eu-west-1=b1     20300301T020000Z-data       2030-03-01T02:00:00Z     1234           data (2 files, 10 bytes)
eu-west-1=b1     20300301T020000Z-home       2030-03-01T02:00:00Z     1234           home (2 files, 10 bytes)
eu-west-1=b1     20300301T020000Z-tmp        incomplete: no manifest
eu-central-1=b2  unavailable: access denied
`,
		},
		{
			name:    "one volume",
			sources: []string{"home"},
			want: `
LOCATION         BACKUP                      CREATED                  ARCHIVE BYTES  SOURCES
eu-west-1=b1     20300301T020000Z-home       2030-03-01T02:00:00Z     1234           home (2 files, 10 bytes)
eu-west-1=b1     20300301T020000Z-tmp        incomplete: no manifest
eu-central-1=b2  unavailable: access denied
`,
		},
		{
			name:    "no backup of the volume",
			sources: []string{"nope"},
			want: `
LOCATION         BACKUP                           CREATED                  ARCHIVE BYTES  SOURCES
eu-west-1=b1     no complete backup holding nope
eu-west-1=b1     20300301T020000Z-tmp             incomplete: no manifest
eu-central-1=b2  unavailable: access denied
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := printListings(&out, listings, tc.sources)
			if err == nil {
				t.Error("printListings succeeded with a location unavailable")
			}
			var got strings.Builder
			for line := range strings.Lines(out.String()) {
				got.WriteString(strings.TrimRight(line, " \n") + "\n")
			}
			if diff := cmp.Diff(strings.TrimPrefix(tc.want, "\n"), got.String()); diff != "" {
				t.Errorf("listing (-want +got):\n%s", diff)
			}
		})
	}
}
