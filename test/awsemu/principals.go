package awsemu

import (
	"fmt"
	"net/http"
	"strings"
)

// Identities the emulator tells apart by the access key ID a request is signed with. It
// verifies no signature: the key ID alone says who is calling, which is all that bucket
// and key policies need. Any other key ID is the operator.
const (
	// OperatorAccessKeyID signs as the operator's role (TestAccessKeyID).
	OperatorAccessKeyID = TestAccessKeyID
	// BackupAccessKeyID signs as the backup agent's role.
	BackupAccessKeyID = "AKIAAWSEMUBACKUP0000"
	// RootAccessKeyID signs as the account's root user.
	RootAccessKeyID = "AKIAAWSEMUROOT000000"
	// OtherAccountAccessKeyID signs as the root user of OtherAccountID, a second account
	// with buckets of its own (it shares the emulator's KMS keys, which it never uses).
	OtherAccountAccessKeyID = "AKIAAWSEMUOTHER00000"
	// VolumeDriverAccessKeyID signs as the volume driver's role (the EBS CSI driver's):
	// the one principal whose KMS requests the emulator evaluates against the key policy.
	VolumeDriverAccessKeyID = "AKIAAWSEMUVOLUMEDRV0"
	// OtherAccountID is the second account.
	OtherAccountID = "999999999999"

	// OperatorRoleName and BackupRoleName name the roles behind the access keys.
	OperatorRoleName     = "workspace-operator"
	BackupRoleName       = "workspace-backup"
	VolumeDriverRoleName = "ebs-csi-driver"
)

// principal is who signed a request: aws:PrincipalArn and aws:PrincipalAccount.
type principal struct {
	account string
	arn     string
}

func rootARN(account string) string { return fmt.Sprintf("arn:aws:iam::%s:root", account) }

func (p principal) isRoot() bool { return p.arn == rootARN(p.account) }

// principalOf maps an access key ID to its principal in account (the emulator's own).
func principalOf(accessKeyID, account string) principal {
	switch accessKeyID {
	case BackupAccessKeyID:
		return principal{account: account, arn: fmt.Sprintf("arn:aws:iam::%s:role/%s", account, BackupRoleName)}
	case VolumeDriverAccessKeyID:
		return principal{account: account, arn: fmt.Sprintf("arn:aws:iam::%s:role/%s", account, VolumeDriverRoleName)}
	case RootAccessKeyID:
		return principal{account: account, arn: rootARN(account)}
	case OtherAccountAccessKeyID:
		return principal{account: OtherAccountID, arn: rootARN(OtherAccountID)}
	}
	return principal{account: account, arn: fmt.Sprintf("arn:aws:iam::%s:role/%s", account, OperatorRoleName)}
}

// accessKeyID is the key ID of a SigV4 request, "" for an anonymous one.
func accessKeyID(r *http.Request) string {
	credential := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		_, rest, ok := strings.Cut(auth, "Credential=")
		if !ok {
			return ""
		}
		credential, _, _ = strings.Cut(rest, ",")
	}
	id, _, _ := strings.Cut(strings.TrimSpace(credential), "/")
	return id
}

// PrincipalARN is the ARN (aws:PrincipalArn) of the principal behind an access key ID.
func (h *Handler) PrincipalARN(accessKeyID string) string {
	return principalOf(accessKeyID, h.kms.accountID).arn
}
