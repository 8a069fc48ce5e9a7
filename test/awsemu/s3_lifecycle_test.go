package awsemu_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
)

// versionsOf lists a bucket's versions and delete markers as "key@body" and "key@marker",
// newest first per key.
func versionsOf(t *testing.T, client *s3.Client, bucket string) []string {
	t.Helper()
	out, err := client.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range out.Versions {
		obj, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: v.Key, VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(obj.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, aws.ToString(v.Key)+"@"+string(body))
	}
	for _, m := range out.DeleteMarkers {
		got = append(got, aws.ToString(m.Key)+"@marker")
	}
	return got
}

// Lifecycle rules run on the injected clock, as S3 runs them: at the midnight UTC after
// an object's time plus the rule's days. These are the operator's backup rules.
func TestLifecycleExpiresOnTheInjectedClock(t *testing.T) {
	srv, clk := startWithClock(t) // epoch: 2026-01-01 12:00 UTC
	client := s3Client(srv, regionA)
	ctx := context.Background()
	bucket := "lifecycle"
	createBucket(t, client, bucket, regionA)
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: &bucket,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{
			{ID: aws.String("expire"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("backups/")},
				Expiration:                  &types.LifecycleExpiration{Days: aws.Int32(7)},
				NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(1)}},
			{ID: aws.String("markers"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
				Expiration: &types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(true)}},
		}}}); err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) {
		putObject(t, client, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader(body)})
	}
	put("backups/a", "v1")
	put("other/b", "kept")
	clk.Step(time.Hour) // 13:00
	put("backups/a", "v2")

	steps := []struct {
		at   time.Time
		want []string
	}{
		// v1 is noncurrent from 13:00 on the 1st: due at midnight after the 2nd 13:00.
		{time.Date(2026, 1, 2, 23, 59, 0, 0, time.UTC), []string{"backups/a@v2", "backups/a@v1", "other/b@kept"}},
		{time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC), []string{"backups/a@v2", "other/b@kept"}},
		// v2, current since the 1st 13:00, expires at midnight after the 8th 13:00: a delete marker.
		{time.Date(2026, 1, 8, 23, 0, 0, 0, time.UTC), []string{"backups/a@v2", "other/b@kept"}},
		{time.Date(2026, 1, 9, 0, 0, 0, 0, time.UTC), []string{"backups/a@v2", "other/b@kept", "backups/a@marker"}},
		// v2 noncurrent from the 9th 00:00 goes on the 10th; the marker, alone, with it.
		{time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), []string{"other/b@kept"}},
	}
	for _, step := range steps {
		clk.SetTime(step.at)
		if diff := cmp.Diff(step.want, versionsOf(t, client, bucket)); diff != "" {
			t.Errorf("at %s (-want +got):\n%s", step.at.Format(time.RFC3339), diff)
		}
	}
}
