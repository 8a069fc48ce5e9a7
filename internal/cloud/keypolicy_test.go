package cloud_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

const (
	testKeyARN    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testDriverARN = "arn:aws:iam::123456789012:role/ebs-csi-driver"
)

// policy wraps statements in a key policy document.
func policy(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

const (
	rootStatement   = `{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}`
	driverGrants    = `{"Sid":"Grants","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}`
	driverDataKeys  = `{"Sid":"DataKeys","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}`
	operatorOnly    = `{"Sid":"Operator","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/workspace-operator"},"Action":"kms:*","Resource":"*"}`
	denyGrantsToAll = `{"Sid":"NoGrants","Effect":"Deny","Principal":"*","Action":"kms:CreateGrant","Resource":"*","Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/workspace-operator"}}}`
)

var everyAction = cloud.VolumeDriverActions

func TestEvaluateVolumeDriverAccess(t *testing.T) {
	tests := map[string]struct {
		policy string
		want   cloud.VolumeDriverAccess
	}{
		"KMS's default policy leaves it to IAM": {
			policy: policy(rootStatement),
			want:   cloud.VolumeDriverAccess{Unproven: everyAction},
		},
		"the account as a bare ID is the root": {
			policy: policy(`{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"kms:*","Resource":"*"}`),
			want:   cloud.VolumeDriverAccess{Unproven: everyAction},
		},
		"the template's statements for the driver prove it": {
			policy: policy(rootStatement, driverGrants, driverDataKeys),
		},
		"a single statement, not a list": {
			policy: `{"Version":"2012-10-17","Statement":{"Sid":"All","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":"kms:*","Resource":"*"}}`,
		},
		"no statement for the driver and no root": {
			policy: policy(operatorOnly),
			want:   cloud.VolumeDriverAccess{Refused: everyAction},
		},
		"a Deny wins over the root and over a direct Allow": {
			policy: policy(rootStatement, driverGrants, driverDataKeys, denyGrantsToAll),
			want:   cloud.VolumeDriverAccess{Refused: []string{"kms:CreateGrant"}},
		},
		"a Deny whose condition spares the driver does not apply": {
			policy: policy(rootStatement, driverGrants, driverDataKeys,
				`{"Sid":"OnlyThroughEC2","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotLike":{"kms:ViaService":"ec2.*.amazonaws.com"}}}`),
		},
		"the data-key operations under GrantIsForAWSResource are not allowed": {
			policy: policy(operatorOnly, `{"Sid":"Wrong","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":["kms:CreateGrant","kms:Decrypt","kms:DescribeKey","kms:GenerateDataKeyWithoutPlaintext","kms:ReEncrypt*"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}`),
			want:   cloud.VolumeDriverAccess{Refused: everyAction[1:]},
		},
		"an Allow under a condition the evaluator does not model proves nothing": {
			policy: policy(`{"Sid":"Vpce","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}}}`),
			want:   cloud.VolumeDriverAccess{Refused: everyAction},
		},
		"a Deny under a condition the evaluator does not model counts as denying": {
			policy: policy(rootStatement, driverGrants, driverDataKeys, `{"Sid":"Vpce","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-1"}}}`),
			want:   cloud.VolumeDriverAccess{Refused: []string{"kms:Decrypt"}},
		},
		"a statement for another key does not count": {
			policy: policy(`{"Sid":"Other","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":"kms:*","Resource":"arn:aws:kms:eu-west-1:123456789012:key/other"}`),
			want:   cloud.VolumeDriverAccess{Refused: everyAction},
		},
		"NotAction denies everything it does not list": {
			policy: policy(rootStatement, driverGrants, driverDataKeys, `{"Sid":"ReadOnly","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"NotAction":["kms:Describe*","kms:Decrypt"],"Resource":"*"}`),
			want:   cloud.VolumeDriverAccess{Refused: []string{"kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}},
		},
		"actions compare case-insensitively": {
			policy: policy(`{"Sid":"Lower","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":"KMS:*","Resource":"*"}`),
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := cloud.EvaluateVolumeDriverAccess(tt.policy, testKeyARN, testDriverARN, "eu-west-1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("access (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := cloud.EvaluateVolumeDriverAccess("not json", testKeyARN, testDriverARN, "eu-west-1"); err == nil {
		t.Error("a policy that is not JSON evaluated")
	}
}

// Ensure evaluates the key policy as KMS holds it: KMS's default (read back, as only KMS
// knows the account in it) leaves the driver to IAM; the operator's template, which it
// created the key with and restores, proves it without a read.
func TestEnsureEvaluatesTheVolumeDriversAccess(t *testing.T) {
	driver := "arn:aws:iam::000000000000:role/ebs-csi-driver"
	template := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"Grants","Effect":"Allow","Principal":{"AWS":"` + driver + `"},"Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}},` +
		`{"Sid":"DataKeys","Effect":"Allow","Principal":{"AWS":"` + driver + `"},"Action":["kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}]}`
	tests := map[string]struct {
		policy        string
		want          cloud.VolumeDriverAccess
		wantPolicyGet int
	}{
		"KMS's default policy": {policy: "", want: cloud.VolumeDriverAccess{Unproven: everyAction}, wantPolicyGet: 1},
		"the template":         {policy: template},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, tt.policy)
			key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary, VolumeDriverRoleARN: driver})
			if diff := cmp.Diff(tt.want, key.VolumeDriver, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("volume driver access (-want +got):\n%s", diff)
			}
			var gets int
			for call, n := range e.emu.Calls() {
				if call.Operation == "GetKeyPolicy" {
					gets += n
				}
			}
			if gets != tt.wantPolicyGet {
				t.Errorf("%d GetKeyPolicy calls, want %d", gets, tt.wantPolicyGet)
			}
			if again := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary, ARN: key.ARN, Alias: key.Alias, VolumeDriverRoleARN: driver}); !cmp.Equal(again.VolumeDriver, key.VolumeDriver, cmpopts.EquateEmpty()) {
				t.Errorf("on an existing key: %+v, want %+v", again.VolumeDriver, key.VolumeDriver)
			}
		})
	}
}

// The preflight's verdict agrees with the emulator, which evaluates the key policy for the
// volume driver's own requests as KMS does (it has no CreateGrant or ReEncrypt: those
// rest on the evaluator's table test alone).
func TestVolumeDriverVerdictAgreesWithTheEmulator(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	operator := e.kms[primary]
	driver := kms.NewFromConfig(e.emu.AWSConfigAs(primary, awsemu.VolumeDriverAccessKeyID))
	driverARN := e.emu.PrincipalARN(awsemu.VolumeDriverAccessKeyID)
	blob, err := operator.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(key.ARN), KeySpec: kmstypes.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"kms:DescribeKey": func() error {
			_, err := driver.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key.ARN)})
			return err
		},
		"kms:GenerateDataKeyWithoutPlaintext": func() error {
			_, err := driver.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(key.ARN), KeySpec: kmstypes.DataKeySpecAes256})
			return err
		},
		"kms:Decrypt": func() error {
			_, err := driver.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob.CiphertextBlob})
			return err
		},
	}
	account := func(s string) string { return strings.ReplaceAll(s, "123456789012", "000000000000") }
	for name, p := range map[string]string{
		"KMS's default":             policy(rootStatement),
		"the template":              policy(rootStatement, driverGrants, driverDataKeys),
		"no statement for it":       policy(operatorOnly),
		"a Deny of every data key":  policy(rootStatement, driverDataKeys, `{"Sid":"NoDataKeys","Effect":"Deny","Principal":"*","Action":"kms:GenerateDataKey*","Resource":"*"}`),
		"NotAction denies the rest": policy(rootStatement, `{"Sid":"ReadOnly","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"NotAction":"kms:Describe*","Resource":"*"}`),
		"only under GrantIsForAWS…": policy(operatorOnly, `{"Sid":"Wrong","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ebs-csi-driver"},"Action":"kms:*","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}`),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := operator.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key.ARN), PolicyName: aws.String("default"),
				Policy: aws.String(account(p)), BypassPolicyLockoutSafetyCheck: true}); err != nil {
				t.Fatal(err)
			}
			verdict, err := cloud.EvaluateVolumeDriverAccess(account(p), key.ARN, driverARN, primary)
			if err != nil {
				t.Fatal(err)
			}
			for action, call := range calls {
				err := call()
				if refused := slices.Contains(verdict.Refused, action); refused != (cloud.ErrorCode(err) == "AccessDeniedException") {
					t.Errorf("%s: the preflight says refused=%t, the emulator answers %v", action, refused, err)
				}
			}
		})
	}
}
