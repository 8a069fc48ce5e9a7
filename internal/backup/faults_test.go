package backup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// transientFaults are two failures of every call a backup or restore
// makes: the SDK's retries must absorb all of them.
func transientFaults() []awsemu.Fault {
	var faults []awsemu.Fault
	for _, op := range []string{"ListObjectVersions", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "HeadObject", "PutObject", "GetObject", "DeleteObjects"} {
		faults = append(faults, awsemu.Fault{Service: "s3", Operation: op, Kind: awsemu.InternalError, Times: 1})
		faults = append(faults, awsemu.Fault{Service: "s3", Operation: op, Kind: awsemu.Throttle, Times: 1})
	}
	for _, op := range []string{"GenerateDataKey", "Decrypt"} {
		faults = append(faults, awsemu.Fault{Service: "kms", Operation: op, Kind: awsemu.Throttle, Times: 2})
	}
	return faults
}

// injectTransientFaults replaces the faults of every region with
// transientFaults.
func injectTransientFaults(e *env) {
	for _, emu := range e.emus {
		emu.ClearFaults()
		for _, f := range transientFaults() {
			emu.Inject(f)
		}
	}
}

func TestBackupSurvivesTransientErrors(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 12<<20)
	injectTransientFaults(e)
	// Two daily backups, so that retention also deletes under faults.
	e.mustBackup(t, sources...)
	e.clock.SetTime(epoch.Add(7 * day))
	injectTransientFaults(e)
	sum := e.mustBackup(t, sources...)
	if sum.Locations[0].Pruned != 1 || sum.Locations[1].Pruned != 1 {
		t.Errorf("summary = %+v, want the first backup pruned in both locations", sum)
	}
	injectTransientFaults(e)
	target, _, err := e.restore(t, Latest, e.locations[0])
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	checkRestored(t, target, sources)
	failed := 0
	for _, emu := range e.emus {
		for call, n := range emu.Calls() {
			if call.Outcome == "InternalError" || call.Outcome == "SlowDown" || call.Outcome == "ThrottlingException" {
				failed += n
			}
		}
	}
	if failed < 40 {
		t.Errorf("only %d injected failures happened; the faults did not hit", failed)
	}
}

// TestAWSClients runs a backup and a restore with the clients Main builds
// (default configuration chain, the agent's retryer), through a throttle
// and an internal error, with KMS and S3 at different endpoints given the
// way the operator gives them to the agent's pods: AWS_ENDPOINT_URL_KMS and
// AWS_ENDPOINT_URL_S3. Each endpoint refuses the other service's requests.
func TestAWSClients(t *testing.T) {
	e := newSharedEnv(t)
	emu := e.emus[primary]
	t.Setenv("AWS_ACCESS_KEY_ID", awsemu.TestAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsemu.TestSecretAccessKey)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL_KMS", serviceEndpoint(t, emu.url, "kms"))
	t.Setenv("AWS_ENDPOINT_URL_S3", serviceEndpoint(t, emu.url, "s3"))
	e.agent.Clients = AWSClients(false)
	kmsClient, s3Client, err := e.agent.Clients(context.Background(), primary)
	if err != nil {
		t.Fatal(err)
	}
	if got := kmsClient.(*kms.Client).Options().Retryer.MaxAttempts(); got != maxAttempts {
		t.Errorf("KMS client makes %d attempts, want %d", got, maxAttempts)
	}
	if got := s3Client.(*s3.Client).Options().Retryer.MaxAttempts(); got != maxAttempts {
		t.Errorf("S3 client makes %d attempts, want %d", got, maxAttempts)
	}
	emu.Inject(awsemu.Fault{Service: "kms", Operation: "GenerateDataKey", Kind: awsemu.Throttle, Times: 1})
	emu.Inject(awsemu.Fault{Service: "s3", Operation: "PutObject", Kind: awsemu.InternalError, Times: 1})
	sources := twoSources(t, 0)
	e.mustBackup(t, sources...)
	target, _, err := e.restore(t, Latest, e.locations...)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	checkRestored(t, target, sources)
}

// serviceEndpoint serves a loopback endpoint that passes requests of one
// service ("kms" or "s3") to the emulator at target and refuses the
// other's, as a VPC endpoint of one service would.
func serviceEndpoint(t *testing.T, target, service string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := "s3"
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
			got = "kms"
		}
		if got != service {
			t.Errorf("the %s endpoint got a %s request: %s %s", service, got, r.Method, r.URL)
			http.Error(w, "wrong endpoint", http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBackupOutageInOneLocation: a location that fails at any stage fails
// the whole backup, names itself, leaves no manifest of the new backup
// anywhere, and leaves the earlier backups alone.
func TestBackupOutageInOneLocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []awsemu.Fault
	}{
		{"all of S3", []awsemu.Fault{{Service: "s3", Kind: awsemu.AccessDenied}}},
		{"KMS data keys", []awsemu.Fault{{Service: "kms", Operation: "GenerateDataKey", Kind: awsemu.AccessDenied}}},
		{"multipart upload", []awsemu.Fault{{Service: "s3", Operation: "UploadPart", Kind: awsemu.AccessDenied}}},
		{"upload completion", []awsemu.Fault{{Service: "s3", Operation: "CompleteMultipartUpload", Kind: awsemu.AccessDenied}}},
		{"manifest write", []awsemu.Fault{{Service: "s3", Operation: "PutObject", Kind: awsemu.AccessDenied}}},
		{"verification", []awsemu.Fault{{Service: "s3", Operation: "HeadObject", Kind: awsemu.AccessDenied}}},
		{"S3 throttling beyond the retries", []awsemu.Fault{{Service: "s3", Operation: "UploadPart", Kind: awsemu.Throttle}}},
		{"KMS throttling beyond the retries", []awsemu.Fault{{Service: "kms", Kind: awsemu.Throttle}}},
	} {
		for _, broken := range []int{0, 1} {
			t.Run(tc.name+" in "+[]string{primary, secondary}[broken], func(t *testing.T) {
				e := newEnv(t)
				sources := twoSources(t, 8<<20)
				e.mustBackup(t, sources...)
				before := map[Location][]string{}
				for _, l := range e.locations {
					before[l] = e.keys(t, l)
				}

				e.clock.SetTime(epoch.Add(8 * day))
				bad := e.locations[broken]
				for _, f := range tc.faults {
					e.emus[bad.Region].Inject(f)
				}
				sum, err := e.backup(t, sources...)
				if err == nil {
					t.Fatal("backup succeeded during the outage")
				}
				if !strings.Contains(err.Error(), bad.String()) {
					t.Errorf("error %q does not name the location %s", err, bad)
				}
				if sum.Status != StatusFailed || sum.Locations[broken].Error == "" || sum.Locations[1-broken].Error != "" {
					t.Errorf("summary = %+v", sum)
				}
				e.emus[bad.Region].ClearFaults()

				newID := idAt(8)
				for _, l := range e.locations {
					keys := e.keys(t, l)
					if slices.Contains(keys, objectKey(testWorkspace, newID, manifestName)) {
						t.Errorf("location %s has a manifest of the failed backup", l)
					}
					rest := slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, newID) })
					if !slices.Equal(rest, before[l]) {
						t.Errorf("location %s: earlier backups changed:\n%q\nwant\n%q", l, rest, before[l])
					}
					uploads, err := e.s3(l.Region).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(l.Bucket)})
					if err != nil {
						t.Fatal(err)
					}
					if len(uploads.Uploads) != 0 {
						t.Errorf("location %s: %d multipart uploads left open", l, len(uploads.Uploads))
					}
				}
				// The earlier backup is still what a restore finds.
				_, res, err := e.restore(t, Latest, e.locations...)
				if err != nil || res.BackupID != idAt(0) {
					t.Errorf("restore after the outage: %+v, %v", res, err)
				}
			})
		}
	}
}

// TestBackupFailsWhenSourceVanishesMidStream removes a volume while the
// backup is reading it: the moment the first multipart upload starts, the
// producer is half way through the volume's first file.
func TestBackupFailsWhenSourceVanishesMidStream(t *testing.T) {
	e := newEnv(t)
	vol := filepath.Join(t.TempDir(), "vol")
	writeFile(t, filepath.Join(vol, "0-big"), randomBytes(t, 8<<20), 0o644)
	writeFile(t, filepath.Join(vol, "z", "later.txt"), []byte("never read"), 0o644)
	var once sync.Once
	e.emus[primary].setHook(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
			once.Do(func() { _ = os.RemoveAll(vol) })
		}
		return w
	})
	sum, err := e.backup(t, Source{Name: "vol", Path: vol})
	if err == nil || !strings.Contains(err.Error(), "vanished") {
		t.Fatalf("error = %v, want the volume reported as vanished", err)
	}
	if sum.Status != StatusFailed {
		t.Errorf("status = %s", sum.Status)
	}
	for _, l := range e.locations {
		for _, k := range e.keys(t, l) {
			if strings.HasSuffix(k, manifestName) {
				t.Errorf("location %s has a manifest: %s", l, k)
			}
		}
	}
}

// TestBackupCanceled: a canceled context (the pod being stopped) fails the
// backup quickly and commits nothing.
func TestBackupCanceled(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 8<<20)
	ctx, cancel := context.WithCancel(context.Background())
	e.emus[secondary].setHook(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
		if r.URL.Query().Has("uploadId") {
			cancel()
		}
		return w
	})
	start := time.Now()
	_, err := e.agent.Backup(ctx, Options{Workspace: testWorkspace, Sources: sources, Locations: e.locations})
	if err == nil {
		t.Fatal("canceled backup succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("canceled backup took %v", d)
	}
	for _, l := range e.locations {
		for _, k := range e.keys(t, l) {
			if strings.HasSuffix(k, manifestName) {
				t.Errorf("location %s has a manifest: %s", l, k)
			}
		}
	}
}

// cutWriter breaks the connection after passing on limit bytes of body.
type cutWriter struct {
	http.ResponseWriter
	limit int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.limit {
		_, _ = c.ResponseWriter.Write(p[:c.limit])
		_ = http.NewResponseController(c.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	c.limit -= len(p)
	return c.ResponseWriter.Write(p)
}

// TestRestoreResumesBrokenDownloads breaks the archive download three
// times: the restore picks up where each break left it, in the same
// location.
func TestRestoreResumesBrokenDownloads(t *testing.T) {
	e := newEnv(t)
	sources := twoSources(t, 6<<20)
	e.mustBackup(t, sources...)
	var mu sync.Mutex
	breaks := 0
	e.emus[primary].setHook(func(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, archiveName) || breaks == 3 {
			return w
		}
		breaks++
		return &cutWriter{ResponseWriter: w, limit: 1 << 20}
	})
	target, res, err := e.restore(t, Latest, e.locations...)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Location != e.locations[0] || breaks != 3 {
		t.Errorf("restored from %s after %d breaks, want %s after 3", res.Location, breaks, e.locations[0])
	}
	checkRestored(t, target, sources)
}
