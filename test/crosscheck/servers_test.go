package crosscheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// The account local-kms reports in its ARNs, and the two regions the operator
// runs in (primary and replica), one local-kms process each: local-kms serves a
// single region per process, as AWS serves one per endpoint.
const (
	account = "111122223333"
	primary = "eu-west-1"
	replica = "eu-central-1"
)

var binaries = sync.OnceValues(func() (map[string]string, error) {
	found := map[string]string{}
	for _, name := range []string{"LOCAL_KMS", "MINIO"} {
		if p := os.Getenv(name); p != "" {
			found[name] = p
		}
	}
	if len(found) == 2 {
		return found, nil
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "hack", "crosscheck.sh")
	var stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", script, err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name, path, ok := strings.Cut(sc.Text(), "="); ok {
			found[name] = path
		}
	}
	if len(found) < 2 {
		// The script says which server failed to build, and why.
		found["why"] = strings.TrimSpace(stderr.String())
	}
	return found, nil
})

// binary is the path of a cross-check server, or skips the test when it could
// not be built.
func binary(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-checks against third-party servers are not part of -short")
	}
	found, err := binaries()
	if err != nil {
		t.Fatalf("hack/crosscheck.sh: %v", err)
	}
	p, ok := found[name]
	if !ok && os.Getenv("WORKSPACE_OPERATOR_CROSSCHECK") == "required" {
		// CI sets this: there, a skip would pass unseen.
		t.Fatalf("%s could not be built from the Go module proxy: %s", name, found["why"])
	}
	if !ok {
		t.Skipf("%s could not be built from the Go module proxy, so its cross-checks are skipped: %s", name, found["why"])
	}
	return p
}

// freePort picks a loopback port for a server that takes its port as a number.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a server until the test ends and waits until url answers HTTP.
// Its output goes to the test log when the test fails.
func start(t *testing.T, name string, cmd *exec.Cmd, url string) {
	t.Helper()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited at start:\n%s", name, logs.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer on %s: %v", name, url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// useCredentials makes the SDK's default chain (which cloud.LoadConfig uses, as
// main.go does) find these keys and nothing from the machine: no credentials and no
// endpoint settings but the test's own.
func useCredentials(t *testing.T, id, secret string) {
	t.Setenv("AWS_ACCESS_KEY_ID", id)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, name := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"} {
		t.Setenv(name, "")
	}
}

// startLocalKMS runs one local-kms per region and returns the operator's KMS
// clients for them, built as main.go builds them: the endpoint comes from
// AWS_ENDPOINT_URL_KMS. That variable names a service, not a region, so it is set
// to each region's server before that region's client is built, which is when the
// client resolves it.
func startLocalKMS(t *testing.T, regions ...string) map[string]*kms.Client {
	t.Helper()
	bin := binary(t, "LOCAL_KMS")
	// local-kms does not check signatures; any credentials sign.
	useCredentials(t, "AKIACROSSCHECK", "crosscheck-secret")
	clients := map[string]*kms.Client{}
	for _, region := range regions {
		port := freePort(t)
		cmd := exec.Command(bin)
		// local-kms binds every interface (it has no bind setting); only the loopback
		// address is ever sent traffic.
		cmd.Env = append(os.Environ(),
			"PORT="+strconv.Itoa(port),
			"KMS_REGION="+region,
			"KMS_ACCOUNT_ID="+account,
			"KMS_DATA_PATH="+t.TempDir(),
			"KMS_SEED_PATH="+filepath.Join(t.TempDir(), "none.yaml"),
		)
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		start(t, "local-kms "+region, cmd, url)
		t.Setenv("AWS_ENDPOINT_URL_KMS", url)
		cfg, err := cloud.LoadConfig(context.Background(), region)
		if err != nil {
			t.Fatal(err)
		}
		clients[region] = kms.NewFromConfig(cfg)
		if got := aws.ToString(clients[region].Options().BaseEndpoint); got != url {
			t.Fatalf("KMS client for %s resolved endpoint %q, want its local-kms %s", region, got, url)
		}
	}
	return clients
}

// MinIO's root user signs every request; MinIO checks SigV4 signatures.
const (
	minioUser     = "crosscheck"
	minioPassword = "crosscheck-secret"
	// minioKey is the single key of MinIO's built-in KMS (MINIO_KMS_SECRET_KEY).
	// MinIO names a key in SSE-KMS requests as arn:aws:kms:<name>.
	minioKey    = "crosscheck-key"
	minioKeyARN = "arn:aws:kms:" + minioKey
)

// startMinIO runs a single-drive MinIO on the loopback with a static KMS key
// and returns the operator's S3 client for it, built as main.go builds it: the
// endpoint from AWS_ENDPOINT_URL_S3, path-style as with --aws-s3-path-style.
func startMinIO(t *testing.T) *s3.Client {
	t.Helper()
	bin := binary(t, "MINIO")
	useCredentials(t, minioUser, minioPassword)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "server", t.TempDir(),
		"--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+minioUser,
		"MINIO_ROOT_PASSWORD="+minioPassword,
		// 32 bytes of zeroes: a test key for a test server.
		"MINIO_KMS_SECRET_KEY="+minioKey+":AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+primary,
	)
	url := "http://" + addr
	start(t, "MinIO", cmd, url+"/minio/health/live")
	t.Setenv("AWS_ENDPOINT_URL_S3", url)
	cfg, err := cloud.LoadConfig(context.Background(), primary)
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func hasCode(err error, code string) bool {
	return cloud.ErrorCode(err) == code
}

func errorCode(err error) string { return cloud.ErrorCode(err) }
