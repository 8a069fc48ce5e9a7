// Package aws is the opt-in suite against a real AWS account: the checks a
// user runs before trusting the operator with their account (make test-aws).
// It never runs in CI or in make test: without WORKSPACE_OPERATOR_AWS_TEST=1
// and a region in WORKSPACE_OPERATOR_AWS_REGION every test skips. It needs the
// permissions of config/iam/test-aws.json, creates only keys and buckets it
// names with a random run ID, and removes them when it ends (buckets deleted,
// keys scheduled for deletion after KMS's minimum of 7 days, aliases deleted).
// Credentials and endpoints come from the SDK's own configuration, as the
// operator's do: with VPC endpoints, set AWS_ENDPOINT_URL_KMS and
// AWS_ENDPOINT_URL_S3 as the operator would have them.
package realaws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// The cluster tag, alias prefix and bucket prefix config/iam/test-aws.json is
// scoped to.
const (
	cluster      = "workspace-operator-awstest"
	aliasPrefix  = "workspace-operator-awstest"
	bucketPrefix = "wso-awstest"
)

type account struct {
	region, replicaRegion, replicationRole string
	kms                                    map[string]*kms.Client
	s3                                     map[string]*s3.Client
	keys                                   *cloud.Keys
	buckets                                *cloud.Buckets
	owner                                  cloud.Owner
}

func setup(t *testing.T) *account {
	t.Helper()
	if os.Getenv("WORKSPACE_OPERATOR_AWS_TEST") != "1" {
		t.Skip("the real-AWS suite runs only with WORKSPACE_OPERATOR_AWS_TEST=1 (make test-aws)")
	}
	a := &account{
		region:          os.Getenv("WORKSPACE_OPERATOR_AWS_REGION"),
		replicaRegion:   os.Getenv("WORKSPACE_OPERATOR_AWS_REPLICA_REGION"),
		replicationRole: os.Getenv("WORKSPACE_OPERATOR_AWS_REPLICATION_ROLE_ARN"),
		kms:             map[string]*kms.Client{},
		s3:              map[string]*s3.Client{},
	}
	if a.region == "" {
		t.Skip("set WORKSPACE_OPERATOR_AWS_REGION to the region to test in")
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	a.owner = cloud.Owner{Cluster: cluster, Workspace: "t-" + hex.EncodeToString(id)}
	kmsClients, s3Clients := map[string]cloud.KMS{}, map[string]cloud.S3{}
	for _, region := range []string{a.region, a.replicaRegion} {
		if region == "" {
			continue
		}
		cfg, err := cloud.LoadConfig(context.Background(), region)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.Credentials.Retrieve(context.Background()); err != nil {
			t.Skipf("no AWS credentials: %v", err)
		}
		a.kms[region], a.s3[region] = kms.NewFromConfig(cfg), s3.NewFromConfig(cfg)
		kmsClients[region], s3Clients[region] = a.kms[region], a.s3[region]
	}
	a.keys = cloud.NewKeys(kmsClients, aliasPrefix, "")
	a.buckets = cloud.NewBuckets(s3Clients, bucketPrefix)
	return a
}

// key ensures the run's key in region and removes it when the test ends.
func (a *account) key(t *testing.T, region string) cloud.Key {
	t.Helper()
	ctx := context.Background()
	key, err := a.keys.Ensure(ctx, cloud.KeyRequest{Owner: a.owner, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := a.keys.ScheduleDeletion(ctx, a.owner, region, key.ARN, 7*24*time.Hour); err != nil {
			t.Errorf("clean up key %s: %v", key.ARN, err)
		}
		if _, err := a.kms[region].DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(key.Alias)}); err != nil {
			t.Errorf("clean up alias %s: %v", key.Alias, err)
		}
	})
	return key
}

// bucket ensures a bucket and purges it when the test ends.
func (a *account) bucket(t *testing.T, req cloud.BucketRequest) cloud.Bucket {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		if _, err := a.buckets.Purge(ctx, req.Region, req.Name); err != nil {
			t.Errorf("clean up bucket %s: %v", req.Name, err)
		}
	})
	b, err := a.buckets.Ensure(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func code(err error) string { return cloud.ErrorCode(err) }

// TestKeyOnAWS: Ensure creates and adopts; a cancelled deletion leaves the key
// Disabled on AWS (unlike local-kms) and Ensure enables it again.
func TestKeyOnAWS(t *testing.T) {
	a := setup(t)
	ctx := context.Background()
	key := a.key(t, a.region)
	if again, err := a.keys.Ensure(ctx, cloud.KeyRequest{Owner: a.owner, Region: a.region}); err != nil || len(again.Repaired) > 0 {
		t.Errorf("second Ensure = %+v, %v; want nothing repaired", again, err)
	}
	if _, err := a.keys.ScheduleDeletion(ctx, a.owner, a.region, key.ARN, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	restored, err := a.keys.Ensure(ctx, cloud.KeyRequest{Owner: a.owner, Region: a.region})
	if err != nil || !slices.Equal(restored.Repaired, []string{"scheduled deletion cancelled", "key enabled"}) {
		t.Errorf("Ensure on a pending key = %+v, %v", restored, err)
	}
	out, err := a.kms[a.region].DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key.ARN)})
	if err != nil || out.KeyMetadata.KeyState != "Enabled" {
		t.Errorf("state after Ensure: %+v, %v", out, err)
	}
}

// TestKeyPolicyLockoutRefused: KMS refuses a key policy that would lock the
// caller out, and the operator treats that as terminal.
func TestKeyPolicyLockoutRefused(t *testing.T) {
	a := setup(t)
	key := a.key(t, a.region)
	lockout := `{"Version":"2012-10-17","Statement":[{"Sid":"Nobody","Effect":"Allow",` +
		`"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt","Resource":"*"}]}`
	_, err := a.kms[a.region].PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String(key.ID), PolicyName: aws.String("default"), Policy: aws.String(lockout)})
	if code(err) != "MalformedPolicyDocumentException" || !cloud.IsTerminal(err) {
		t.Errorf("PutKeyPolicy locking the caller out: %v, want terminal MalformedPolicyDocumentException", err)
	}
}

// TestGrants: a grant lets its grantee use the key, and retiring it takes that
// away: what the EBS CSI driver's CreateGrant relies on.
func TestGrants(t *testing.T) {
	a := setup(t)
	ctx := context.Background()
	c := a.kms[a.region]
	key := a.key(t, a.region)
	self, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	grant, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key.ARN),
		GranteePrincipal: aws.String("arn:aws:iam::" + aws.ToString(self.KeyMetadata.AWSAccountId) + ":root"),
		Operations:       []kmstypes.GrantOperation{"GenerateDataKeyWithoutPlaintext", "Decrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(key.ARN)})
	if err != nil || !slices.ContainsFunc(list.Grants, func(g kmstypes.GrantListEntry) bool { return aws.ToString(g.GrantId) == aws.ToString(grant.GrantId) }) {
		t.Errorf("grant %s not listed: %v", aws.ToString(grant.GrantId), err)
	}
	if _, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(key.ARN), GrantId: grant.GrantId}); err != nil {
		t.Errorf("RevokeGrant: %v", err)
	}
}

// TestBucketPolicies: the bucket refuses uploads over plain HTTP, under
// another encryption or another key, and, closed, any upload; Ensure reopens a
// closed bucket (issue 13, row 1); a second Ensure on AWS repairs nothing
// (AWS's read-back of policy, encryption and lifecycle compares equal).
func TestBucketPolicies(t *testing.T) {
	a := setup(t)
	ctx := context.Background()
	c := a.s3[a.region]
	key := a.key(t, a.region)
	req := cloud.BucketRequest{Owner: a.owner, Name: a.buckets.Name(a.owner, a.region), Region: a.region, KeyARN: key.ARN, ExpireAfterDays: 7}
	a.bucket(t, req)
	name := aws.String(req.Name)
	if again, err := a.buckets.Ensure(ctx, req); err != nil || len(again.Repaired) > 0 {
		t.Errorf("second Ensure = %+v, %v; want nothing repaired", again, err)
	}

	put := func(in *s3.PutObjectInput, opts ...func(*s3.Options)) error {
		in.Bucket, in.Key, in.Body = name, aws.String("f"), strings.NewReader("data")
		_, err := c.PutObject(ctx, in, opts...)
		return err
	}
	if err := put(&s3.PutObjectInput{}); err != nil {
		t.Errorf("upload with the bucket's default encryption: %v", err)
	}
	if err := put(&s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAes256}); code(err) != "AccessDenied" {
		t.Errorf("upload under SSE-S3: %v, want AccessDenied", err)
	}
	if err := put(&s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("alias/aws/s3")}); code(err) != "AccessDenied" {
		t.Errorf("upload under another key: %v, want AccessDenied", err)
	}
	plain := func(o *s3.Options) { o.BaseEndpoint = aws.String("http://s3." + a.region + ".amazonaws.com") }
	if err := put(&s3.PutObjectInput{}, plain); code(err) != "AccessDenied" {
		t.Errorf("upload over plain HTTP: %v, want AccessDenied", err)
	}

	if err := a.buckets.Close(ctx, a.region, req.Name); err != nil {
		t.Fatal(err)
	}
	if err := put(&s3.PutObjectInput{}); code(err) != "AccessDenied" {
		t.Errorf("upload to a closed bucket: %v, want AccessDenied", err)
	}
	if _, err := a.buckets.Ensure(ctx, req); err != nil {
		t.Errorf("Ensure reopening a closed bucket: %v", err)
	}
}

// TestBucketNameOfAnotherAccount: a name another account owns is terminal
// BucketNameTaken, not retried forever (issue 13, row 3).
func TestBucketNameOfAnotherAccount(t *testing.T) {
	a := setup(t)
	_, err := a.buckets.Ensure(context.Background(), cloud.BucketRequest{Owner: a.owner, Name: "examplebucket", Region: a.region, KeyARN: "unused"})
	if !cloud.IsTerminal(err) {
		t.Errorf("Ensure on a bucket of another account: %v, want a terminal error", err)
	}
}

// TestReplication: an object written to the primary bucket appears in the
// replica bucket, encrypted under the replica region's key. Needs
// WORKSPACE_OPERATOR_AWS_REPLICA_REGION and a role from config/iam/replication.json
// in WORKSPACE_OPERATOR_AWS_REPLICATION_ROLE_ARN.
func TestReplication(t *testing.T) {
	a := setup(t)
	if a.replicaRegion == "" || a.replicationRole == "" {
		t.Skip("set WORKSPACE_OPERATOR_AWS_REPLICA_REGION and WORKSPACE_OPERATOR_AWS_REPLICATION_ROLE_ARN to test replication")
	}
	ctx := context.Background()
	replicaKey := a.key(t, a.replicaRegion)
	replica := a.bucket(t, cloud.BucketRequest{Owner: a.owner, Name: a.buckets.Name(a.owner, a.replicaRegion), Region: a.replicaRegion, KeyARN: replicaKey.ARN})
	key := a.key(t, a.region)
	source := a.bucket(t, cloud.BucketRequest{Owner: a.owner, Name: a.buckets.Name(a.owner, a.region), Region: a.region, KeyARN: key.ARN,
		Replication: &cloud.Replication{RoleARN: a.replicationRole, DestinationBucket: replica.Name, DestinationKeyARN: replicaKey.ARN}})
	if _, err := a.s3[a.region].PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(source.Name), Key: aws.String("f"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		head, err := a.s3[a.replicaRegion].HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(replica.Name), Key: aws.String("f")})
		if err == nil {
			if aws.ToString(head.SSEKMSKeyId) != replicaKey.ARN {
				t.Errorf("replica encrypted under %s, want %s", aws.ToString(head.SSEKMSKeyId), replicaKey.ARN)
			}
			return
		}
		var nf *s3types.NotFound
		if !errors.As(err, &nf) || time.Now().After(deadline) {
			t.Fatalf("replica of f: %v", err)
		}
		time.Sleep(10 * time.Second)
	}
}

// TestVolumeDriverPreflightOnAWS: the preflight reads the default key policy AWS writes
// as leaving the volume driver to IAM (not proven); with
// WORKSPACE_OPERATOR_AWS_VOLUME_DRIVER_ROLE_ARN (a role that exists: KMS refuses a
// policy naming an unknown principal) the template's statements prove it.
func TestVolumeDriverPreflightOnAWS(t *testing.T) {
	a := setup(t)
	ctx := context.Background()
	key := a.key(t, a.region)
	account := strings.Split(key.ARN, ":")[4]
	role := os.Getenv("WORKSPACE_OPERATOR_AWS_VOLUME_DRIVER_ROLE_ARN")
	if role == "" {
		role = "arn:aws:iam::" + account + ":role/ebs-csi-driver"
	}
	req := cloud.KeyRequest{Owner: a.owner, Region: a.region, ARN: key.ARN, Alias: key.Alias, VolumeDriverRoleARN: role}
	got, err := a.keys.Ensure(ctx, req)
	if err != nil || len(got.VolumeDriver.Refused) > 0 || !slices.Equal(got.VolumeDriver.Unproven, cloud.VolumeDriverActions) {
		t.Errorf("under AWS's default key policy: %+v, %v; want every action left to IAM", got.VolumeDriver, err)
	}
	if os.Getenv("WORKSPACE_OPERATOR_AWS_VOLUME_DRIVER_ROLE_ARN") == "" {
		return
	}
	policy := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"VolumeDriverGrantsForEBS","Effect":"Allow","Principal":{"AWS":"` + role + `"},"Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}},` +
		`{"Sid":"VolumeDriverDataKeys","Effect":"Allow","Principal":{"AWS":"` + role + `"},"Action":["kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}]}`
	if _, err := a.kms[a.region].PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key.ARN), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	// Read back as AWS holds it (normalised), through the operator's default-policy path.
	if got, err := a.keys.Ensure(ctx, req); err != nil || len(got.VolumeDriver.Refused)+len(got.VolumeDriver.Unproven) > 0 {
		t.Errorf("under the template's statements: %+v, %v; want proven", got.VolumeDriver, err)
	}
}
