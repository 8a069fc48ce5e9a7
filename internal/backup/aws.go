package backup

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// KMS is the part of the KMS API the agent uses, with *kms.Client's
// signatures.
type KMS interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// S3 is the part of the S3 API the agent uses, with *s3.Client's
// signatures: what the transfer manager needs for multipart uploads, plus
// version listing and batch deletion for retention.
type S3 interface {
	transfermanager.S3APIClient
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, optFns ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

var (
	_ KMS = (*kms.Client)(nil)
	_ S3  = (*s3.Client)(nil)
)

// Clients returns the KMS and S3 clients for a region.
type Clients func(ctx context.Context, region string) (KMS, S3, error)

// maxAttempts bounds the SDK's attempts per call. A backup job has no
// caller to retry for it until the next day, so it is more patient than
// an interactive client: with the standard exponential back-off capped at
// 20 s, ten attempts ride out a minute or two of throttling or 5xx.
const maxAttempts = 10

// AWSClients builds clients through the SDK's default configuration chain
// (environment, shared files, IRSA or EKS Pod Identity in a cluster), which
// also gives each client its endpoint: AWS_ENDPOINT_URL_KMS and
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS's. The operator sets on the
// agent's pods the endpoint variables it was given. s3PathStyle puts the
// bucket in the URL path, for S3-compatible servers without wildcard DNS.
func AWSClients(s3PathStyle bool) Clients {
	return func(ctx context.Context, region string) (KMS, S3, error) {
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region), awsconfig.WithRetryer(newRetryer))
		if err != nil {
			return nil, nil, fmt.Errorf("load AWS configuration for %s: %w", region, err)
		}
		return kms.NewFromConfig(cfg), s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.UsePathStyle = s3PathStyle
		}), nil
	}
}

// newRetryer is the standard retryer (throttling and 5xx are retryable)
// without its client-side retry quota: the quota exists to fail fast when
// a service is degraded, but a batch job uploading parts in parallel would
// drain it during a burst of SlowDown and fail the whole backup, where
// backing off and retrying is what it should do.
func newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.RateLimiter = ratelimit.None
	})
}
