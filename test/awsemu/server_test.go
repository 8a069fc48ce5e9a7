package awsemu_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func TestStartValidatesOptions(t *testing.T) {
	for _, opts := range []awsemu.Options{
		{Addr: "0.0.0.0:0"},
		{Addr: "localhost:0"},
		{Addr: "[::1]:0"},
		{Addr: "no-port"},
		{AccountID: "12345"},
	} {
		if srv, err := awsemu.Start(opts); err == nil {
			_ = srv.Close()
			t.Errorf("Start(%+v) succeeded", opts)
		}
	}
	srv := startServer(t, awsemu.Options{})
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:<port>", srv.URL())
	}
}

func TestHandlerAnswersErrorsInServiceFormat(t *testing.T) {
	h, err := awsemu.NewHandler(awsemu.Options{})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	tests := []struct {
		name       string
		req        *http.Request
		wantStatus int
		wantBody   string
	}{
		{
			name: "unsigned KMS request",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
				r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
				return r
			}(),
			wantStatus: http.StatusBadRequest,
			wantBody:   `"__type":"MissingAuthenticationTokenException"`,
		},
		{
			name: "unknown KMS operation",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
				r.Header.Set("X-Amz-Target", "TrentService.ReplicateKey")
				return r
			}(),
			wantStatus: http.StatusBadRequest,
			wantBody:   `"__type":"UnknownOperationException"`,
		},
		{
			name:       "missing bucket",
			req:        httptest.NewRequest(http.MethodGet, "/absent?list-type=2", nil),
			wantStatus: http.StatusNotFound,
			wantBody:   "<Code>NoSuchBucket</Code>",
		},
		{
			name:       "method not allowed",
			req:        httptest.NewRequest(http.MethodDelete, "/absent?versioning", nil),
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   "<Code>MethodNotAllowed</Code>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("got HTTP %d %s, want %d containing %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestConcurrentClients exercises both services from many goroutines; run
// with -race it checks the emulator's locking.
func TestConcurrentClients(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	kc, sc := kmsClient(srv, regionB), s3Client(srv, regionB)
	createBucket(t, sc, "shared", regionB)

	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			key, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
			if err != nil {
				errs <- err
				return
			}
			alias := fmt.Sprintf("alias/worker-%d", i)
			if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
				errs <- err
				return
			}
			_, err = sc.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("shared"), Key: aws.String(fmt.Sprintf("obj-%d", i)), Body: strings.NewReader("data"),
				ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &alias,
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.Keys(regionB)); n != workers {
		t.Errorf("have %d keys, want %d", n, workers)
	}
	listed, err := sc.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("shared")})
	if err != nil || len(listed.Contents) != workers {
		t.Errorf("ListObjectsV2 = %d objects, %v; want %d", len(listed.Contents), err, workers)
	}
	if got := srv.Calls().Count("s3", "PutObject"); got != workers {
		t.Errorf("PutObject calls = %d, want %d", got, workers)
	}
}
