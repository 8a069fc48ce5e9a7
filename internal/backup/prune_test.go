package backup

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

const day = 24 * time.Hour

// idAt is the default backup ID of a backup started n days after epoch.
func idAt(n int) string { return epoch.Add(time.Duration(n) * day).Format(BackupIDLayout) }

func idsAt(days ...int) []string {
	ids := make([]string, len(days))
	for i, d := range days {
		ids[i] = idAt(d)
	}
	return ids
}

func TestRetentionKeepsSevenDays(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	var sum *Summary
	for d := range 10 {
		e.clock.SetTime(epoch.Add(time.Duration(d) * day))
		sum = e.mustBackup(t, sources...)
	}
	want := idsAt(3, 4, 5, 6, 7, 8, 9)
	for i, l := range e.locations {
		if got := e.backupIDs(t, l); !slices.Equal(got, want) {
			t.Errorf("location %s keeps %q, want the last 7 days %q", l, got, want)
		}
		if n := len(e.keys(t, l)); n != 2*len(want) {
			t.Errorf("location %s holds %d object versions, want exactly archive and manifest of each backup (%d)", l, n, 2*len(want))
		}
		ls := sum.Locations[i]
		if ls.Backups != 7 || ls.Oldest != idAt(3) || ls.Newest != idAt(9) || ls.Pruned != 1 {
			t.Errorf("location %s summary = %+v", l, ls)
		}
	}
}

func TestRetentionDaysOption(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	for d := range 4 {
		e.clock.SetTime(epoch.Add(time.Duration(d) * day))
		if _, err := e.agent.Backup(context.Background(), Options{Workspace: testWorkspace, Sources: sources, Locations: e.locations, RetentionDays: 2}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range e.locations {
		if got, want := e.backupIDs(t, l), idsAt(2, 3); !slices.Equal(got, want) {
			t.Errorf("location %s keeps %q, want %q", l, got, want)
		}
	}
}

// TestRetentionNeverDeletesTheNewest covers the rule on its own: only a
// location's newest complete backup survives however old it is, while an
// incomplete backup newer than it does not protect it.
func TestRetentionNeverDeletesTheNewest(t *testing.T) {
	now := epoch.Add(30 * day)
	complete := func(id string, age time.Duration) *backupEntry {
		return &backupEntry{ID: id, Manifest: &Manifest{BackupID: id, Created: now.Add(-age)}, LastModified: now.Add(-age)}
	}
	entries := []*backupEntry{
		complete("a", 20*day),
		complete("b", 10*day),
		{ID: "c", LastModified: now.Add(-2 * day)}, // incomplete
		{ID: "d", LastModified: now.Add(-time.Hour)},
	}
	var got []string
	for _, e := range expired(entries, now, 7*day, "") {
		got = append(got, e.ID)
	}
	if want := []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("expired = %q, want %q: b is the newest complete backup, d may still be being written", got, want)
	}
}

// TestRetentionKeepsTheNewestOfEachSource: with one backup per volume (the
// data mover), the newest backup of a volume whose later backups failed is
// kept, not only the newest backup of any volume; an older backup of a source
// with a newer one goes as usual, and an old backup of every volume (before
// the data mover) goes once each volume has a newer one.
func TestRetentionKeepsTheNewestOfEachSource(t *testing.T) {
	now := epoch.Add(30 * day)
	complete := func(id string, age time.Duration, sources ...string) *backupEntry {
		m := &Manifest{BackupID: id, Created: now.Add(-age)}
		for _, s := range sources {
			m.Sources = append(m.Sources, SourceStats{Name: s})
		}
		return &backupEntry{ID: id, Manifest: m, LastModified: now.Add(-age)}
	}
	entries := []*backupEntry{
		complete("all-volumes", 25*day, "db", "files"),
		complete("db-old", 20*day, "db"),
		complete("db-new", 10*day, "db"),
		complete("files-1", 9*day, "files"),
		complete("files-2", 8*day, "files"),
	}
	var got []string
	for _, e := range expired(entries, now, 7*day, "") {
		got = append(got, e.ID)
	}
	if want := []string{"all-volumes", "db-old", "files-1"}; !slices.Equal(got, want) {
		t.Errorf("expired = %q, want %q: db-new is db's newest backup, files-2 the newest of files and overall", got, want)
	}
}

// TestRetentionAfterAWeekOfFailures: while backups fail, nothing is
// pruned, so the last good backup outlives its retention; the first
// successful backup afterwards retires it.
func TestRetentionAfterAWeekOfFailures(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	e.mustBackup(t, sources...)
	e.emus[secondary].Inject(awsemu.Fault{Service: "kms", Operation: "GenerateDataKey", Kind: awsemu.AccessDenied})
	for d := 1; d <= 9; d++ {
		e.clock.SetTime(epoch.Add(time.Duration(d) * day))
		if _, err := e.backup(t, sources...); err == nil {
			t.Fatalf("day %d: backup succeeded during the KMS outage", d)
		}
	}
	for _, l := range e.locations {
		if got, want := e.backupIDs(t, l), idsAt(0); !slices.Equal(got, want) {
			t.Errorf("location %s holds %q after the failures, want only the last good backup %q", l, got, want)
		}
	}
	e.emus[secondary].ClearFaults()
	e.clock.SetTime(epoch.Add(10 * day))
	e.mustBackup(t, sources...)
	for _, l := range e.locations {
		if got, want := e.backupIDs(t, l), idsAt(10); !slices.Equal(got, want) {
			t.Errorf("location %s holds %q, want %q", l, got, want)
		}
	}
}

func TestRetentionCleansUpIncompleteBackups(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	l := e.locations[0]
	orphan := "20300228T020000Z"
	// An interrupted backup: an archive written twice and deleted, and a
	// manifest nobody can read.
	e.putObject(t, l, objectKey(testWorkspace, orphan, archiveName), []byte("first attempt"))
	e.putObject(t, l, objectKey(testWorkspace, orphan, archiveName), []byte("second attempt"))
	if _, err := e.s3(l.Region).DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(objectKey(testWorkspace, orphan, archiveName))}); err != nil {
		t.Fatal(err)
	}
	damaged := "20300228T030000Z"
	e.putObject(t, l, objectKey(testWorkspace, damaged, archiveName), []byte("archive"))
	e.putObject(t, l, objectKey(testWorkspace, damaged, manifestName), []byte("{not json"))
	// Objects outside the backup layout are none of retention's business.
	e.putObject(t, l, workspacePrefix(testWorkspace)+"README", []byte("keep me"))
	e.putObject(t, l, workspacePrefix("acme2")+"x/"+archiveName, []byte("another workspace"))

	e.clock.SetTime(epoch.Add(23 * time.Hour))
	e.mustBackup(t, sources...)
	keys := e.keys(t, l)
	for _, k := range []string{objectKey(testWorkspace, orphan, archiveName) + " (delete marker)", objectKey(testWorkspace, damaged, manifestName)} {
		if !slices.Contains(keys, k) {
			t.Errorf("after 23 hours %s is gone, want incomplete backups kept for a day", k)
		}
	}

	e.clock.SetTime(epoch.Add(25 * time.Hour))
	e.mustBackup(t, sources...)
	first, second := epoch.Add(23*time.Hour).Format(BackupIDLayout), epoch.Add(25*time.Hour).Format(BackupIDLayout)
	got := e.keys(t, l)
	want := []string{
		objectKey(testWorkspace, first, archiveName),
		objectKey(testWorkspace, first, manifestName),
		objectKey(testWorkspace, second, archiveName),
		objectKey(testWorkspace, second, manifestName),
		workspacePrefix(testWorkspace) + "README",
		workspacePrefix("acme2") + "x/" + archiveName,
	}
	if !slices.Equal(got, want) {
		t.Errorf("after 25 hours location holds\n%q\nwant\n%q", got, want)
	}
}

func TestFailedBackupPrunesNothing(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	for d := range 7 {
		e.clock.SetTime(epoch.Add(time.Duration(d) * day))
		e.mustBackup(t, sources...)
	}
	orphan := objectKey(testWorkspace, "20300101T000000Z", archiveName)
	e.putObject(t, e.locations[0], orphan, []byte("incomplete, and old"))
	before := map[Location][]string{}
	for _, l := range e.locations {
		before[l] = e.keys(t, l)
	}

	// Ten days on, three backups are past retention and the orphan past
	// its day; but this run fails to commit in the second location.
	e.clock.SetTime(epoch.Add(9 * day))
	e.emus[secondary].Inject(awsemu.Fault{Service: "s3", Operation: "PutObject", Kind: awsemu.AccessDenied})
	sum, err := e.backup(t, sources...)
	if err == nil {
		t.Fatal("backup succeeded despite the failing location")
	}
	if sum.Status != StatusFailed {
		t.Errorf("status = %s, want %s", sum.Status, StatusFailed)
	}
	newArchive := objectKey(testWorkspace, idAt(9), archiveName)
	for _, l := range e.locations {
		got := slices.DeleteFunc(e.keys(t, l), func(k string) bool { return k == newArchive })
		if !slices.Equal(got, before[l]) {
			t.Errorf("location %s changed beyond the failed backup's archive:\n%q\nwant\n%q", l, got, before[l])
		}
	}
}
