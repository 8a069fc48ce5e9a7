package controllers

import (
	"errors"
	"strings"
	"testing"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

func TestVolumeDriverFailure(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/ebs-csi-driver"
	key := cloud.Key{ARN: "arn:aws:kms:eu-west-1:123456789012:key/k"}
	tests := map[string]struct {
		role   string
		access cloud.VolumeDriverAccess
		// wantIn are parts of the message; none means no failure.
		wantIn []string
	}{
		"no role configured: nothing to prove": {access: cloud.VolumeDriverAccess{Refused: []string{"kms:CreateGrant"}}},
		"proven by the key policy":             {role: role},
		"refused": {role: role, access: cloud.VolumeDriverAccess{Refused: []string{"kms:CreateGrant", "kms:Decrypt"}},
			wantIn: []string{"refuses the volume driver's role " + role + " kms:CreateGrant, kms:Decrypt", "roll it back", "config/iam/kms-key-policy.json"}},
		"allowed only through IAM": {role: role, access: cloud.VolumeDriverAccess{Unproven: []string{"kms:DescribeKey"}},
			wantIn: []string{"kms:DescribeKey only through the account", "cannot prove", "aws.kmsKeyPolicy"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			key.VolumeDriver = tt.access
			err := volumeDriverFailure(key, tt.role)
			if len(tt.wantIn) == 0 {
				if err != nil {
					t.Errorf("failure %v, want none", err)
				}
				return
			}
			var ce *concernError
			if !errors.As(err, &ce) || ce.reason != "KeyUnusableByVolumeDriver" || !ce.terminal {
				t.Fatalf("err = %#v, want the terminal KeyUnusableByVolumeDriver", err)
			}
			for _, part := range tt.wantIn {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("message %q lacks %q", err, part)
				}
			}
		})
	}
}
