package awsemu_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func s3ClientAs(srv *awsemu.Server, region, accessKeyID string) *s3.Client {
	return s3.NewFromConfig(srv.AWSConfigAs(region, accessKeyID), awsemu.UsePathStyle, noS3Retries)
}

func putPolicy(t *testing.T, c *s3.Client, bucket string, statements ...map[string]any) error {
	t.Helper()
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	_, err := c.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(string(doc))})
	return err
}

func putObjectWith(c *s3.Client, bucket string, in s3.PutObjectInput) error {
	in.Bucket, in.Key, in.Body = aws.String(bucket), aws.String("k"), strings.NewReader("x")
	_, err := c.PutObject(context.Background(), &in)
	return err
}

func TestBucketPolicyIsEnforced(t *testing.T) {
	srv := startServer(t, awsemu.Options{StrictTransport: true})
	ctx := context.Background()
	operator := s3ClientAs(srv, regionB, awsemu.OperatorAccessKeyID)
	root := s3ClientAs(srv, regionB, awsemu.RootAccessKeyID)
	backup := s3ClientAs(srv, regionB, awsemu.BackupAccessKeyID)
	if _, err := operator.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt"), CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: regionB}}); err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:s3:::bkt"

	// Plain HTTP is insecure transport under StrictTransport.
	if err := putPolicy(t, operator, "bkt", map[string]any{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": []string{arn, arn + "/*"},
		"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, putObjectWith(operator, "bkt", s3.PutObjectInput{}), "AccessDenied")
	// Only the root user may still replace the policy that locks everyone out.
	wantCode(t, putPolicy(t, operator, "bkt", map[string]any{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": arn + "/*"}), "AccessDenied")
	keyPolicy := []map[string]any{
		{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn + "/*",
			"Condition": map[string]any{"StringNotEquals": map[string]string{"s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:good"},
				"Null": map[string]string{"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"}}},
		{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn + "/*",
			"Condition": map[string]any{"StringNotEqualsIfExists": map[string]string{"s3:x-amz-server-side-encryption": "aws:kms"}}},
		{"Effect": "Deny", "Principal": "*", "Action": []string{"s3:PutBucketPolicy"}, "Resource": arn,
			"Condition": map[string]any{"ArnNotEquals": map[string]string{"aws:PrincipalArn": srv.PrincipalARN(awsemu.OperatorAccessKeyID)}}},
	}
	if err := putPolicy(t, root, "bkt", keyPolicy...); err != nil {
		t.Fatalf("root replacing a policy that denies it: %v", err)
	}

	// SSE condition keys. A key absent from the request satisfies ...IfExists and the
	// negated operators, as in AWS: the policy above denies uploads without an SSE header.
	wantCode(t, putObjectWith(operator, "bkt", s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("arn:bad")}), "AccessDenied")
	wantCode(t, putObjectWith(operator, "bkt", s3.PutObjectInput{}), "AccessDenied")
	wantCode(t, putObjectWith(operator, "bkt", s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAes256}), "AccessDenied")
	if err := putObjectWith(operator, "bkt", s3.PutObjectInput{ServerSideEncryption: s3types.ServerSideEncryptionAwsKms}); err != nil {
		t.Errorf("upload under SSE-KMS without a key ID (Null false): %v", err)
	}
	// aws:PrincipalArn: the backup role may not replace the policy, the operator may.
	wantCode(t, putPolicy(t, backup, "bkt", keyPolicy...), "AccessDenied")
	if err := putPolicy(t, operator, "bkt", keyPolicy...); err != nil {
		t.Errorf("the exempted principal replacing the policy: %v", err)
	}
}

// A bucket name owned by another account: HeadBucket answers 403 without a body, and
// CreateBucket BucketAlreadyExists.
func TestBucketOfAnotherAccount(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	other := s3ClientAs(srv, regionB, awsemu.OtherAccountAccessKeyID)
	ours := s3ClientAs(srv, regionB, awsemu.OperatorAccessKeyID)
	create := &s3.CreateBucketInput{Bucket: aws.String("taken"), CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: regionB}}
	if _, err := other.CreateBucket(ctx, create); err != nil {
		t.Fatal(err)
	}
	_, err := ours.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("taken")})
	wantCode(t, err, "Forbidden")
	_, err = ours.CreateBucket(ctx, create)
	wantCode(t, err, "BucketAlreadyExists")
	if _, err := other.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("taken")}); err != nil {
		t.Errorf("the owner's HeadBucket: %v", err)
	}
}
