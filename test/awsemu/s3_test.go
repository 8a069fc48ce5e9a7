package awsemu_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func createBucket(t *testing.T, client *s3.Client, name, region string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: &name}
	if region != regionA {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	if _, err := client.CreateBucket(context.Background(), in); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
}

func putObject(t *testing.T, client *s3.Client, in *s3.PutObjectInput) *s3.PutObjectOutput {
	t.Helper()
	out, err := client.PutObject(context.Background(), in)
	if err != nil {
		t.Fatalf("PutObject(%s/%s): %v", aws.ToString(in.Bucket), aws.ToString(in.Key), err)
	}
	return out
}

func getObject(t *testing.T, client *s3.Client, in *s3.GetObjectInput) (*s3.GetObjectOutput, []byte) {
	t.Helper()
	out, err := client.GetObject(context.Background(), in)
	if err != nil {
		t.Fatalf("GetObject(%s/%s): %v", aws.ToString(in.Bucket), aws.ToString(in.Key), err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read object body: %v", err)
	}
	return out, body
}

func TestBucketLifecycle(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	east, west := s3Client(srv, regionA), s3Client(srv, regionB)

	createBucket(t, east, "ws-primary", regionA)
	createBucket(t, west, "ws-backup", regionB)
	if _, err := east.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ws-owned"), ObjectOwnership: types.ObjectOwnershipBucketOwnerEnforced}); err != nil {
		t.Fatalf("CreateBucket with ObjectOwnership: %v", err)
	}
	ownership, err := east.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String("ws-owned")})
	if err != nil || ownership.OwnershipControls.Rules[0].ObjectOwnership != types.ObjectOwnershipBucketOwnerEnforced {
		t.Errorf("ownership controls set at creation = %+v, %v", ownership, err)
	}
	if _, err := east.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("ws-owned")}); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}

	// us-east-1 keeps its legacy answer to re-creating an owned bucket;
	// every other region says BucketAlreadyOwnedByYou.
	if _, err := east.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ws-primary")}); err != nil {
		t.Errorf("re-creating a us-east-1 bucket: %v", err)
	}
	_, err = west.CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                    aws.String("ws-backup"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(regionB)},
	})
	var owned *types.BucketAlreadyOwnedByYou
	if !errors.As(err, &owned) {
		t.Errorf("re-creating an eu-west-1 bucket: %v, want *types.BucketAlreadyOwnedByYou", err)
	}

	invalid := []struct {
		name       string
		client     *s3.Client
		bucket     string
		constraint types.BucketLocationConstraint
		want       string
	}{
		{"constraint missing outside us-east-1", west, "ws-other", "", "IllegalLocationConstraintException"},
		{"constraint for another region", east, "ws-other", types.BucketLocationConstraint(regionB), "IllegalLocationConstraintException"},
		{"us-east-1 spelled out", east, "ws-other", types.BucketLocationConstraint(regionA), "InvalidLocationConstraint"},
		{"invalid name", east, "Not_A_Bucket", "", "InvalidBucketName"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			in := &s3.CreateBucketInput{Bucket: &tt.bucket}
			if tt.constraint != "" {
				in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: tt.constraint}
			}
			_, err := tt.client.CreateBucket(ctx, in)
			wantCode(t, err, tt.want)
		})
	}

	// GetBucketLocation answers from any region; us-east-1 is "".
	for bucket, want := range map[string]types.BucketLocationConstraint{"ws-primary": "", "ws-backup": types.BucketLocationConstraint(regionB)} {
		out, err := east.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatalf("GetBucketLocation(%s): %v", bucket, err)
		}
		if out.LocationConstraint != want {
			t.Errorf("GetBucketLocation(%s) = %q, want %q", bucket, out.LocationConstraint, want)
		}
	}

	head, err := west.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("ws-backup")})
	if err != nil || aws.ToString(head.BucketRegion) != regionB {
		t.Errorf("HeadBucket = %+v, %v; want region %s", head, err, regionB)
	}
	// A client for the wrong region is redirected, as by S3.
	_, err = east.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("ws-backup")})
	if err == nil || httpStatus(t, err) != http.StatusMovedPermanently {
		t.Errorf("HeadBucket from the wrong region: %v, want HTTP 301", err)
	}
	_, err = east.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("ws-backup")})
	wantCode(t, err, "PermanentRedirect")

	listed, err := east.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	var got [][2]string
	for _, b := range listed.Buckets {
		got = append(got, [2]string{aws.ToString(b.Name), aws.ToString(b.BucketRegion)})
	}
	if diff := cmp.Diff([][2]string{{"ws-backup", regionB}, {"ws-primary", regionA}}, got); diff != "" {
		t.Errorf("ListBuckets (-want +got):\n%s", diff)
	}

	putObject(t, west, &s3.PutObjectInput{Bucket: aws.String("ws-backup"), Key: aws.String("k"), Body: bytes.NewReader([]byte("v"))})
	_, err = west.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("ws-backup")})
	wantCode(t, err, "BucketNotEmpty")
	if _, err := west.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("ws-backup"), Key: aws.String("k")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, err := west.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("ws-backup")}); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}
	_, err = west.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("ws-backup")})
	var notFound *types.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("HeadBucket after delete: %v, want *types.NotFound", err)
	}
	_, err = west.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("ws-backup"), Key: aws.String("k")})
	wantCode(t, err, "NoSuchBucket")
	_, err = west.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("ws-backup")})
	var noBucket *types.NoSuchBucket
	if !errors.As(err, &noBucket) {
		t.Errorf("ListObjectsV2 of a deleted bucket: %v, want *types.NoSuchBucket", err)
	}
	if got := srv.Buckets(); len(got) != 1 || got[0].Name != "ws-primary" || got[0].Region != regionA {
		t.Errorf("Buckets() = %+v", got)
	}
}

func TestBucketSubresources(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionB)
	createBucket(t, client, "ws-data", regionB)
	createBucket(t, client, "ws-replica", regionB)
	bucket := aws.String("ws-data")

	for _, b := range []string{"ws-data", "ws-replica"} {
		if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(b),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		}); err != nil {
			t.Fatalf("PutBucketVersioning(%s): %v", b, err)
		}
	}

	const keyARN = "arn:aws:kms:eu-west-1:000000000000:key/11111111-2222-3333-4444-555555555555"
	const policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::ws-data/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`

	tests := []struct {
		name        string
		missingCode string
		put         func() error
		check       func(t *testing.T) error // fetches and compares; returns the Get error
		del         func() error
	}{
		{
			name:        "encryption",
			missingCode: "ServerSideEncryptionConfigurationNotFoundError",
			put: func() error {
				_, err := client.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: bucket, ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
					Rules: []types.ServerSideEncryptionRule{{
						ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(keyARN)},
						BucketKeyEnabled:                   aws.Bool(true),
					}},
				}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: bucket})
				if err == nil {
					rule := out.ServerSideEncryptionConfiguration.Rules[0]
					if rule.ApplyServerSideEncryptionByDefault.SSEAlgorithm != types.ServerSideEncryptionAwsKms ||
						aws.ToString(rule.ApplyServerSideEncryptionByDefault.KMSMasterKeyID) != keyARN || !aws.ToBool(rule.BucketKeyEnabled) {
						t.Errorf("GetBucketEncryption rule = %+v", rule)
					}
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketEncryption(ctx, &s3.DeleteBucketEncryptionInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "public access block",
			missingCode: "NoSuchPublicAccessBlockConfiguration",
			put: func() error {
				_, err := client.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: bucket, PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{
					BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(false),
				}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: bucket})
				if err == nil {
					c := out.PublicAccessBlockConfiguration
					if !aws.ToBool(c.BlockPublicAcls) || !aws.ToBool(c.IgnorePublicAcls) || !aws.ToBool(c.BlockPublicPolicy) || aws.ToBool(c.RestrictPublicBuckets) {
						t.Errorf("GetPublicAccessBlock = %+v", c)
					}
				}
				return err
			},
			del: func() error {
				_, err := client.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "policy",
			missingCode: "NoSuchBucketPolicy",
			put: func() error {
				_, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bucket, Policy: aws.String(policy)})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bucket})
				if err == nil && aws.ToString(out.Policy) != policy {
					t.Errorf("GetBucketPolicy = %q, want %q", aws.ToString(out.Policy), policy)
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "ownership controls",
			missingCode: "OwnershipControlsNotFoundError",
			put: func() error {
				_, err := client.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: bucket, OwnershipControls: &types.OwnershipControls{
					Rules: []types.OwnershipControlsRule{{ObjectOwnership: types.ObjectOwnershipBucketOwnerEnforced}},
				}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: bucket})
				if err == nil && out.OwnershipControls.Rules[0].ObjectOwnership != types.ObjectOwnershipBucketOwnerEnforced {
					t.Errorf("GetBucketOwnershipControls = %+v", out.OwnershipControls.Rules)
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketOwnershipControls(ctx, &s3.DeleteBucketOwnershipControlsInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "lifecycle",
			missingCode: "NoSuchLifecycleConfiguration",
			put: func() error {
				_, err := client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: bucket, LifecycleConfiguration: &types.BucketLifecycleConfiguration{
					Rules: []types.LifecycleRule{{
						ID:                             aws.String("purge-noncurrent"),
						Status:                         types.ExpirationStatusEnabled,
						Filter:                         &types.LifecycleRuleFilter{Prefix: aws.String("backups/")},
						NoncurrentVersionExpiration:    &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(7)},
						AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)},
					}},
				}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: bucket})
				if err == nil {
					rule := out.Rules[0]
					if aws.ToString(rule.ID) != "purge-noncurrent" || rule.Status != types.ExpirationStatusEnabled ||
						aws.ToString(rule.Filter.Prefix) != "backups/" || aws.ToInt32(rule.NoncurrentVersionExpiration.NoncurrentDays) != 7 ||
						aws.ToInt32(rule.AbortIncompleteMultipartUpload.DaysAfterInitiation) != 1 {
						t.Errorf("GetBucketLifecycleConfiguration rule = %+v", rule)
					}
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "replication",
			missingCode: "ReplicationConfigurationNotFoundError",
			put: func() error {
				_, err := client.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: bucket, ReplicationConfiguration: &types.ReplicationConfiguration{
					Role: aws.String("arn:aws:iam::000000000000:role/replication"),
					Rules: []types.ReplicationRule{{
						ID:                      aws.String("to-replica"),
						Status:                  types.ReplicationRuleStatusEnabled,
						Priority:                aws.Int32(1),
						Filter:                  &types.ReplicationRuleFilter{Prefix: aws.String("")},
						DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusDisabled},
						Destination:             &types.Destination{Bucket: aws.String("arn:aws:s3:::ws-replica")},
					}},
				}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: bucket})
				if err == nil {
					cfg := out.ReplicationConfiguration
					if aws.ToString(cfg.Role) != "arn:aws:iam::000000000000:role/replication" || len(cfg.Rules) != 1 ||
						aws.ToString(cfg.Rules[0].Destination.Bucket) != "arn:aws:s3:::ws-replica" || aws.ToInt32(cfg.Rules[0].Priority) != 1 {
						t.Errorf("GetBucketReplication = %+v", cfg)
					}
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: bucket})
				return err
			},
		},
		{
			name:        "tagging",
			missingCode: "NoSuchTagSet",
			put: func() error {
				_, err := client.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: bucket, Tagging: &types.Tagging{TagSet: []types.Tag{
					{Key: aws.String("workspace"), Value: aws.String("ws-1")},
				}}})
				return err
			},
			check: func(t *testing.T) error {
				out, err := client.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: bucket})
				if err == nil && (len(out.TagSet) != 1 || aws.ToString(out.TagSet[0].Key) != "workspace" || aws.ToString(out.TagSet[0].Value) != "ws-1") {
					t.Errorf("GetBucketTagging = %+v", out.TagSet)
				}
				return err
			},
			del: func() error {
				_, err := client.DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: bucket})
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(t)
			wantCode(t, err, tt.missingCode)
			if status := httpStatus(t, err); status != http.StatusNotFound {
				t.Errorf("missing configuration: HTTP %d, want 404", status)
			}
			if err := tt.put(); err != nil {
				t.Fatalf("put: %v", err)
			}
			if err := tt.check(t); err != nil {
				t.Fatalf("get after put: %v", err)
			}
			if err := tt.del(); err != nil {
				t.Fatalf("delete: %v", err)
			}
			wantCode(t, tt.check(t), tt.missingCode)
			// Deleting what is not there succeeds, as in S3.
			if err := tt.del(); err != nil {
				t.Errorf("second delete: %v", err)
			}
			if err := tt.put(); err != nil {
				t.Fatalf("put again: %v", err)
			}
		})
	}

	snap := srv.Buckets()
	if len(snap[0].Configs) != len(tests) || snap[0].Versioning != "Enabled" {
		t.Errorf("Buckets()[0] = %+v, want %d stored configurations and versioning", snap[0], len(tests))
	}
	if _, err := client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("ws-replica")}); errorCode(t, err) != "NoSuchBucketPolicy" {
		t.Errorf("configurations leak between buckets: %v", err)
	}

	// Invalid documents are rejected with S3's codes.
	rejects := []struct {
		name string
		call func() error
		want string
	}{
		{"policy without statements", func() error {
			_, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bucket, Policy: aws.String(`{"Version":"2012-10-17"}`)})
			return err
		}, "MalformedPolicy"},
		{"duplicate bucket tags", func() error {
			_, err := client.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: bucket, Tagging: &types.Tagging{TagSet: []types.Tag{
				{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("a"), Value: aws.String("2")},
			}}})
			return err
		}, "InvalidTag"},
		{"AES256 with a KMS key", func() error {
			_, err := client.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: bucket, ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
				Rules: []types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256, KMSMasterKeyID: aws.String(keyARN)}}},
			}})
			return err
		}, "InvalidArgument"},
		{"lifecycle rule without action", func() error {
			_, err := client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: bucket, LifecycleConfiguration: &types.BucketLifecycleConfiguration{
				Rules: []types.LifecycleRule{{ID: aws.String("noop"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}}},
			}})
			return err
		}, "InvalidRequest"},
		{"replication to a missing bucket", func() error {
			_, err := client.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: bucket, ReplicationConfiguration: &types.ReplicationConfiguration{
				Role:  aws.String("arn:aws:iam::000000000000:role/replication"),
				Rules: []types.ReplicationRule{{Status: types.ReplicationRuleStatusEnabled, Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::absent")}}},
			}})
			return err
		}, "InvalidRequest"},
		{"unsupported sub-resource", func() error {
			_, err := client.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: bucket})
			return err
		}, "NotImplemented"},
		{"configuration of a missing bucket", func() error {
			_, err := client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String("absent")})
			return err
		}, "NoSuchBucket"},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.want)
		})
	}
}

func TestReplicationRequiresVersioning(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "source", regionA)
	createBucket(t, client, "target", regionA)
	put := func() error {
		_, err := client.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String("source"), ReplicationConfiguration: &types.ReplicationConfiguration{
			Role:  aws.String("arn:aws:iam::000000000000:role/replication"),
			Rules: []types.ReplicationRule{{Status: types.ReplicationRuleStatusEnabled, Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::target")}}},
		}})
		return err
	}
	wantCode(t, put(), "InvalidRequest")
	for _, b := range []string{"source", "target"} {
		wantCode(t, put(), "InvalidRequest")
		if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatalf("PutBucketVersioning(%s): %v", b, err)
		}
	}
	wantCode(t, put(), "")

	// Versioning round-trips, including suspension.
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("target"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatalf("suspend versioning: %v", err)
	}
	for b, want := range map[string]types.BucketVersioningStatus{"source": types.BucketVersioningStatusEnabled, "target": types.BucketVersioningStatusSuspended} {
		out, err := client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b)})
		if err != nil || out.Status != want {
			t.Errorf("GetBucketVersioning(%s) = %+v, %v; want %s", b, out, err, want)
		}
	}
}

func TestObjectSSEKMS(t *testing.T) {
	srv, clk := startWithClock(t)
	ctx := context.Background()
	kc := kmsClient(srv, regionB)
	client := s3Client(srv, regionB)
	keyID := createKey(t, kc, "bucket key")
	keyARN := "arn:aws:kms:eu-west-1:000000000000:key/" + keyID
	if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ws-1"), TargetKeyId: &keyID}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	createBucket(t, client, "ws-1", regionB)
	bucket := aws.String("ws-1")

	// Explicit SSE-KMS headers, by key ID and by alias: S3 records the ARN.
	for _, ref := range []string{keyID, "alias/ws-1"} {
		out := putObject(t, client, &s3.PutObjectInput{
			Bucket: bucket, Key: aws.String("explicit"), Body: bytes.NewReader([]byte("tenant data")),
			ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(ref),
			Metadata: map[string]string{"owner": "ws-1"},
		})
		if out.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != keyARN {
			t.Errorf("PutObject(key %s) echoed %s / %s, want aws:kms / %s", ref, out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId), keyARN)
		}
	}
	got, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("explicit")})
	if string(body) != "tenant data" || got.ServerSideEncryption != types.ServerSideEncryptionAwsKms ||
		aws.ToString(got.SSEKMSKeyId) != keyARN || got.Metadata["owner"] != "ws-1" {
		t.Errorf("GetObject = %q, %s, %s, %v", body, got.ServerSideEncryption, aws.ToString(got.SSEKMSKeyId), got.Metadata)
	}

	// Overwriting without encryption or metadata leaves none of the old
	// object's, as S3 replaces metadata.
	putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("explicit"), Body: bytes.NewReader([]byte("plain"))})
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("explicit")})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if head.ServerSideEncryption != "" || head.SSEKMSKeyId != nil || len(head.Metadata) != 0 {
		t.Errorf("overwritten object kept SSE %q / %v or metadata %v", head.ServerSideEncryption, head.SSEKMSKeyId, head.Metadata)
	}

	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: bucket, Key: aws.String("bad"), Body: bytes.NewReader([]byte("x")),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("alias/absent"),
	})
	wantCode(t, err, "KMS.NotFoundException")

	// Bucket default encryption applies to uploads without SSE headers.
	if _, err := client.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: bucket, ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
		Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String("alias/ws-1")},
			BucketKeyEnabled:                   aws.Bool(true),
		}},
	}}); err != nil {
		t.Fatalf("PutBucketEncryption: %v", err)
	}
	out := putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("default"), Body: bytes.NewReader([]byte("by default"))})
	if out.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != keyARN || !aws.ToBool(out.BucketKeyEnabled) {
		t.Errorf("PutObject with bucket default echoed %s / %s / bucket key %v", out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId), aws.ToBool(out.BucketKeyEnabled))
	}
	head, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("default")})
	if err != nil || head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != keyARN || !aws.ToBool(head.BucketKeyEnabled) {
		t.Errorf("HeadObject of a default-encrypted object = %+v, %v", head, err)
	}

	// Crypto-shredding: once the key is unusable the objects cannot be read,
	// though their metadata still can.
	readDefault := func() error {
		_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("default")})
		return err
	}
	if _, err := kc.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &keyID}); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	wantCode(t, readDefault(), "KMS.DisabledException")
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("default")}); err != nil {
		t.Errorf("HeadObject with a disabled key: %v", err)
	}
	_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("new"), Body: bytes.NewReader([]byte("x"))})
	wantCode(t, err, "KMS.DisabledException")
	if _, err := kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &keyID, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatalf("ScheduleKeyDeletion: %v", err)
	}
	wantCode(t, readDefault(), "KMS.KMSInvalidStateException")
	clk.Step(7 * 24 * time.Hour)
	wantCode(t, readDefault(), "KMS.NotFoundException")
	// The unencrypted object stays readable.
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("explicit")}); string(body) != "plain" {
		t.Errorf("unencrypted object = %q", body)
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionB)
	keyID := createKey(t, kmsClient(srv, regionB), "multipart")
	createBucket(t, client, "ws-large", regionB)

	payload := make([]byte, 12<<20)
	_, _ = rand.Read(payload)
	srv.ResetCalls()
	uploader := manager.NewUploader(client, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
	out, err := uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: aws.String("ws-large"), Key: aws.String("backups/dump.bin"), Body: bytes.NewReader(payload),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(keyID),
	})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if out.UploadID == "" || out.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		t.Errorf("Upload output = %+v, want a multipart upload with SSE-KMS", out)
	}
	calls := srv.Calls()
	for op, want := range map[string]int{"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1, "PutObject": 0} {
		if got := calls[awsemu.Call{Service: "s3", Operation: op, Outcome: awsemu.OutcomeOK}]; got != want {
			t.Errorf("%s calls = %d, want %d (all calls: %v)", op, got, want, calls)
		}
	}

	got, body := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("ws-large"), Key: aws.String("backups/dump.bin")})
	if !bytes.Equal(body, payload) {
		t.Fatalf("downloaded %d bytes differing from the %d uploaded", len(body), len(payload))
	}
	if aws.ToString(got.SSEKMSKeyId) != "arn:aws:kms:eu-west-1:000000000000:key/"+keyID {
		t.Errorf("multipart object key = %q", aws.ToString(got.SSEKMSKeyId))
	}

	// Ranged reads and the downloader work on the assembled object.
	ranged, part := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("ws-large"), Key: aws.String("backups/dump.bin"), Range: aws.String("bytes=10-19")})
	if !bytes.Equal(part, payload[10:20]) || aws.ToString(ranged.ContentRange) != "bytes 10-19/12582912" {
		t.Errorf("ranged GET = %x (%s)", part, aws.ToString(ranged.ContentRange))
	}
	buf := manager.NewWriteAtBuffer(nil)
	if _, err := manager.NewDownloader(client, func(d *manager.Downloader) { d.PartSize = 5 << 20 }).Download(ctx, buf, &s3.GetObjectInput{
		Bucket: aws.String("ws-large"), Key: aws.String("backups/dump.bin"),
	}); err != nil || !bytes.Equal(buf.Bytes(), payload) {
		t.Errorf("Download: %v (equal: %v)", err, bytes.Equal(buf.Bytes(), payload))
	}
}

func TestVersionedDelete(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "versioned", regionA)
	bucket, key := aws.String("versioned"), aws.String("state.json")
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("PutBucketVersioning: %v", err)
	}
	v1 := aws.ToString(putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader([]byte("one"))}).VersionId)
	v2 := aws.ToString(putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader([]byte("second"))}).VersionId)
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("version IDs %q and %q", v1, v2)
	}

	del, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("DeleteObject = %+v, %v; want a delete marker", del, err)
	}
	marker := aws.ToString(del.VersionId)
	_, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
	var noKey *types.NoSuchKey
	if !errors.As(err, &noKey) {
		t.Errorf("GetObject behind a delete marker: %v, want *types.NoSuchKey", err)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: key, VersionId: &v1}); string(body) != "one" {
		t.Errorf("GetObject(v1) = %q", body)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: key, VersionId: &v1})
	if err != nil || aws.ToInt64(head.ContentLength) != 3 || aws.ToString(head.VersionId) != v1 {
		t.Errorf("HeadObject(v1) = length %d version %s, %v; want 3, %s", aws.ToInt64(head.ContentLength), aws.ToString(head.VersionId), err, v1)
	}

	versions, err := client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket})
	if err != nil {
		t.Fatalf("ListObjectVersions: %v", err)
	}
	var ids []string
	for _, v := range versions.Versions {
		ids = append(ids, aws.ToString(v.VersionId))
	}
	if len(versions.DeleteMarkers) != 1 || aws.ToString(versions.DeleteMarkers[0].VersionId) != marker || !aws.ToBool(versions.DeleteMarkers[0].IsLatest) {
		t.Errorf("delete markers = %+v, want latest %s", versions.DeleteMarkers, marker)
	}
	if diff := cmp.Diff([]string{v2, v1}, ids); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}

	// Removing the marker restores v2; the bucket cannot be deleted while
	// any version remains.
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key, VersionId: &marker}); err != nil {
		t.Fatalf("DeleteObject(marker): %v", err)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: key}); string(body) != "second" {
		t.Errorf("GetObject after removing the marker = %q, want second", body)
	}
	_, err = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket})
	wantCode(t, err, "BucketNotEmpty")

	deleted, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: key, VersionId: &v1}, {Key: key, VersionId: &v2},
	}}})
	if err != nil || len(deleted.Deleted) != 2 || len(deleted.Errors) != 0 {
		t.Fatalf("DeleteObjects = %+v, %v", deleted, err)
	}
	listed, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})
	if err != nil || len(listed.Contents) != 0 {
		t.Errorf("ListObjectsV2 after deleting all versions = %+v, %v", listed, err)
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket}); err != nil {
		t.Errorf("DeleteBucket of an emptied versioned bucket: %v", err)
	}
}

func TestListObjectsV2(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "listing", regionA)
	keys := []string{"a/1", "a/2", "b/1", "c"}
	for _, k := range keys {
		putObject(t, client, &s3.PutObjectInput{Bucket: aws.String("listing"), Key: aws.String(k), Body: bytes.NewReader([]byte(k))})
	}
	var got []string
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String("listing"), MaxKeys: aws.Int32(3)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	if diff := cmp.Diff(keys, got); diff != "" {
		t.Errorf("listed keys (-want +got):\n%s", diff)
	}
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("listing"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjectsV2(delimiter): %v", err)
	}
	var prefixes []string
	for _, p := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if diff := cmp.Diff([]string{"a/", "b/"}, prefixes); diff != "" || len(out.Contents) != 1 {
		t.Errorf("common prefixes (-want +got):\n%s; contents %d", diff, len(out.Contents))
	}
}

func TestChecksums(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "sums", regionA)
	bucket := aws.String("sums")

	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256} {
		t.Run(string(alg), func(t *testing.T) {
			key := aws.String("obj-" + string(alg))
			putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader([]byte("checksummed")), ChecksumAlgorithm: alg})
			// The SDK validates the returned checksum against the body.
			out, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: key, ChecksumMode: types.ChecksumModeEnabled})
			sums := []*string{out.ChecksumCRC32, out.ChecksumCRC32C, out.ChecksumCRC64NVME, out.ChecksumSHA1, out.ChecksumSHA256}
			n := 0
			for _, s := range sums {
				if s != nil {
					n++
				}
			}
			if string(body) != "checksummed" || n != 1 || out.ChecksumType != types.ChecksumTypeFullObject {
				t.Errorf("GetObject = %q with %d checksums of type %q, want 1 FULL_OBJECT", body, n, out.ChecksumType)
			}
		})
	}

	_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("corrupt"), Body: bytes.NewReader([]byte("data")), ChecksumCRC32: aws.String("AAAAAA==")})
	wantCode(t, err, "BadDigest")
	_, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("corrupt")})
	var notFound *types.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("an upload with a bad checksum was stored: %v", err)
	}
}

// headerRecorder is an SDK HTTP client that notes request headers of the
// calls it sends.
type headerRecorder struct {
	inner aws.HTTPClient

	mu      sync.Mutex
	headers []http.Header
}

func (h *headerRecorder) Do(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.headers = append(h.headers, r.Header.Clone())
	h.mu.Unlock()
	return h.inner.Do(r)
}

func (h *headerRecorder) last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.headers[len(h.headers)-1]
}

func TestTLSStreamingUploads(t *testing.T) {
	srv := startServer(t, awsemu.Options{TLS: true})
	ctx := context.Background()
	cfg := srv.AWSConfig(regionA)
	rec := &headerRecorder{inner: cfg.HTTPClient}
	cfg.HTTPClient = rec
	client := s3.NewFromConfig(cfg, awsemu.UsePathStyle)
	if len(srv.CertificatePEM()) == 0 {
		t.Fatal("TLS server has no certificate")
	}

	createBucket(t, client, "streamed", regionA)
	small := []byte("streamed with a trailing checksum")
	putObject(t, client, &s3.PutObjectInput{Bucket: aws.String("streamed"), Key: aws.String("small"), Body: bytes.NewReader(small)})
	put := rec.last()
	if put.Get("Content-Encoding") != "aws-chunked" || put.Get("X-Amz-Content-Sha256") != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
		t.Errorf("PutObject over TLS was not aws-chunked: %v", put)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("streamed"), Key: aws.String("small")}); !bytes.Equal(body, small) {
		t.Errorf("GetObject = %q, want %q", body, small)
	}

	large := make([]byte, 11<<20)
	_, _ = rand.Read(large)
	if _, err := manager.NewUploader(client).Upload(ctx, &s3.PutObjectInput{Bucket: aws.String("streamed"), Key: aws.String("large"), Body: bytes.NewReader(large)}); err != nil {
		t.Fatalf("Upload over TLS: %v", err)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("streamed"), Key: aws.String("large")}); !bytes.Equal(body, large) {
		t.Error("multipart object uploaded over TLS differs")
	}
}

func TestUnsupportedObjectSubresource(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "subres", regionA)
	putObject(t, client, &s3.PutObjectInput{Bucket: aws.String("subres"), Key: aws.String("k"), Body: bytes.NewReader([]byte("keep me"))})

	// gofakes3 would treat this as PutObject and overwrite the object.
	_, err := client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("subres"), Key: aws.String("k"), Tagging: &types.Tagging{TagSet: []types.Tag{}}})
	wantCode(t, err, "NotImplemented")
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("subres"), Key: aws.String("k")}); string(body) != "keep me" {
		t.Errorf("object changed to %q", body)
	}
}

func TestListObjectVersionsPagination(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	createBucket(t, client, "history", regionA)
	bucket := aws.String("history")

	// "a" gets a null version from before versioning, then two versions and
	// a delete marker; "b" one version.
	putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("a"), Body: bytes.NewReader([]byte("a0"))})
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("PutBucketVersioning: %v", err)
	}
	var want []string
	for _, body := range []string{"a1", "a2"} {
		want = append(want, "a@"+aws.ToString(putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("a"), Body: bytes.NewReader([]byte(body))}).VersionId))
	}
	del, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String("a")})
	if err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	want = append(want, "a@"+aws.ToString(del.VersionId)+"(marker)")
	want = append([]string{want[2], want[1], want[0]}, "a@null")
	want = append(want, "b@"+aws.ToString(putObject(t, client, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("b"), Body: bytes.NewReader([]byte("b1"))}).VersionId))

	var got []string
	pages := s3.NewListObjectVersionsPaginator(client, &s3.ListObjectVersionsInput{Bucket: bucket, MaxKeys: aws.Int32(2)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectVersions: %v", err)
		}
		// Versions and markers of a page, merged back into S3's order
		// (newest first within a key) by their position in the history.
		entries := map[string]string{}
		for _, v := range page.Versions {
			entries[aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId)] = ""
		}
		for _, m := range page.DeleteMarkers {
			entries[aws.ToString(m.Key)+"@"+aws.ToString(m.VersionId)] = "(marker)"
		}
		for _, w := range want {
			base, _, _ := strings.Cut(w, "(")
			if suffix, ok := entries[base]; ok {
				got = append(got, base+suffix)
				delete(entries, base)
			}
		}
		if len(entries) != 0 {
			t.Errorf("unexpected entries %v", entries)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions across pages (-want +got):\n%s", diff)
	}

	// Removing the delete marker restores the newest version.
	marker := aws.ToString(del.VersionId)
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String("a"), VersionId: &marker}); err != nil {
		t.Fatalf("DeleteObject(marker): %v", err)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("a")}); string(body) != "a2" {
		t.Errorf("restored object = %q, want a2", body)
	}
	if _, body := getObject(t, client, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("a"), VersionId: aws.String("null")}); string(body) != "a0" {
		t.Errorf("null version = %q, want a0", body)
	}
	// DeleteObject with VersionId "null" removes exactly the null version.
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String("a"), VersionId: aws.String("null")}); err != nil {
		t.Fatalf("DeleteObject(null): %v", err)
	}
	_, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("a"), VersionId: aws.String("null")})
	wantCode(t, err, "NoSuchVersion")
	versions, err := client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket, Prefix: aws.String("a")})
	if err != nil || len(versions.Versions) != 2 || len(versions.DeleteMarkers) != 0 {
		t.Errorf("versions of a after removing the null version = %+v, %v; want 2 versions", versions, err)
	}
}

func TestCopyObject(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	client := s3Client(srv, regionA)
	keyID := createKey(t, kmsClient(srv, regionA), "copy")
	createBucket(t, client, "copies", regionA)
	putObject(t, client, &s3.PutObjectInput{
		Bucket: aws.String("copies"), Key: aws.String("src"), Body: bytes.NewReader([]byte("original")),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &keyID, Metadata: map[string]string{"a": "1"},
	})

	// The copy is encrypted per its own request (here: not at all), not
	// like its source.
	if _, err := client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("copies"), Key: aws.String("dst"), CopySource: aws.String("copies/src")}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	out, body := getObject(t, client, &s3.GetObjectInput{Bucket: aws.String("copies"), Key: aws.String("dst")})
	if string(body) != "original" || out.ServerSideEncryption != "" || out.Metadata["a"] != "1" {
		t.Errorf("copy = %q, SSE %q, metadata %v; want original, none, a=1", body, out.ServerSideEncryption, out.Metadata)
	}
	// The copy directive is not metadata of the new object.
	resp, err := http.Head(srv.URL() + "/copies/dst")
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Copy-Source") != "" {
		t.Errorf("HEAD = %d with headers %v", resp.StatusCode, resp.Header)
	}
}
