package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// Credentials of the MinIO root user, which every client signs with.
const (
	minioUser     = "bench-backup"
	minioPassword = "bench-backup-secret"
)

// minioKeyName is the single key of MinIO's built-in KMS (a static key
// given in MINIO_KMS_SECRET_KEY). The KMS shim reports it as the key of
// every data key, as minioKeyARN (see kmsShim).
const (
	minioKeyName = "bench-backup-key"
	minioKeyARN  = "arn:aws:kms:" + minioKeyName
)

// kmsAlias is the key alias the agent is given in every region.
const kmsAlias = "alias/bench-backup"

// env is the servers the variants talk to.
type env struct {
	minioURL     string
	minioVersion string
	minio        *exec.Cmd
	// minioExited is closed when MinIO has exited, with minioErr set.
	minioExited chan struct{}
	minioErr    error
	// minioData is MinIO's drive; removed on close when on tmpfs.
	minioData    string
	minioOnTmpfs bool
	gatewayURL   string
	gateway      *http.Server
	// caFile is the gateway's certificate, when it serves HTTPS.
	caFile string
	// requests logs what goes through the gateway, into requestFile.
	requests    *requestLog
	requestFile *os.File
	s3          *s3.Client
}

// startEnv starts MinIO and the gateway in front of it.
func startEnv(ctx context.Context, cfg *config, workDir string) (*env, error) {
	e := &env{minioVersion: toolVersion(cfg.minio, "--version")}
	if err := e.startMinIO(ctx, cfg, workDir); err != nil {
		e.close() // MinIO, if it started, and its drive
		return nil, err
	}
	e.s3 = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.minioURL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
	})
	if err := e.startGateway(ctx, cfg.tls, workDir); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// startMinIO runs a single-drive MinIO on the loopback with a static KMS
// key, so that it accepts SSE-KMS uploads.
func (e *env) startMinIO(ctx context.Context, cfg *config, workDir string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	consolePort, err := freePort()
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails
	data, err := e.minioDrive(cfg.minioDir, workDir)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(workDir, "minio.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(cfg.minio, "server", data,
		"--address", "127.0.0.1:"+strconv.Itoa(port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(consolePort),
		"--certs-dir", filepath.Join(workDir, "minio-certs"),
		"--quiet")
	cmd.Env = append(cleanEnv(),
		"MINIO_ROOT_USER="+minioUser,
		"MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_KMS_SECRET_KEY="+minioKeyName+":"+base64.StdEncoding.EncodeToString(secret),
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start MinIO: %w", err)
	}
	e.minio, e.minioExited = cmd, make(chan struct{})
	go func() {
		e.minioErr = cmd.Wait()
		close(e.minioExited)
	}()
	e.minioURL = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := e.waitMinIO(ctx); err != nil {
		return fmt.Errorf("MinIO (see %s): %w", logFile.Name(), err)
	}
	log.Printf("MinIO %s serving %s on %s", e.minioVersion, data, e.minioURL)
	return nil
}

// minioDrive picks MinIO's drive. By default it is on tmpfs (/dev/shm),
// because the benchmark measures the clients, not this machine's disk:
// MinIO's writes to a virtual disk shared with other work made wall
// times vary by a factor of two from run to run. Each run's buckets are
// deleted after it, so the drive holds at most one run's data.
func (e *env) minioDrive(dir, workDir string) (string, error) {
	switch dir {
	case "":
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			d, err := os.MkdirTemp("/dev/shm", "bench-backup-minio-")
			e.minioData, e.minioOnTmpfs = d, true
			return d, err
		}
		e.minioData = filepath.Join(workDir, "minio-data")
	case "disk":
		e.minioData = filepath.Join(workDir, "minio-data")
	default:
		e.minioData = dir
	}
	return e.minioData, os.MkdirAll(e.minioData, 0o755)
}

// waitMinIO polls MinIO's readiness probe.
func (e *env) waitMinIO(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-e.minioExited:
			return fmt.Errorf("exited: %w", e.minioErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(e.minioURL + "/minio/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("not ready after a minute")
}

// startGateway serves the one endpoint every variant is given: KMS
// requests (JSON protocol, X-Amz-Target: TrentService.*) go to the AWS
// emulator, in process, with keys under kmsAlias in every region the
// variants use; everything else is proxied to MinIO unchanged, Host header
// included, so that MinIO verifies the clients' SigV4 signatures as they
// were made.
//
// The gateway was needed when the agent took one endpoint for every
// service; it now takes the SDK's per-service settings and could be sent
// to the emulator and MinIO directly, but the gateway stays so that the
// figures remain comparable with earlier runs. The floor and restic go
// through it too, so that every variant pays for the same extra hop.
//
// With useTLS the gateway serves HTTPS (HTTP/1.1 only, like S3), so that
// clients send what they send to AWS: over plain HTTP the SDK signs every
// part's SHA-256, over HTTPS it streams parts unsigned with a trailing
// CRC32C. MinIO behind the gateway is plain HTTP.
func (e *env) startGateway(ctx context.Context, useTLS bool, workDir string) error {
	emu, err := awsemu.NewHandler(awsemu.Options{})
	if err != nil {
		return err
	}
	minio, err := url.Parse(e.minioURL)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(workDir, "gateway.log"))
	if err != nil {
		return err
	}
	e.requests, e.requestFile = &requestLog{out: logFile}, logFile
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.gatewayURL = "http://" + l.Addr().String()
	e.gateway = &http.Server{
		Handler:           e.requests.wrap(gateway(kmsShim(emu), s3Proxy(minio))),
		ReadHeaderTimeout: 10 * time.Second,
		// No HTTP/2: S3 speaks HTTP/1.1, one request per connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	var pool *x509.CertPool
	if useTLS {
		cert, certPEM, err := selfSigned()
		if err != nil {
			return err
		}
		e.caFile = filepath.Join(workDir, "gateway-ca.pem")
		if err := os.WriteFile(e.caFile, certPEM, 0o644); err != nil {
			return err
		}
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(certPEM)
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		e.gatewayURL = "https://" + l.Addr().String()
	}
	go func() { _ = e.gateway.Serve(l) }()
	for _, region := range regions {
		if err := createAlias(ctx, e.gatewayURL, region, pool); err != nil {
			return fmt.Errorf("KMS key in %s: %w", region, err)
		}
	}
	return nil
}

// gateway routes KMS requests to kms and all others to s3.
func gateway(kms, s3 http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
			kms.ServeHTTP(w, r)
			return
		}
		s3.ServeHTTP(w, r)
	})
}

// s3Proxy forwards requests to MinIO as they came, Host included.
func s3Proxy(target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // signed by the client
		},
		// The uploaders keep several parts in flight; the default two
		// idle connections per host would make the proxy reconnect.
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		// Larger copies than the default 32 KiB cut the proxy's CPU.
		BufferPool: bufferPool{},
	}
}

// bufferPool lends the proxy 1 MiB copy buffers.
type bufferPool struct{}

var proxyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (bufferPool) Get() []byte  { return *proxyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { proxyBuffers.Put(&b) }

// kmsShim passes KMS requests to the emulator, rewriting one thing: the
// KeyId of GenerateDataKey responses becomes minioKeyARN. The agent sends
// the key ARN KMS reports as the SSE-KMS key of its uploads, and checks
// the same ARN on HeadObject; MinIO strips "arn:aws:kms:" and needs the
// rest to name its only key, whose name cannot contain the colons of a
// real key ARN. The data key and its ciphertext stay the emulator's.
func kmsShim(emu http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "TrentService.GenerateDataKey" {
			emu.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			var out map[string]any
			if err := json.Unmarshal(body, &out); err == nil {
				out["KeyId"] = minioKeyARN
				body, _ = json.Marshal(out) // a decoded object always encodes
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// createAlias creates a key and kmsAlias for it in region; pool, when
// set, is the gateway's certificate.
func createAlias(ctx context.Context, url, region string, pool *x509.CertPool) error {
	cfg := awsemu.NewAWSConfig(url, region)
	if pool != nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	client := kms.NewFromConfig(cfg)
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("bench-backup")})
	if err != nil {
		return err
	}
	_, err = client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(kmsAlias), TargetKeyId: key.KeyMetadata.KeyId})
	return err
}

func (e *env) close() {
	if e.gateway != nil {
		_ = e.gateway.Close()
		_ = e.requestFile.Close() // the log is best effort
	}
	if e.minio != nil && e.minio.Process != nil {
		_ = e.minio.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.minioExited:
		case <-time.After(10 * time.Second):
			_ = e.minio.Process.Kill()
			<-e.minioExited
		}
	}
	if e.minioOnTmpfs {
		_ = os.RemoveAll(e.minioData)
	}
}

// deleteBuckets empties and deletes a run's buckets, so that the drive
// holds one run's data at most.
func (e *env) deleteBuckets(ctx context.Context, buckets []string) error {
	for _, b := range buckets {
		p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list bucket %s: %w", b, err)
			}
			if len(page.Contents) == 0 {
				continue
			}
			var ids []s3types.ObjectIdentifier
			for _, o := range page.Contents {
				ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
			}
			if _, err := e.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(b), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
				return fmt.Errorf("empty bucket %s: %w", b, err)
			}
		}
		if _, err := e.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("delete bucket %s: %w", b, err)
		}
	}
	return nil
}

// createBucket makes a fresh bucket for one run.
func (e *env) createBucket(ctx context.Context, name string) error {
	_, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// storedBytes sums the sizes of the objects in the buckets: what the
// variant keeps in S3.
func (e *env) storedBytes(ctx context.Context, buckets []string) (int64, error) {
	var total int64
	for _, b := range buckets {
		p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return 0, fmt.Errorf("list bucket %s: %w", b, err)
			}
			for _, o := range page.Contents {
				total += aws.ToInt64(o.Size)
			}
		}
	}
	return total, nil
}

// serverCPU is MinIO's CPU time so far (user plus system), from
// /proc/<pid>/stat.
func (e *env) serverCPU() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.minio.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; the fields after it do not.
	_, rest, ok := bytes.Cut(data, []byte(") "))
	if !ok {
		return 0, errors.New("unexpected /proc/<pid>/stat format")
	}
	fields := strings.Fields(string(rest))
	// utime and stime are fields 14 and 15 of stat, 12 and 13 after the
	// command name, in clock ticks: USER_HZ, 100 on every Linux ABI.
	const userHZ = 100
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanEnv is the environment without AWS and MinIO settings, so that the
// host's configuration cannot leak into a run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "MINIO_") || strings.HasPrefix(kv, "RESTIC_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
