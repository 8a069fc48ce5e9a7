package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

const (
	testWorkspace = "acme"
	testAlias     = "alias/workspace-operator/acme"
	primary       = "eu-west-1"
	secondary     = "eu-central-1"
)

// epoch is where the fake clock of emulator tests starts.
var epoch = time.Date(2030, 3, 1, 2, 0, 0, 0, time.UTC)

// env is one emulator per region, each with a workspace key and a
// versioned backup bucket, and an agent wired to them with real SDK
// clients. Separate emulators make a fault in one region an outage of one
// location only, as with real regional endpoints.
type env struct {
	clock     *clocktesting.FakeClock
	emus      map[string]*emulator
	agent     *Agent
	locations []Location
	keyARNs   map[string]string
	keyIDs    map[string]string
}

// emulator serves an awsemu handler, passing every request through a
// test's hook first, which may also replace the response writer.
type emulator struct {
	*awsemu.Handler
	url  string
	mu   sync.Mutex
	hook func(http.ResponseWriter, *http.Request) http.ResponseWriter
}

func (m *emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		w = hook(w, r)
	}
	m.Handler.ServeHTTP(w, r)
}

func (m *emulator) setHook(hook func(http.ResponseWriter, *http.Request) http.ResponseWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = hook
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, false)
}

// newSharedEnv is an env with one emulator serving both regions, for
// clients configured through the SDK's endpoint settings, which apply to
// every region.
func newSharedEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, true)
}

func newEnvWith(t testing.TB, shared bool) *env {
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	e := &env{clock: clk, emus: map[string]*emulator{}, keyARNs: map[string]string{}, keyIDs: map[string]string{}}
	var emu *emulator
	for _, region := range []string{primary, secondary} {
		if emu == nil || !shared {
			h, err := awsemu.NewHandler(awsemu.Options{Clock: clk})
			if err != nil {
				t.Fatalf("emulator: %v", err)
			}
			emu = &emulator{Handler: h}
			srv := httptest.NewServer(emu)
			t.Cleanup(srv.Close)
			emu.url = srv.URL
		}
		e.emus[region] = emu

		id, arn := e.createKey(t, region, testAlias)
		e.keyIDs[region], e.keyARNs[region] = id, arn
		bucket := "wso-acme-backup-" + region
		e.createBucket(t, region, bucket)
		e.locations = append(e.locations, Location{Region: region, Bucket: bucket, Key: testAlias})
	}
	e.agent = &Agent{
		Clients: func(_ context.Context, region string) (KMS, S3, error) {
			return e.kms(region), e.s3(region), nil
		},
		Log: testLogger(t),
		Now: clk.Now,
		// The smallest part S3 accepts, so that moderate test data
		// already takes the multipart path.
		PartSize: 5 << 20,
	}
	return e
}

func (e *env) config(region string) aws.Config {
	return awsemu.NewAWSConfig(e.emus[region].url, region)
}

func (e *env) kms(region string) *kms.Client { return kms.NewFromConfig(e.config(region)) }

func (e *env) s3(region string) *s3.Client {
	return s3.NewFromConfig(e.config(region), awsemu.UsePathStyle)
}

// calls counts the calls of an operation in all regions.
func (e *env) calls(service, operation string) int {
	n := 0
	for _, emu := range e.emus {
		n += emu.Calls().Count(service, operation)
	}
	return n
}

// createKey creates a KMS key with an alias and returns its ID and ARN.
func (e *env) createKey(t testing.TB, region, alias string) (string, string) {
	t.Helper()
	ctx := context.Background()
	out, err := e.kms(region).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if _, err := e.kms(region).CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	return aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
}

func (e *env) createBucket(t testing.TB, region, bucket string) {
	t.Helper()
	ctx := context.Background()
	client := e.s3(region)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                    aws.String(bucket),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)},
	}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatalf("PutBucketVersioning: %v", err)
	}
}

// backup runs a backup of sources to both locations.
func (e *env) backup(t *testing.T, sources ...Source) (*Summary, error) {
	t.Helper()
	return e.agent.Backup(context.Background(), Options{Workspace: testWorkspace, Sources: sources, Locations: e.locations})
}

// mustBackup runs a backup that must succeed.
func (e *env) mustBackup(t *testing.T, sources ...Source) *Summary {
	t.Helper()
	sum, err := e.backup(t, sources...)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return sum
}

// keys lists every object version's key in a location, sorted, with
// " (delete marker)" appended to delete markers.
func (e *env) keys(t *testing.T, l Location) []string {
	t.Helper()
	out, err := e.s3(l.Region).ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(l.Bucket)})
	if err != nil {
		t.Fatalf("ListObjectVersions: %v", err)
	}
	var keys []string
	for _, v := range out.Versions {
		keys = append(keys, aws.ToString(v.Key))
	}
	for _, m := range out.DeleteMarkers {
		keys = append(keys, aws.ToString(m.Key)+" (delete marker)")
	}
	return keys
}

// backupIDs lists the backup IDs with any object in a location.
func (e *env) backupIDs(t *testing.T, l Location) []string {
	t.Helper()
	seen := map[string]bool{}
	var ids []string
	for _, k := range e.keys(t, l) {
		id, _, _ := strings.Cut(strings.TrimPrefix(k, workspacePrefix(testWorkspace)), "/")
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func (e *env) getObject(t *testing.T, l Location, key string) []byte {
	t.Helper()
	out, err := e.s3(l.Region).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(l.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func (e *env) putObject(t *testing.T, l Location, key string, body []byte) {
	t.Helper()
	if _, err := e.s3(l.Region).PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(l.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(e.keyARNs[l.Region]),
	}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

// testLogger sends the agent's logs to the test log, and stops when the
// test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.t = nil
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// makeTree fills dir with the kinds of entries a volume holds: nested
// directories, text, an empty file, unusual modes, relative symbolic
// links, and bigRandom bytes of incompressible data.
func makeTree(t *testing.T, dir string, bigRandom int) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "README.md"), []byte(strings.Repeat("workspace data\n", 1000)), 0o644)
	writeFile(t, filepath.Join(dir, "empty"), nil, 0o600)
	writeFile(t, filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeFile(t, filepath.Join(dir, "a", "b", "c", "deep.txt"), []byte("deep"), 0o640)
	writeFile(t, filepath.Join(dir, "a", "b", "small.bin"), randomBytes(t, 4097), 0o644)
	if bigRandom > 0 {
		writeFile(t, filepath.Join(dir, "big.bin"), randomBytes(t, bigRandom), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b/c/deep.txt", filepath.Join(dir, "link-to-deep")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README.md", filepath.Join(dir, "bin", "readme")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 5, 17, 8, 30, 0, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "a", "b", "c", "deep.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "a", "b"), 0o711); err != nil {
		t.Fatal(err)
	}
}

// compareTrees fails the test unless got holds the same entries as want,
// with the same types, permissions, contents, link targets and
// modification times.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	count := 0
	err := filepath.WalkDir(want, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: missing from the restore: %v", rel, err)
			return nil
		}
		count++
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(filepath.Join(got, rel))
			if wl != gl {
				t.Errorf("%s: link to %q, want %q", rel, gl, wl)
			}
		case wi.Mode().IsRegular():
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(gb), len(wb))
			}
			fallthrough
		default:
			if !wi.ModTime().Equal(gi.ModTime()) {
				t.Errorf("%s: modified %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", want, err)
	}
	gotCount := 0
	_ = filepath.WalkDir(got, func(string, fs.DirEntry, error) error { gotCount++; return nil })
	if gotCount != count {
		t.Errorf("restore holds %d entries, source %d", gotCount, count)
	}
}
