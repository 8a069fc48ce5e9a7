package awsemu

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Static credentials accepted by the emulator. It accepts any credentials;
// these are merely what the helpers sign with.
const (
	TestAccessKeyID     = "AKIAAWSEMULATOR00000"
	TestSecretAccessKey = "awsemu-secret-access-key-not-a-secret"
)

// retryMaxBackoff caps SDK retry back-off for clients built by NewAWSConfig.
// Fault-injection tests retry on purpose; the real 20s cap would only make
// them slow.
const retryMaxBackoff = 50 * time.Millisecond

// AWSConfig returns an aws.Config for region wired to this emulator. S3
// clients built from it must use path-style addressing:
//
//	s3.NewFromConfig(cfg, awsemu.UsePathStyle)
//
// because virtual-hosted style would put the bucket name into the hostname
// of the 127.0.0.1 endpoint.
func (s *Server) AWSConfig(region string) aws.Config {
	return s.AWSConfigAs(region, OperatorAccessKeyID)
}

// AWSConfigAs is AWSConfig signing with accessKeyID, which says who is calling
// (OperatorAccessKeyID, BackupAccessKeyID, RootAccessKeyID, OtherAccountAccessKeyID).
func (s *Server) AWSConfigAs(region, accessKeyID string) aws.Config {
	cfg := NewAWSConfig(s.URL(), region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(accessKeyID, TestSecretAccessKey, "")
	if s.tls != nil {
		pool := s.tls.pool
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			t.TLSClientConfig.RootCAs = pool
		})
	}
	return cfg
}

// NewAWSConfig returns an aws.Config for region that talks to the emulator at
// endpoint (for example the URL printed by cmd/awsemu): static test
// credentials, BaseEndpoint set to endpoint, the checksum behaviour of
// config.LoadDefaultConfig, and a standard retryer with a
// short back-off and no client-side retry quota, so that injected throttling
// is retried quickly and never exhausts the quota. It deliberately does not
// read environment variables or shared config files, so tests are hermetic.
// S3 clients additionally need UsePathStyle.
func NewAWSConfig(endpoint, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(TestAccessKeyID, TestSecretAccessKey, ""),
		BaseEndpoint: aws.String(endpoint),
		// config.LoadDefaultConfig defaults both to WhenSupported; a bare
		// aws.Config would leave them unset and silently skip the
		// checksums production clients send and verify.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxBackoff = retryMaxBackoff
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

// UsePathStyle is an s3.Options function selecting path-style requests
// (http://127.0.0.1:port/bucket/key), which the emulator requires.
func UsePathStyle(o *s3.Options) { o.UsePathStyle = true }
