package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"
)

// twoSources creates the data and home volumes of a workspace; data holds
// bigRandom bytes of incompressible data.
func twoSources(t *testing.T, bigRandom int) []Source {
	t.Helper()
	base := t.TempDir()
	data, home := filepath.Join(base, "data"), filepath.Join(base, "home")
	makeTree(t, data, bigRandom)
	writeFile(t, filepath.Join(home, "alice", ".profile"), []byte("export EDITOR=vi\n"), 0o600)
	writeFile(t, filepath.Join(home, "alice", "notes", "todo.txt"), []byte("back up everything\n"), 0o644)
	return []Source{{Name: "data", Path: data}, {Name: "home", Path: home}}
}

// restore restores a backup from the given locations into a fresh
// directory.
func (e *env) restore(t *testing.T, backupID string, locations ...Location) (string, *RestoreResult, error) {
	t.Helper()
	target := filepath.Join(t.TempDir(), "restore")
	res, err := e.agent.Restore(context.Background(), RestoreOptions{
		Workspace: testWorkspace, BackupID: backupID, Locations: locations, Target: target,
	})
	return target, res, err
}

func checkRestored(t *testing.T, target string, sources []Source) {
	t.Helper()
	for _, s := range sources {
		compareTrees(t, s.Path, filepath.Join(target, s.Name))
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(sources) {
		t.Errorf("target holds %d entries, want one per source (%d)", len(entries), len(sources))
	}
}

func TestBackupAndRestoreTwoLocations(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 20<<20)
	sum := e.mustBackup(t, sources...)

	id := sum.BackupID
	if id != epoch.Format(BackupIDLayout) {
		t.Errorf("backup ID = %s, want the start time %s", id, epoch.Format(BackupIDLayout))
	}
	if sum.Status != StatusSucceeded || len(sum.Locations) != 2 {
		t.Fatalf("summary = %+v", sum)
	}
	if n := e.calls("s3", "UploadPart"); n < 8 {
		t.Errorf("%d UploadPart calls, want multipart uploads of ~20 MiB in 5 MiB parts to both locations", n)
	}
	bigFile, err := os.ReadFile(filepath.Join(sources[0].Path, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var archives [][]byte
	for i, l := range e.locations {
		ls := sum.Locations[i]
		if ls.Backups != 1 || ls.Newest != id || ls.Oldest != id || ls.ArchiveBytes < 20<<20 || ls.Error != "" {
			t.Errorf("location %s summary = %+v", l, ls)
		}
		if got, want := e.keys(t, l), []string{objectKey(testWorkspace, id, archiveName), objectKey(testWorkspace, id, manifestName)}; !slices.Equal(got, want) {
			t.Errorf("location %s holds %q, want %q", l, got, want)
		}
		for _, name := range []string{archiveName, manifestName} {
			head, err := e.s3(l.Region).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(objectKey(testWorkspace, id, name))})
			if err != nil {
				t.Fatal(err)
			}
			if head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != e.keyARNs[l.Region] {
				t.Errorf("%s in %s: SSE %q with key %q, want aws:kms with %s", name, l, head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), e.keyARNs[l.Region])
			}
		}

		archive := e.getObject(t, l, objectKey(testWorkspace, id, archiveName))
		archives = append(archives, archive)
		if !bytes.HasPrefix(archive, magic[:]) {
			t.Errorf("archive in %s does not start with the magic", l)
		}
		for _, plain := range [][]byte{bigFile[:64], bigFile[10<<20 : 10<<20+64], []byte("workspace data\nworkspace data\n")} {
			if bytes.Contains(archive, plain) {
				t.Errorf("archive in %s contains plaintext", l)
			}
		}

		var m Manifest
		if err := json.Unmarshal(e.getObject(t, l, objectKey(testWorkspace, id, manifestName)), &m); err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(archive)
		if m.Workspace != testWorkspace || m.BackupID != id || !m.Created.Equal(epoch) || m.Region != l.Region ||
			m.ArchiveSize != int64(len(archive)) || m.ArchiveSHA256 != hex.EncodeToString(digest[:]) ||
			m.KeyARN != e.keyARNs[l.Region] || m.FormatVersion != FormatVersion {
			t.Errorf("manifest in %s = %+v", l, m)
		}
		wantSources := []SourceStats{
			{Name: "data", Kind: SourceDirectory, Files: 6, Dirs: 6, Symlinks: 2, Bytes: 15000 + 18 + 4 + 4097 + 20<<20},
			{Name: "home", Kind: SourceDirectory, Files: 2, Dirs: 3, Bytes: 17 + 19},
		}
		if !slices.Equal(m.Sources, wantSources) {
			t.Errorf("manifest sources = %+v, want %+v", m.Sources, wantSources)
		}
	}
	if bytes.Equal(archives[0], archives[1]) {
		t.Error("both locations hold the same archive bytes; each must be sealed under its own data key")
	}

	for _, l := range e.locations {
		target, res, err := e.restore(t, Latest, l)
		if err != nil {
			t.Fatalf("restore from %s: %v", l, err)
		}
		if res.BackupID != id || res.Location != l {
			t.Errorf("restored %s from %s, want %s from %s", res.BackupID, res.Location, id, l)
		}
		checkRestored(t, target, sources)
	}
}

func TestRestoreFallsBackToTheNextLocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, e *env, id string)
	}{
		{"first key disabled", func(t *testing.T, e *env, _ string) {
			if _, err := e.kms(primary).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(e.keyIDs[primary])}); err != nil {
				t.Fatal(err)
			}
		}},
		{"first archive corrupted", func(t *testing.T, e *env, id string) {
			l := e.locations[0]
			key := objectKey(testWorkspace, id, archiveName)
			archive := e.getObject(t, l, key)
			archive[len(archive)/2] ^= 0x80
			e.putObject(t, l, key, archive)
		}},
		{"first archive swapped for another backup's", func(t *testing.T, e *env, id string) {
			// Same size and key, but sealed for another backup ID:
			// the encryption context gives it away.
			l := e.locations[0]
			var other bytes.Buffer
			w, err := NewWriter(context.Background(), e.kms(primary), &other, testAlias, encryptionContext(testWorkspace, "other"), 0)
			if err != nil {
				t.Fatal(err)
			}
			archive := e.getObject(t, l, objectKey(testWorkspace, id, archiveName))
			_, _ = w.Write(make([]byte, len(archive)-other.Len()))
			_ = w.Close()
			e.putObject(t, l, objectKey(testWorkspace, id, archiveName), other.Bytes()[:len(archive)])
		}},
		{"first archive replaced by a valid one of the same backup", func(t *testing.T, e *env, id string) {
			// Same key, context and size, authentic chunk by chunk: only
			// the manifest's SHA-256 tells it apart.
			l := e.locations[0]
			key := objectKey(testWorkspace, id, archiveName)
			e.putObject(t, l, key, forgeArchive(t, e, id, len(e.getObject(t, l, key))))
		}},
		{"first archive deleted", func(t *testing.T, e *env, id string) {
			l := e.locations[0]
			if _, err := e.s3(l.Region).DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(objectKey(testWorkspace, id, archiveName))}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			sources := twoSources(t, 1<<20)
			id := e.mustBackup(t, sources...).BackupID
			tc.damage(t, e, id)

			if _, _, err := e.restore(t, id, e.locations[0]); err == nil {
				t.Fatal("restore from the damaged location alone succeeded")
			}
			target, res, err := e.restore(t, id, e.locations...)
			if err != nil {
				t.Fatalf("restore with fallback: %v", err)
			}
			if res.Location != e.locations[1] {
				t.Errorf("restored from %s, want the fallback %s", res.Location, e.locations[1])
			}
			checkRestored(t, target, sources)
		})
	}
}

// forgeArchive seals, under the primary key and the backup's own
// encryption context, an archive of exactly size bytes whose tar stream
// holds a single evil.txt. A zstd skippable frame pads the plaintext to
// the length that gives the wanted archive size.
func forgeArchive(t *testing.T, e *env, backupID string, size int) []byte {
	t.Helper()
	var plain bytes.Buffer
	zw, _ := zstd.NewWriter(&plain)
	tw := tar.NewWriter(zw)
	_ = tw.WriteHeader(&tar.Header{Name: "evil.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	_, _ = tw.Write([]byte("evil"))
	_ = tw.Close()
	_ = zw.Close()

	var archive bytes.Buffer
	w, err := NewWriter(context.Background(), e.kms(primary), &archive, testAlias, encryptionContext(testWorkspace, backupID), 0)
	if err != nil {
		t.Fatal(err)
	}
	header, _ := w.Header().marshal()
	body := size - len(header)
	chunks := (body + DefaultChunkSize + tagSize - 1) / (DefaultChunkSize + tagSize)
	padding := body - chunks*tagSize - plain.Len() - 8
	if padding < 0 {
		t.Fatalf("archive of %d bytes too small to forge", size)
	}
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184D2A50)
	skippable = binary.LittleEndian.AppendUint32(skippable, uint32(padding))
	_, _ = w.Write(plain.Bytes())
	_, _ = w.Write(skippable)
	_, _ = w.Write(make([]byte, padding))
	_ = w.Close()
	if archive.Len() != size {
		t.Fatalf("forged archive has %d bytes, want %d", archive.Len(), size)
	}
	return archive.Bytes()
}

func TestRestoreFailsWhenNoLocationCanDeliver(t *testing.T) {
	e := newEnv(t)
	e.mustBackup(t, twoSources(t, 0)...)
	target, _, err := e.restore(t, "19990101T000000Z", e.locations...)
	if !errors.Is(err, ErrBackupNotFound) {
		t.Fatalf("error = %v, want ErrBackupNotFound", err)
	}
	for _, l := range e.locations {
		if !strings.Contains(err.Error(), l.String()) {
			t.Errorf("error %q does not name location %s", err, l)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("failed restore left %d entries in the target", len(entries))
	}
}

func TestRestoreRefusesNonEmptySourceDirectory(t *testing.T) {
	e := newEnv(t)
	e.mustBackup(t, twoSources(t, 0)...)
	target := t.TempDir()
	writeFile(t, filepath.Join(target, "home", "precious"), []byte("x"), 0o600)
	for _, emu := range e.emus {
		emu.ResetCalls()
	}
	_, err := e.agent.Restore(context.Background(), RestoreOptions{Workspace: testWorkspace, Locations: e.locations, Target: target})
	if err == nil || !strings.Contains(err.Error(), "home is not empty") {
		t.Fatalf("error = %v, want a refusal of the non-empty home", err)
	}
	if n := e.calls("s3", "GetObject"); n != 1 {
		t.Errorf("%d GetObject calls, want only the first location's manifest read", n)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 1 {
		t.Errorf("target holds %d entries, want only home", len(entries))
	}
}

// TestRestoreIntoMountPoints restores the way the operator does: into a
// target whose sources' directories are the mount points of fresh
// volumes, each with a lost+found, next to unrelated entries. A failed
// attempt empties the mount points again before the next location.
func TestRestoreIntoMountPoints(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 1<<20)
	id := e.mustBackup(t, sources...).BackupID
	l := e.locations[0]
	archive := e.getObject(t, l, objectKey(testWorkspace, id, archiveName))
	archive[len(archive)-100] ^= 1 // late in the stream: most files are written by then
	e.putObject(t, l, objectKey(testWorkspace, id, archiveName), archive)

	target := t.TempDir()
	for _, s := range sources {
		if err := os.MkdirAll(filepath.Join(target, s.Name, "lost+found"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(target, "unrelated"), []byte("left alone"), 0o644)

	if _, err := e.agent.Restore(context.Background(), RestoreOptions{Workspace: testWorkspace, Locations: e.locations[:1], Target: target}); err == nil {
		t.Fatal("restore of the damaged archive succeeded")
	}
	for _, s := range sources {
		entries, err := os.ReadDir(filepath.Join(target, s.Name))
		if err != nil || len(entries) != 1 || entries[0].Name() != "lost+found" {
			t.Errorf("%s after the failed restore: %v, %v; want only lost+found", s.Name, entries, err)
		}
	}

	res, err := e.agent.Restore(context.Background(), RestoreOptions{Workspace: testWorkspace, Locations: e.locations, Target: target})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Location != e.locations[1] {
		t.Errorf("restored from %s, want %s", res.Location, e.locations[1])
	}
	for _, s := range sources {
		// Out of the way for the comparison, keeping the restored time.
		dir := filepath.Join(target, s.Name)
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "lost+found")); err != nil {
			t.Errorf("lost+found of %s: %v", s.Name, err)
		}
		if err := os.Chtimes(dir, time.Time{}, info.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(target, "unrelated")); err != nil || string(got) != "left alone" {
		t.Errorf("unrelated entry: %q, %v", got, err)
	}
	if err := os.Remove(filepath.Join(target, "unrelated")); err != nil {
		t.Fatal(err)
	}
	checkRestored(t, target, sources)
}

func TestBackupIncludesBucket(t *testing.T) {
	e := newEnv(t)
	const files = "wso-acme-files"
	e.createBucket(t, primary, files)
	l := Location{Region: primary, Bucket: files}
	objects := map[string][]byte{
		"docs/report.pdf":     randomBytes(t, 300<<10),
		"docs/sub/notes.txt":  []byte("notes"),
		"docs/empty":          nil,
		"docs/folder/":        nil,
		"docs/../escape":      []byte("never"),
		"elsewhere/other.txt": []byte("not under the prefix"),
	}
	for k, v := range objects {
		e.putObject(t, l, k, v)
	}
	sources := twoSources(t, 0)[:1]
	sum, err := e.agent.Backup(context.Background(), Options{
		Workspace: testWorkspace, Sources: sources, Locations: e.locations,
		IncludeBucket: files, IncludePrefix: "docs/",
	})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	target, _, err := e.restore(t, sum.BackupID, e.locations[1])
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	compareTrees(t, sources[0].Path, filepath.Join(target, "data"))
	if entries, _ := os.ReadDir(target); len(entries) != 2 {
		t.Errorf("target holds %d entries, want data and %s", len(entries), BucketSourceName)
	}
	for _, k := range []string{"report.pdf", "sub/notes.txt", "empty"} {
		got, err := os.ReadFile(filepath.Join(target, BucketSourceName, k))
		if err != nil || !bytes.Equal(got, objects["docs/"+k]) {
			t.Errorf("%s: restored %d bytes (%v), want the object's %d", k, len(got), err, len(objects["docs/"+k]))
		}
	}
	for _, k := range []string{"other.txt", "escape", "folder"} {
		if _, err := os.Lstat(filepath.Join(target, BucketSourceName, k)); err == nil {
			t.Errorf("%s was restored, want it left out", k)
		}
	}
}

func TestBackupValidatesOptions(t *testing.T) {
	e := newEnv(t)
	src := twoSources(t, 0)
	dup := []Source{src[0], {Name: "data", Path: src[1].Path}}
	for name, opts := range map[string]Options{
		"retention over a week": {Workspace: testWorkspace, Sources: src, Locations: e.locations, RetentionDays: 8},
		"negative retention":    {Workspace: testWorkspace, Sources: src, Locations: e.locations, RetentionDays: -1},
		"bad workspace":         {Workspace: "Acme!", Sources: src, Locations: e.locations},
		"bad backup ID":         {Workspace: testWorkspace, BackupID: "../x", Sources: src, Locations: e.locations},
		"no sources":            {Workspace: testWorkspace, Locations: e.locations},
		"no locations":          {Workspace: testWorkspace, Sources: src},
		"duplicate source name": {Workspace: testWorkspace, Sources: dup, Locations: e.locations},
		"files name taken":      {Workspace: testWorkspace, Sources: []Source{{Name: BucketSourceName, Path: src[0].Path}}, Locations: e.locations, IncludeBucket: "b"},
		"location without key":  {Workspace: testWorkspace, Sources: src, Locations: []Location{{Region: primary, Bucket: "b"}}},
		"location twice":        {Workspace: testWorkspace, Sources: src, Locations: []Location{e.locations[0], e.locations[0]}},
	} {
		sum, err := e.agent.Backup(context.Background(), opts)
		if err == nil {
			t.Errorf("%s: backup succeeded", name)
			continue
		}
		if sum.Status != StatusFailed || sum.Error == "" {
			t.Errorf("%s: summary = %+v", name, sum)
		}
	}
	if n := e.calls("s3", "PutObject") + e.calls("kms", "GenerateDataKey"); n != 0 {
		t.Errorf("invalid options still caused %d writes", n)
	}
}

func TestBackupRefusesExistingBackupID(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	e.mustBackup(t, sources...)
	_, err := e.backup(t, sources...)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second backup with the same ID: %v, want a refusal", err)
	}
}

// TestBackupWithMissingArchiveIsIncomplete: a manifest whose archive is
// gone does not make a backup; the previous one is the latest again.
func TestBackupWithMissingArchiveIsIncomplete(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	e.mustBackup(t, sources...)
	e.clock.SetTime(epoch.Add(day))
	second := e.mustBackup(t, sources...).BackupID
	l := e.locations[0]
	if _, err := e.s3(l.Region).DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(objectKey(testWorkspace, second, archiveName))}); err != nil {
		t.Fatal(err)
	}
	listings, err := e.agent.List(context.Background(), testWorkspace, e.locations)
	if err != nil {
		t.Fatal(err)
	}
	if got := listings[0]; len(got.Backups) != 1 || got.Backups[0].BackupID != idAt(0) ||
		len(got.Incomplete) != 1 || got.Incomplete[0].BackupID != second || !strings.HasPrefix(got.Incomplete[0].Problem, "archive is missing") {
		t.Errorf("listing of %s = %d complete, incomplete %+v; want only the first backup complete, the second's archive missing", l, len(got.Backups), got.Incomplete)
	}
	if got := listings[1]; len(got.Backups) != 2 || len(got.Incomplete) != 0 {
		t.Errorf("listing of %s = %d complete, %d incomplete, want both backups", e.locations[1], len(got.Backups), len(got.Incomplete))
	}
	_, res, err := e.restore(t, Latest, l)
	if err != nil || res.BackupID != idAt(0) {
		t.Errorf("latest restore from %s = %+v, %v; want the first backup", l, res, err)
	}
}

// TestBackupCommitsOnlyOnce: a manifest that appears while the backup
// runs (another run committing the same ID) is neither overwritten nor
// withdrawn, and the backup fails without a manifest of its own anywhere.
func TestBackupCommitsOnlyOnce(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	id := epoch.Format(BackupIDLayout)
	rival := []byte(`{"rival": true}`)
	var (
		once     sync.Once
		rivalErr error
	)
	e.emus[secondary].setHook(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, archiveName) {
			once.Do(func() {
				l := e.locations[1]
				_, rivalErr = e.s3(l.Region).PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(l.Bucket), Key: aws.String(objectKey(testWorkspace, id, manifestName)), Body: bytes.NewReader(rival),
				})
			})
		}
		return w
	})
	_, err := e.backup(t, sources...)
	if rivalErr != nil {
		t.Fatalf("rival commit: %v", rivalErr)
	}
	if err == nil || !strings.Contains(err.Error(), e.locations[1].String()) {
		t.Fatalf("error = %v, want the commit in %s refused", err, e.locations[1])
	}
	if got := e.getObject(t, e.locations[1], objectKey(testWorkspace, id, manifestName)); !bytes.Equal(got, rival) {
		t.Errorf("the other run's manifest was replaced by %q", got)
	}
	if slices.Contains(e.keys(t, e.locations[0]), objectKey(testWorkspace, id, manifestName)) {
		t.Errorf("%s keeps a manifest of the failed backup", e.locations[0])
	}
}

func TestRestoreSelectedSources(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	e.mustBackup(t, sources...)
	target := t.TempDir()
	opts := RestoreOptions{Workspace: testWorkspace, Locations: e.locations, Target: target, Sources: []string{"home"}}
	if _, err := e.agent.Restore(context.Background(), opts); err != nil {
		t.Fatalf("restore: %v", err)
	}
	checkRestored(t, target, sources[1:])

	opts.Target, opts.Sources = t.TempDir(), []string{"nope"}
	if _, err := e.agent.Restore(context.Background(), opts); !errors.Is(err, ErrBackupNotFound) || !strings.Contains(err.Error(), "latest holding source nope") {
		t.Errorf("restore of an unknown source: %v", err)
	}
}

// TestRestorePerVolumeBackups restores the way the data mover backs up:
// each volume of a run in its own backup, R-<claim>, holding one source,
// the newest of which holds some other volume.
func TestRestorePerVolumeBackups(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 0)
	const run = "20300301T020000Z"
	for _, s := range sources {
		e.clock.Step(time.Minute)
		opts := Options{Workspace: testWorkspace, BackupID: run + "-" + s.Name, Sources: []Source{s}, Locations: e.locations}
		if _, err := e.agent.Backup(context.Background(), opts); err != nil {
			t.Fatalf("Backup %s: %v", s.Name, err)
		}
	}
	for _, tc := range []struct{ id, source, want string }{
		{id: run, source: "data", want: run + "-data"},
		{id: run, source: "home", want: run + "-home"},
		{id: Latest, source: "data", want: run + "-data"},
	} {
		target := t.TempDir()
		res, err := e.agent.Restore(context.Background(), RestoreOptions{
			Workspace: testWorkspace, BackupID: tc.id, Sources: []string{tc.source}, Locations: e.locations, Target: target,
		})
		if err != nil {
			t.Fatalf("restore %s of %s: %v", tc.source, tc.id, err)
		}
		if res.BackupID != tc.want {
			t.Errorf("restore %s of %s read %s, want %s", tc.source, tc.id, res.BackupID, tc.want)
		}
		checkRestored(t, target, sources[slices.IndexFunc(sources, func(s Source) bool { return s.Name == tc.source }):][:1])
	}
}
