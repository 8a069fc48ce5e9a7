package crosscheck

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// difference is one way local-kms is known to differ from AWS KMS. probe
// returns what local-kms does; the test asserts it is still what the table
// says, so a local-kms release that changes it fails here and the table (and
// docs/aws.md) is updated instead of the difference going unnoticed.
type difference struct {
	name     string
	aws      string
	localKMS string
	// consequence for the cross-check: what it cannot prove on local-kms.
	consequence string
	probe       func(t *testing.T, c *kms.Client, keyID string) string
}

var kmsDifferences = []difference{
	{
		name:        "CancelKeyDeletion leaves the key Enabled",
		aws:         "Disabled",
		localKMS:    "Enabled",
		consequence: "Ensure's EnableKey after CancelKeyDeletion is a no-op here; on AWS it is what makes the key usable again",
		probe: func(t *testing.T, c *kms.Client, keyID string) string {
			ctx := context.Background()
			if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyID)}); err != nil {
				t.Fatal(err)
			}
			return string(describe(t, c, keyID).KeyState)
		},
	},
	{
		name:        "GetKeyPolicy needs PolicyName",
		aws:         "ok (PolicyName defaults to default)",
		localKMS:    "ValidationException",
		consequence: "none: the operator always names the policy",
		probe: func(_ *testing.T, c *kms.Client, keyID string) string {
			_, err := c.GetKeyPolicy(context.Background(), &kms.GetKeyPolicyInput{KeyId: aws.String(keyID)})
			return codeOrOK(err, "ok (PolicyName defaults to default)")
		},
	},
	{
		name:        "alias names with a dot",
		aws:         "ValidationException (alias names allow letters, digits, /, _ and -)",
		localKMS:    "ok",
		consequence: "an alias prefix with a dot passes here and fails on AWS; the chart's schema must refuse it",
		probe: func(_ *testing.T, c *kms.Client, keyID string) string {
			_, err := c.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String("alias/with.dot"), TargetKeyId: aws.String(keyID)})
			return codeOrOK(err, "ok")
		},
	},
	{
		name:        "no rotation period",
		aws:         "365 (RotationPeriodInDays)",
		localKMS:    "none",
		consequence: "the rotation period cannot be checked here",
		probe: func(t *testing.T, c *kms.Client, keyID string) string {
			out, err := c.GetKeyRotationStatus(context.Background(), &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)})
			if err != nil {
				t.Fatal(err)
			}
			if out.RotationPeriodInDays == nil {
				return "none"
			}
			return "set"
		},
	},
	{
		name:        "a key policy that locks everyone out is accepted",
		aws:         "MalformedPolicyDocumentException (the policy lockout safety check)",
		localKMS:    "ok",
		consequence: "the lockout check of config/iam/kms-key-policy.json is proven only by make test-aws",
		probe: func(_ *testing.T, c *kms.Client, keyID string) string {
			lockout := `{"Version":"2012-10-17","Statement":[{"Sid":"Nobody","Effect":"Allow",` +
				`"Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:Decrypt","Resource":"*"}]}`
			_, err := c.PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String(keyID), PolicyName: aws.String("default"), Policy: aws.String(lockout)})
			return codeOrOK(err, "ok")
		},
	},
	{
		name:        "signatures are not checked",
		aws:         "UnrecognizedClientException",
		localKMS:    "ok",
		consequence: "credential and IAM errors (terminal in cloud.IsTerminal) cannot be produced here",
		probe: func(_ *testing.T, c *kms.Client, keyID string) string {
			_, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)}, func(o *kms.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider("AKIANOSUCHKEY", "not-the-secret", "")
			})
			return codeOrOK(err, "ok")
		},
	},
}

func codeOrOK(err error, ok string) string {
	if err == nil {
		return ok
	}
	if code := errorCode(err); code != "" {
		return code
	}
	return err.Error()
}

// TestKMSDifferences asserts each known difference of local-kms from AWS.
func TestKMSDifferences(t *testing.T) {
	clients := startLocalKMS(t, primary)
	c := clients[primary]
	for _, d := range kmsDifferences {
		t.Run(d.name, func(t *testing.T) {
			key, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.probe(t, c, *key.KeyMetadata.KeyId); got != d.localKMS {
				t.Errorf("local-kms now answers %q (AWS: %q; table: %q): update kmsDifferences and docs/aws.md", got, d.aws, d.localKMS)
			}
		})
	}
}
