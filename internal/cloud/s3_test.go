package cloud_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func ensureBucket(t *testing.T, e *env, req cloud.BucketRequest) cloud.Bucket {
	t.Helper()
	bucket, err := e.buckets.Ensure(context.Background(), req)
	if err != nil {
		t.Fatalf("ensure bucket: %v", err)
	}
	return bucket
}

func TestBucketName(t *testing.T) {
	b := cloud.NewBuckets(nil, "wso")
	name := b.Name(owner, primary)
	if !strings.HasPrefix(name, "wso-acme-") || len(name) > 63 {
		t.Errorf("name %q", name)
	}
	if b.Name(owner, replica) == name || b.Name(cloud.Owner{Cluster: "staging", Workspace: "acme"}, primary) == name {
		t.Error("names must differ by region and cluster")
	}
	long := b.Name(cloud.Owner{Cluster: "prod", Workspace: strings.Repeat("a", 60)}, primary)
	if len(long) > 63 {
		t.Errorf("name of a long workspace is %d characters", len(long))
	}
}

func TestEnsureBucketAppliesEverySecuritySetting(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	e.emu.ResetCalls()
	bucket := ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN})
	if !bucket.Created || bucket.Region != primary || len(bucket.Repaired) != 0 {
		t.Errorf("bucket = %+v", bucket)
	}
	// A new bucket's settings are put, not read back first.
	calls := map[string]int{}
	for call, n := range e.emu.Calls() {
		calls[call.Operation] += n
	}
	wantCalls := map[string]int{"HeadBucket": 1, "CreateBucket": 1, "PutBucketTagging": 1, "PutPublicAccessBlock": 1,
		"PutBucketVersioning": 1, "PutBucketEncryption": 1, "PutBucketPolicy": 1}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("calls to create a bucket (-want +got):\n%s", diff)
	}
	c, name := e.s3[primary], aws.String(bucket.Name)

	location, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: name})
	if err != nil || string(location.LocationConstraint) != primary {
		t.Errorf("location = %v, %v", location, err)
	}
	block, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	b := block.PublicAccessBlockConfiguration
	if !aws.ToBool(b.BlockPublicAcls) || !aws.ToBool(b.IgnorePublicAcls) || !aws.ToBool(b.BlockPublicPolicy) || !aws.ToBool(b.RestrictPublicBuckets) {
		t.Errorf("public access block = %+v", b)
	}
	ownership, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: name})
	if err != nil || ownership.OwnershipControls.Rules[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerEnforced {
		t.Errorf("ownership = %+v, %v", ownership, err)
	}
	versioning, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: name})
	if err != nil || versioning.Status != s3types.BucketVersioningStatusEnabled {
		t.Errorf("versioning = %+v, %v", versioning, err)
	}
	encryption, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	rule := encryption.ServerSideEncryptionConfiguration.Rules[0]
	if rule.ApplyServerSideEncryptionByDefault.SSEAlgorithm != s3types.ServerSideEncryptionAwsKms ||
		aws.ToString(rule.ApplyServerSideEncryptionByDefault.KMSMasterKeyID) != key.ARN || !aws.ToBool(rule.BucketKeyEnabled) {
		t.Errorf("encryption rule = %+v", rule)
	}

	policyOut, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Statement []struct {
			Sid, Effect string
			Action      any
			Condition   map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(policyOut.Policy)), &policy); err != nil {
		t.Fatal(err)
	}
	conditions := map[string]map[string]map[string]string{}
	for _, s := range policy.Statement {
		if s.Effect != "Deny" {
			t.Errorf("statement %s is %s, want Deny", s.Sid, s.Effect)
		}
		conditions[s.Sid] = s.Condition
	}
	want := map[string]map[string]map[string]string{
		"DenyInsecureTransport":          {"Bool": {"aws:SecureTransport": "false"}},
		"DenyUploadsNotEncryptedWithKMS": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}, "Null": {"s3:x-amz-server-side-encryption": "false"}},
		"DenyUploadsUnderOtherKeys": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key.ARN},
			"Null": {"s3:x-amz-server-side-encryption": "false"}},
	}
	if diff := cmp.Diff(want, conditions); diff != "" {
		t.Errorf("policy conditions (-want +got):\n%s", diff)
	}

	tags, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: name})
	if err != nil || len(tags.TagSet) != 3 {
		t.Errorf("tags = %+v, %v", tags, err)
	}

	// An upload that names no encryption is encrypted with the workspace key by default.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: name, Key: aws.String("invoice.pdf"), Body: strings.NewReader("%PDF")}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: name, Key: aws.String("invoice.pdf")})
	if err != nil || head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != key.ARN {
		t.Errorf("object encryption = %s %s, %v", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), err)
	}
	// The policy, evaluated by the emulator as S3 does: the workspace key is accepted when
	// named, any other encryption refused.
	put := func(in s3.PutObjectInput) error {
		in.Bucket, in.Key, in.Body = name, aws.String("x"), strings.NewReader("x")
		_, err := c.PutObject(ctx, &in, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		return err
	}
	if err := put(s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(key.ARN)}); err != nil {
		t.Errorf("upload under the workspace key: %v", err)
	}
	for what, in := range map[string]s3.PutObjectInput{
		"SSE-S3":          {ServerSideEncryption: s3types.ServerSideEncryptionAes256},
		"another key":     {ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("arn:aws:kms:eu-west-1:000000000000:key/other")},
		"aws/s3 (no key)": {ServerSideEncryption: s3types.ServerSideEncryptionAwsKms},
	} {
		if err := put(in); cloud.ErrorCode(err) != "AccessDenied" {
			t.Errorf("upload under %s: %v, want AccessDenied", what, err)
		}
	}
}

func TestEnsureBucketIsIdempotentAndRepairsDrift(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	req := cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN}
	bucket := ensureBucket(t, e, req)
	c, name := e.s3[primary], aws.String(bucket.Name)

	e.emu.ResetCalls()
	again := ensureBucket(t, e, req)
	if again.Created || len(again.Repaired) != 0 {
		t.Errorf("second ensure = %+v", again)
	}
	for call := range e.emu.Calls() {
		if strings.HasPrefix(call.Operation, "Put") || strings.HasPrefix(call.Operation, "Create") || strings.HasPrefix(call.Operation, "Delete") {
			t.Errorf("steady-state ensure made a write: %s", call.Operation)
		}
	}

	// Someone turns the protections off in the console.
	mustDo(t, func() error {
		_, err := c.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: name})
		return err
	})
	mustDo(t, func() error {
		_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: name, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
			Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}},
		}})
		return err
	})
	mustDo(t, func() error {
		_, err := c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: name})
		return err
	})
	mustDo(t, func() error {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: name, VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusSuspended}})
		return err
	})

	repaired := ensureBucket(t, e, req)
	if diff := cmp.Diff([]string{"public access block", "versioning", "default encryption", "bucket policy"}, repaired.Repaired); diff != "" {
		t.Errorf("repaired (-want +got):\n%s", diff)
	}
	if final := ensureBucket(t, e, req); len(final.Repaired) != 0 {
		t.Errorf("still drifting after repair: %v", final.Repaired)
	}
}

func TestEnsureBucketRefusesABucketOfAnotherWorkspace(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	name := e.buckets.Name(owner, primary)
	mustDo(t, func() error {
		_, err := e.s3[primary].CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name),
			CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: primary}})
		return err
	})
	mustDo(t, func() error {
		_, err := e.s3[primary].PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name), Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
			{Key: aws.String(cloud.TagWorkspace), Value: aws.String("someone-else")},
		}}})
		return err
	})
	_, err := e.buckets.Ensure(ctx, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: "arn:aws:kms:eu-west-1:000000000000:key/x"})
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "BucketOwnedElsewhere" {
		t.Errorf("err = %v, want terminal BucketOwnedElsewhere", err)
	}
}

func TestEnsureBucketAdoptsAnUntaggedBucketFromACrash(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	// A non-retryable failure right after CreateBucket stands for a crash at that point.
	e.emu.Inject(awsemu.Fault{Service: "s3", Operation: "PutBucketTagging", Kind: awsemu.AccessDenied, Times: 1})
	if _, err := e.buckets.Ensure(ctx, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN}); err == nil {
		t.Fatal("ensure succeeded although tagging failed")
	}
	e.emu.ClearFaults()
	bucket := ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN})
	if bucket.Name != e.buckets.Name(owner, primary) {
		t.Errorf("bucket %s", bucket.Name)
	}
	if n := len(e.emu.Buckets()); n != 1 {
		t.Errorf("%d buckets, want 1", n)
	}
	// Adopted with its tags: the next cluster or workspace to meet it can tell whose it is.
	tags, err := e.s3[primary].GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(bucket.Name)})
	if err != nil || len(tags.TagSet) != 3 {
		t.Errorf("tags of the adopted bucket = %+v, %v", tags, err)
	}
}

func TestEnsureBucketReplication(t *testing.T) {
	e := newEnv(t, "")
	primaryKey := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	replicaKey := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: replica})
	replicaBucket := ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, replica), Region: replica, KeyARN: replicaKey.ARN})
	replication := &cloud.Replication{RoleARN: "arn:aws:iam::000000000000:role/replication", DestinationBucket: replicaBucket.Name, DestinationKeyARN: replicaKey.ARN}
	bucket := ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: primaryKey.ARN, Replication: replication})

	out, err := e.s3[primary].GetBucketReplication(context.Background(), &s3.GetBucketReplicationInput{Bucket: aws.String(bucket.Name)})
	if err != nil {
		t.Fatal(err)
	}
	rule := out.ReplicationConfiguration.Rules[0]
	if aws.ToString(rule.Destination.Bucket) != "arn:aws:s3:::"+replicaBucket.Name ||
		aws.ToString(rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID) != replicaKey.ARN ||
		rule.SourceSelectionCriteria.SseKmsEncryptedObjects.Status != s3types.SseKmsEncryptedObjectsStatusEnabled {
		t.Errorf("replication rule = %+v", rule)
	}
	if again := ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: primaryKey.ARN, Replication: replication}); len(again.Repaired) != 0 {
		t.Errorf("replication repaired again: %v", again.Repaired)
	}
}

func mustDo(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureBackupBucketExpiresObjects(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	name := e.buckets.BackupName(owner, primary)
	if name == e.buckets.Name(owner, primary) {
		t.Fatal("backup and files buckets share a name")
	}
	req := cloud.BucketRequest{Owner: owner, Name: name, Region: primary, KeyARN: key.ARN, ExpireAfterDays: 7}
	ensureBucket(t, e, req)

	out, err := e.s3[primary].GetBucketLifecycleConfiguration(context.Background(), &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Rules) != 2 {
		t.Fatalf("rules = %+v", out.Rules)
	}
	expire := out.Rules[0]
	if aws.ToInt32(expire.Expiration.Days) != 7 || aws.ToInt32(expire.NoncurrentVersionExpiration.NoncurrentDays) != 1 ||
		aws.ToInt32(expire.AbortIncompleteMultipartUpload.DaysAfterInitiation) != 1 {
		t.Errorf("expiry rule = %+v", expire)
	}
	if !aws.ToBool(out.Rules[1].Expiration.ExpiredObjectDeleteMarker) {
		t.Errorf("delete marker rule = %+v", out.Rules[1])
	}
	if again := ensureBucket(t, e, req); len(again.Repaired) != 0 {
		t.Errorf("lifecycle repaired again: %v", again.Repaired)
	}
	req.ExpireAfterDays = 3
	if shorter := ensureBucket(t, e, req); len(shorter.Repaired) != 1 || shorter.Repaired[0] != "lifecycle" {
		t.Errorf("lowering retention repaired %v, want the lifecycle", shorter.Repaired)
	}
}

// A name owned by another account: HeadBucket answers 403 without a body ("Forbidden"),
// which no retry will change.
func TestEnsureBucketReportsANameTakenByAnotherAccount(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	name := e.buckets.Name(owner, primary)
	other := s3.NewFromConfig(e.emu.AWSConfigAs(primary, awsemu.OtherAccountAccessKeyID), awsemu.UsePathStyle)
	mustDo(t, func() error {
		_, err := other.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name),
			CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: primary}})
		return err
	})
	_, err := e.buckets.Ensure(ctx, cloud.BucketRequest{Owner: owner, Name: name, Region: primary, KeyARN: "arn:aws:kms:eu-west-1:000000000000:key/x"})
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "BucketNameTaken" {
		t.Errorf("err = %v, want terminal BucketNameTaken", err)
	}
}
