package awsemu_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func TestThrottleIsRetried(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA)
	srv.Inject(awsemu.Fault{Service: "kms", Operation: "CreateKey", Kind: awsemu.Throttle, Times: 2})

	createKey(t, client, "after two throttles")
	want := awsemu.CallCounts{
		{Service: "kms", Operation: "CreateKey", Outcome: "ThrottlingException"}: 2,
		{Service: "kms", Operation: "CreateKey", Outcome: awsemu.OutcomeOK}:      1,
	}
	if diff := cmp.Diff(want, srv.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if got := srv.Calls().Count("kms", "CreateKey"); got != 3 {
		t.Errorf("Count(kms, CreateKey) = %d, want 3", got)
	}
}

func TestThrottleUntilCleared(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "throttled", regionA)
	srv.Inject(awsemu.Fault{Service: "s3", Operation: "PutObject", Kind: awsemu.Throttle})

	put := func() error {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("throttled"), Key: aws.String("k"), Body: bytes.NewReader([]byte("v"))})
		return err
	}
	err := put()
	wantCode(t, err, "SlowDown")
	if status := httpStatus(t, err); status != http.StatusServiceUnavailable {
		t.Errorf("SlowDown status = %d, want 503", status)
	}
	// The SDK made its three attempts; other operations were unaffected.
	if got := srv.Calls()[awsemu.Call{Service: "s3", Operation: "PutObject", Outcome: "SlowDown"}]; got != 3 {
		t.Errorf("throttled PutObject attempts = %d, want 3", got)
	}
	srv.ClearFaults()
	if err := put(); err != nil {
		t.Errorf("PutObject after ClearFaults: %v", err)
	}
}

func TestInternalError(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	srv.Inject(awsemu.Fault{Service: "kms", Kind: awsemu.InternalError, Times: 1})
	_, err := kmsClient(srv, regionA, noKMSRetries).ListKeys(ctx, &kms.ListKeysInput{})
	var internal *types.KMSInternalException
	if !errors.As(err, &internal) || httpStatus(t, err) != http.StatusInternalServerError {
		t.Errorf("ListKeys: %v, want *types.KMSInternalException with HTTP 500", err)
	}
	// Times: 1 is used up; with retries the next fault is absorbed.
	srv.Inject(awsemu.Fault{Service: "kms", Kind: awsemu.InternalError, Times: 1})
	if _, err := kmsClient(srv, regionA).ListKeys(ctx, &kms.ListKeysInput{}); err != nil {
		t.Errorf("ListKeys with retries: %v", err)
	}

	srv.Inject(awsemu.Fault{Service: "s3", Operation: "ListBuckets", Kind: awsemu.InternalError, Times: 1})
	_, err = s3Client(srv, regionA, noS3Retries).ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "InternalError")
}

func TestAccessDenied(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	s3c := s3Client(srv, regionA)
	createBucket(t, s3c, "guarded", regionA)
	srv.Inject(awsemu.Fault{Service: "s3", Operation: "PutBucketPolicy", Kind: awsemu.AccessDenied})
	srv.Inject(awsemu.Fault{Service: "kms", Operation: "ScheduleKeyDeletion", Kind: awsemu.AccessDenied, Times: 1})

	// Other operations are unaffected.
	_, err := s3c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("guarded")})
	wantCode(t, err, "NoSuchBucketPolicy")

	_, err = s3c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("guarded"), Policy: aws.String(`{"Statement":[]}`)})
	wantCode(t, err, "AccessDenied")
	if status := httpStatus(t, err); status != http.StatusForbidden {
		t.Errorf("AccessDenied status = %d, want 403", status)
	}
	// Not retryable: one attempt only, and nothing was stored.
	if got := srv.Calls()[awsemu.Call{Service: "s3", Operation: "PutBucketPolicy", Outcome: "AccessDenied"}]; got != 1 {
		t.Errorf("AccessDenied attempts = %d, want 1", got)
	}
	_, err = s3c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("guarded")})
	wantCode(t, err, "NoSuchBucketPolicy")

	kc := kmsClient(srv, regionA)
	id := createKey(t, kc, "guarded")
	_, err = kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id})
	wantCode(t, err, "AccessDeniedException")
	if keys := srv.Keys(regionA); keys[0].State != "Enabled" {
		t.Errorf("denied ScheduleKeyDeletion changed the key state to %s", keys[0].State)
	}
	// Times: 1 is used up.
	if _, err := kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id}); err != nil {
		t.Errorf("ScheduleKeyDeletion after the fault: %v", err)
	}
}

func TestLatency(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA, noKMSRetries)
	const delay = 150 * time.Millisecond
	srv.Inject(awsemu.Fault{Service: "kms", Operation: "ListKeys", Kind: awsemu.Latency, Delay: delay})

	start := time.Now()
	if _, err := client.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("ListKeys took %v, want at least %v", elapsed, delay)
	}

	// A client that gives up first sees a timeout; the request is recorded
	// as canceled, not served.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := client.ListKeys(ctx, &kms.ListKeysInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ListKeys with a short deadline: %v, want deadline exceeded", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for srv.Calls()[awsemu.Call{Service: "kms", Operation: "ListKeys", Outcome: awsemu.OutcomeCanceled}] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("canceled request not recorded: %v", srv.Calls())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDropResponse(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	srv.Inject(awsemu.Fault{Service: "kms", Operation: "CreateKey", Kind: awsemu.DropResponse, Times: 1})

	// The operator "crashes" between CreateKey and CreateAlias: the key
	// exists, but the caller never learned its ID.
	_, err := kmsClient(srv, regionA, noKMSRetries).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("orphan")})
	if err == nil {
		t.Fatal("CreateKey succeeded despite the dropped response")
	}
	keys := srv.Keys(regionA)
	if len(keys) != 1 || keys[0].Description != "orphan" || len(keys[0].Aliases) != 0 {
		t.Fatalf("Keys() = %+v, want one orphaned key without alias", keys)
	}
	if got := srv.Calls()[awsemu.Call{Service: "kms", Operation: "CreateKey", Outcome: awsemu.OutcomeDropped}]; got != 1 {
		t.Errorf("dropped CreateKey calls = %d, want 1", got)
	}

	// With retries, the SDK repeats the non-idempotent call: a second key.
	srv.Inject(awsemu.Fault{Service: "kms", Operation: "CreateKey", Kind: awsemu.DropResponse, Times: 1})
	createKey(t, kmsClient(srv, regionA), "retried")
	if n := len(srv.Keys(regionA)); n != 3 {
		t.Errorf("have %d keys after a retried dropped CreateKey, want 3", n)
	}

	// S3 writes are applied too.
	s3c := s3Client(srv, regionA, noS3Retries)
	createBucket(t, s3c, "dropped", regionA)
	srv.Inject(awsemu.Fault{Service: "s3", Operation: "PutObject", Kind: awsemu.DropResponse, Times: 1})
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("dropped"), Key: aws.String("k"), Body: bytes.NewReader([]byte("landed"))}); err == nil {
		t.Fatal("PutObject succeeded despite the dropped response")
	}
	if _, body := getObject(t, s3c, &s3.GetObjectInput{Bucket: aws.String("dropped"), Key: aws.String("k")}); string(body) != "landed" {
		t.Errorf("object after dropped PutObject = %q", body)
	}
}

func TestFaultsCombine(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA, noKMSRetries)
	const delay = 100 * time.Millisecond
	srv.Inject(awsemu.Fault{Service: "kms", Kind: awsemu.Latency, Delay: delay, Times: 1})
	srv.Inject(awsemu.Fault{Kind: awsemu.Throttle, Times: 1})

	start := time.Now()
	_, err := client.ListKeys(context.Background(), &kms.ListKeysInput{})
	wantCode(t, err, "ThrottlingException")
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("delayed throttle answered after %v, want at least %v", elapsed, delay)
	}
	if _, err := client.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Errorf("faults outlived their Times: %v", err)
	}
}

func TestInjectRejectsInvalidFaults(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	for _, f := range []awsemu.Fault{
		{Service: "KMS", Kind: awsemu.Throttle},
		{Service: "kms"},
		{Service: "s3", Kind: awsemu.Throttle, Times: -1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Inject(%+v) did not panic", f)
				}
			}()
			srv.Inject(f)
		}()
	}
}

func TestResetCalls(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA)
	createKey(t, client, "counted")
	if got := srv.Calls().Count("kms", ""); got != 1 {
		t.Errorf("Count(kms, any) = %d, want 1", got)
	}
	srv.ResetCalls()
	if calls := srv.Calls(); len(calls) != 0 {
		t.Errorf("Calls() after ResetCalls = %v", calls)
	}
}
