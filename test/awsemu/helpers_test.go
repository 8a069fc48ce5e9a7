package awsemu_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

const (
	regionA = "us-east-1"
	regionB = "eu-west-1"
)

// epoch is the fake clock's starting time in tests that control time.
var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func startServer(t *testing.T, opts awsemu.Options) *awsemu.Server {
	t.Helper()
	srv, err := awsemu.Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// startWithClock starts a server driven by a fake clock at epoch.
func startWithClock(t *testing.T) (*awsemu.Server, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	return startServer(t, awsemu.Options{Clock: clk}), clk
}

func kmsClient(srv *awsemu.Server, region string, optFns ...func(*kms.Options)) *kms.Client {
	return kms.NewFromConfig(srv.AWSConfig(region), optFns...)
}

func s3Client(srv *awsemu.Server, region string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(srv.AWSConfig(region), append([]func(*s3.Options){awsemu.UsePathStyle}, optFns...)...)
}

func noKMSRetries(o *kms.Options) { o.RetryMaxAttempts = 1 }

func noS3Retries(o *s3.Options) { o.RetryMaxAttempts = 1 }

// errorCode returns the AWS error code of err, or "" if err is nil.
func errorCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error is not an AWS API error: %v", err)
	}
	return apiErr.ErrorCode()
}

// wantCode fails the test unless err carries the AWS error code want ("" for
// success).
func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := errorCode(t, err); got != want {
		t.Fatalf("error code = %q, want %q (error: %v)", got, want, err)
	}
}

// httpStatus returns the HTTP status code of an SDK error.
func httpStatus(t *testing.T, err error) int {
	t.Helper()
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) {
		t.Fatalf("error has no HTTP response: %v", err)
	}
	return respErr.HTTPStatusCode()
}

func createKey(t *testing.T, client *kms.Client, description string) string {
	t.Helper()
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String(description)})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.KeyId)
}
