package crosscheck

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// minioGaps is the operator's S3 client on MinIO, except for the bucket
// settings MinIO refuses (public access block, object ownership, and the
// operator's bucket policies, whose ...IfExists conditions MinIO does not
// know), which it keeps in memory as AWS would. Only those, each listed in
// s3Differences and asserted there to be refused by MinIO itself; every other
// call reaches MinIO.
type minioGaps struct {
	*s3.Client
	mu        sync.Mutex
	pab       map[string]*s3types.PublicAccessBlockConfiguration
	ownership map[string]*s3types.OwnershipControls
	policies  map[string]string
}

func newMinioGaps(c *s3.Client) *minioGaps {
	return &minioGaps{Client: c, pab: map[string]*s3types.PublicAccessBlockConfiguration{}, ownership: map[string]*s3types.OwnershipControls{}, policies: map[string]string{}}
}

func (m *minioGaps) GetPublicAccessBlock(_ context.Context, in *s3.GetPublicAccessBlockInput, _ ...func(*s3.Options)) (*s3.GetPublicAccessBlockOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &s3.GetPublicAccessBlockOutput{PublicAccessBlockConfiguration: m.pab[aws.ToString(in.Bucket)]}, nil
}

func (m *minioGaps) PutPublicAccessBlock(_ context.Context, in *s3.PutPublicAccessBlockInput, _ ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pab[aws.ToString(in.Bucket)] = in.PublicAccessBlockConfiguration
	return &s3.PutPublicAccessBlockOutput{}, nil
}

func (m *minioGaps) GetBucketOwnershipControls(_ context.Context, in *s3.GetBucketOwnershipControlsInput, _ ...func(*s3.Options)) (*s3.GetBucketOwnershipControlsOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// CreateBucket's ObjectOwnership header is accepted by MinIO and ignored; AWS sets it.
	oc, ok := m.ownership[aws.ToString(in.Bucket)]
	if !ok {
		oc = &s3types.OwnershipControls{Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}}}
	}
	return &s3.GetBucketOwnershipControlsOutput{OwnershipControls: oc}, nil
}

func (m *minioGaps) PutBucketOwnershipControls(_ context.Context, in *s3.PutBucketOwnershipControlsInput, _ ...func(*s3.Options)) (*s3.PutBucketOwnershipControlsOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ownership[aws.ToString(in.Bucket)] = in.OwnershipControls
	return &s3.PutBucketOwnershipControlsOutput{}, nil
}

func (m *minioGaps) GetBucketPolicy(_ context.Context, in *s3.GetBucketPolicyInput, _ ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.policies[aws.ToString(in.Bucket)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "NoSuchBucketPolicy", Message: "The bucket policy does not exist"}
	}
	return &s3.GetBucketPolicyOutput{Policy: aws.String(p)}, nil
}

func (m *minioGaps) PutBucketPolicy(_ context.Context, in *s3.PutBucketPolicyInput, _ ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[aws.ToString(in.Bucket)] = aws.ToString(in.Policy)
	return &s3.PutBucketPolicyOutput{}, nil
}

func (m *minioGaps) deletePolicy(bucket string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.policies, bucket)
}

// minioAlwaysRepaired are the settings Ensure re-puts on every drift check on
// MinIO, because MinIO drops part of them (s3Differences); on AWS it is none.
const minioAlwaysRepaired = "default encryption,lifecycle"

// TestBucketOnMinIO: Ensure creates, tags, versions, encrypts, applies the
// policy and the lifecycle on MinIO; reads them back on the next Ensure and
// finds nothing to repair (a server that normalises what it returns must not
// make every drift check a "repair"); Close and Purge work; Exists follows.
func TestBucketOnMinIO(t *testing.T) {
	c := startMinIO(t)
	ctx := context.Background()
	gaps := newMinioGaps(c)
	buckets := cloud.NewBuckets(map[string]cloud.S3{primary: gaps}, "wso")
	name := buckets.Name(owner, primary)
	req := cloud.BucketRequest{Owner: owner, Name: name, Region: primary, KeyARN: minioKeyARN, ExpireAfterDays: 7}

	created, err := buckets.Ensure(ctx, req)
	if err != nil || !created.Created {
		t.Fatalf("first Ensure = %+v, %v; want a created bucket", created, err)
	}
	// MinIO drops BucketKeyEnabled and AbortIncompleteMultipartUpload (s3Differences),
	// so every read-back finds those two settings short, and only those.
	again, err := buckets.Ensure(ctx, req)
	if err != nil || again.Created || strings.Join(again.Repaired, ",") != minioAlwaysRepaired {
		t.Errorf("second Ensure = %+v, %v; want the bucket adopted with only %q repaired", again, err, minioAlwaysRepaired)
	}

	versioning, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &name})
	if err != nil || versioning.Status != s3types.BucketVersioningStatusEnabled {
		t.Errorf("versioning %+v, %v", versioning, err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &name, Key: aws.String("f"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &name, Key: aws.String("f")})
	if err != nil || head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
		t.Errorf("an upload naming no encryption: %+v, %v; want the bucket's SSE-KMS default", head, err)
	}

	// Drift: versioning suspended and the lifecycle removed on MinIO, the policy outside the operator.
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &name,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: &name}); err != nil {
		t.Fatal(err)
	}
	gaps.deletePolicy(name)
	repaired, err := buckets.Ensure(ctx, req)
	if err != nil || strings.Join(repaired.Repaired, ",") != "versioning,default encryption,bucket policy,lifecycle" {
		t.Errorf("Ensure after drift = %+v, %v; want versioning, bucket policy and lifecycle repaired", repaired, err)
	}

	if err := buckets.Close(ctx, primary, name); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &name, Key: aws.String("f"), Body: strings.NewReader("v2")}); err != nil {
		t.Fatal(err)
	}
	deleted, err := buckets.Purge(ctx, primary, name)
	if err != nil || deleted != 2 {
		t.Errorf("Purge = %d, %v; want every version deleted", deleted, err)
	}
	if exists, err := buckets.Exists(ctx, primary, name); err != nil || exists {
		t.Errorf("Exists after Purge = %t, %v", exists, err)
	}
}

// s3Differences are the ways MinIO is known to differ from AWS S3 in the calls
// the operator makes; TestS3Differences asserts each against MinIO.
var s3Differences = []struct {
	name, aws, minio, consequence string
	probe                         func(ctx context.Context, c *s3.Client, bucket string) error
}{
	{
		name: "no public access block", aws: "ok", minio: "MalformedXML",
		consequence: "served from memory by minioGaps",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: &bucket, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true)}})
			return err
		},
	},
	{
		name: "no object ownership controls", aws: "ok", minio: "NotImplemented",
		consequence: "served from memory by minioGaps",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			_, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: &bucket})
			return err
		},
	},
	{
		name: "no ...IfExists condition operators in bucket policies", aws: "ok", minio: "MalformedPolicy",
		consequence: "the operator's bucket policies are served from memory by minioGaps; their enforcement is checked by the emulator and make test-aws",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Sid":"D","Effect":"Deny","Principal":"*","Action":"s3:PutObject",` +
				`"Resource":"arn:aws:s3:::` + bucket + `/*","Condition":{"StringNotEqualsIfExists":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}`)})
			return err
		},
	},
	{
		name: "no S3 Bucket Keys: BucketKeyEnabled is dropped", aws: "true", minio: "false",
		consequence: "Ensure finds default encryption changed on every drift check (minioAlwaysRepaired)",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: &bucket, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
				Rules: []s3types.ServerSideEncryptionRule{{BucketKeyEnabled: aws.Bool(true), ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{
					SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(minioKeyARN)}}}}}); err != nil {
				return err
			}
			out, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: &bucket})
			if err != nil {
				return err
			}
			return &smithy.GenericAPIError{Code: strconv.FormatBool(aws.ToBool(out.ServerSideEncryptionConfiguration.Rules[0].BucketKeyEnabled))}
		},
	},
	{
		name: "lifecycle rules lose AbortIncompleteMultipartUpload", aws: "kept", minio: "dropped",
		consequence: "Ensure finds the lifecycle changed on every drift check (minioAlwaysRepaired); MinIO does not abort stale multipart uploads",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			if _, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: &bucket, LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{
				Rules: []s3types.LifecycleRule{{ID: aws.String("r"), Status: s3types.ExpirationStatusEnabled, Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
					Expiration:                     &s3types.LifecycleExpiration{Days: aws.Int32(7)},
					AbortIncompleteMultipartUpload: &s3types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}}}}}); err != nil {
				return err
			}
			out, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
			if err != nil {
				return err
			}
			if out.Rules[0].AbortIncompleteMultipartUpload == nil {
				return &smithy.GenericAPIError{Code: "dropped"}
			}
			return &smithy.GenericAPIError{Code: "kept"}
		},
	},
	{
		name: "SSE-KMS keys are MinIO's, not KMS ARNs", aws: "ok", minio: "kms:KeyNotFound",
		consequence: "buckets on MinIO are encrypted under arn:aws:kms:<MinIO key name>, not a local-kms key",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: &bucket, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
				Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{
					SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String("arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000")}}}}})
			return err
		},
	},
	{
		name: "replication needs a MinIO remote target, not an IAM role", aws: "ok", minio: "XMinioAdminRemoteArnInvalid",
		consequence: "replication is checked only by the emulator and make test-aws",
		probe: func(ctx context.Context, c *s3.Client, bucket string) error {
			_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: &s3types.ReplicationConfiguration{
				Role: aws.String("arn:aws:iam::111122223333:role/ws-replication"),
				Rules: []s3types.ReplicationRule{{ID: aws.String("r"), Priority: aws.Int32(1), Status: s3types.ReplicationRuleStatusEnabled,
					Filter: &s3types.ReplicationRuleFilter{Prefix: aws.String("")}, DeleteMarkerReplication: &s3types.DeleteMarkerReplication{Status: s3types.DeleteMarkerReplicationStatusEnabled},
					Destination: &s3types.Destination{Bucket: aws.String("arn:aws:s3:::other")}}}}})
			return err
		},
	},
}

func TestS3Differences(t *testing.T) {
	c := startMinIO(t)
	ctx := context.Background()
	bucket := "wso-differences"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range s3Differences {
		t.Run(d.name, func(t *testing.T) {
			if got := codeOrOK(d.probe(ctx, c, bucket), "ok"); got != d.minio {
				t.Errorf("MinIO now answers %q (AWS: %q; table: %q): update s3Differences and docs/aws.md", got, d.aws, d.minio)
			}
		})
	}
}
