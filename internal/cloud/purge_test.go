package cloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func TestCloseRefusesWritesAndEnsureReopens(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	req := cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN}
	ensureBucket(t, e, req)

	if err := e.buckets.Close(ctx, primary, req.Name); err != nil {
		t.Fatal(err)
	}
	policy, err := e.s3[primary].GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(req.Name)})
	if err != nil || !strings.Contains(aws.ToString(policy.Policy), "WorkspaceDeletedDenyWrites") {
		t.Fatalf("closed policy = %v, %v", aws.ToString(policy.Policy), err)
	}
	// The emulator evaluates the closed policy: no more uploads, but the operator (not
	// only the account's root user) can still reopen the bucket.
	_, err = e.s3[primary].PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(req.Name), Key: aws.String("late"), Body: strings.NewReader("x")})
	if cloud.ErrorCode(err) != "AccessDenied" {
		t.Errorf("upload into a closed bucket: %v, want AccessDenied", err)
	}
	reopened := ensureBucket(t, e, req)
	if len(reopened.Repaired) != 1 || reopened.Repaired[0] != "bucket policy" {
		t.Errorf("reopen repaired %v, want the bucket policy", reopened.Repaired)
	}
	if err := e.buckets.Close(ctx, primary, "no-such-bucket"); err != nil {
		t.Errorf("closing a bucket that is gone: %v", err)
	}
}

func TestPurgeDeletesEveryVersionAndTheBucket(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	name := e.buckets.Name(owner, primary)
	ensureBucket(t, e, cloud.BucketRequest{Owner: owner, Name: name, Region: primary, KeyARN: key.ARN})
	c := e.s3[primary]
	for i := range 3 {
		for v := range 2 {
			mustDo(t, func() error {
				_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(name), Key: aws.String(fmt.Sprintf("f%d", i)), Body: strings.NewReader(fmt.Sprint(v))})
				return err
			})
		}
	}
	mustDo(t, func() error {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: aws.String("f0")})
		return err
	})

	deleted, err := e.buckets.Purge(ctx, primary, name)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 7 {
		t.Errorf("deleted %d versions and markers, want 6 versions and 1 delete marker", deleted)
	}
	if exists, err := e.buckets.Exists(ctx, primary, name); err != nil || exists {
		t.Errorf("bucket exists = %v, %v after the purge", exists, err)
	}
	if again, err := e.buckets.Purge(ctx, primary, name); err != nil || again != 0 {
		t.Errorf("purging again = %d, %v; want nothing to do", again, err)
	}
}

func TestDescribeKeyThroughDeletion(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	state, err := e.keys.Describe(ctx, primary, key.ARN)
	if err != nil || state.State != "Enabled" {
		t.Fatalf("describe = %+v, %v", state, err)
	}
	date, err := e.keys.ScheduleDeletion(ctx, owner, primary, key.ARN, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	state, err = e.keys.Describe(ctx, primary, key.ARN)
	if err != nil || state.State != "PendingDeletion" || !state.DeletionDate.Equal(*date) {
		t.Errorf("describe = %+v, %v; want pending deletion at %s", state, err, date)
	}
}

// A bucket closed by an earlier version, whose policy denies s3:PutBucketPolicy to every
// principal: only the root user can reopen it, and the operator says so.
func TestEnsureReportsABucketPolicyOnlyRootCanChange(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	req := cloud.BucketRequest{Owner: owner, Name: e.buckets.Name(owner, primary), Region: primary, KeyARN: key.ARN}
	ensureBucket(t, e, req)
	root := s3.NewFromConfig(e.emu.AWSConfigAs(primary, awsemu.RootAccessKeyID), awsemu.UsePathStyle)
	legacy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"WorkspaceDeletedDenyWrites","Effect":"Deny","Principal":"*","Action":["s3:PutObject","s3:PutBucketPolicy"],"Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, req.Name)
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(req.Name), Policy: aws.String(legacy)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.buckets.Ensure(ctx, req)
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "BucketPolicyLocked" {
		t.Errorf("err = %v, want terminal BucketPolicyLocked", err)
	}
}
