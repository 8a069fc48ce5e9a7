package cloud

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// AWS hands documents back normalised: one-element arrays as strings, Principal "*" as
// {"AWS":"*"}, statements reordered. None of that is drift.
func TestSamePolicyIgnoresNormalisation(t *testing.T) {
	want := bucketPolicy("b", "arn:k")
	normalised := `{"Version":"2012-10-17","Statement":[
	 {"Sid":"DenyUploadsUnderOtherKeys","Effect":"Deny","Principal":{"AWS":"*"},"Action":["s3:PutObject"],"Resource":["arn:aws:s3:::b/*"],
	  "Condition":{"Null":{"s3:x-amz-server-side-encryption":["false"]},"StringNotEquals":{"s3:x-amz-server-side-encryption-aws-kms-key-id":"arn:k"}}},
	 {"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b/*","arn:aws:s3:::b"],
	  "Condition":{"Bool":{"aws:SecureTransport":"false"}}},
	 {"Sid":"DenyUploadsNotEncryptedWithKMS","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
	  "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"},"Null":{"s3:x-amz-server-side-encryption":"false"}}}]}`
	if !samePolicy(normalised, want) {
		t.Error("a normalised copy of the policy counts as drift")
	}
	changed := `{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}`
	if samePolicy(changed, want) {
		t.Error("a changed policy does not count as drift")
	}
}

func TestSameLifecycleIgnoresNormalisation(t *testing.T) {
	want := expiryRules(7)
	got := expiryRules(7)
	// Rule-level prefix in place of an empty filter, rules in another order.
	got[0].Filter, got[0].Prefix = nil, aws.String("") //nolint:staticcheck // the legacy form S3 may answer
	got[0], got[1] = got[1], got[0]
	if !sameLifecycle(got, want) {
		t.Error("a normalised copy of the lifecycle counts as drift")
	}
	shorter := expiryRules(7)
	shorter[0].NoncurrentVersionExpiration = &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(30)}
	if sameLifecycle(shorter, want) {
		t.Error("noncurrent versions kept 30 days does not count as drift")
	}
}
