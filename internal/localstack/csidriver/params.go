//go:build linux

package csidriver

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// StorageClass parameters, spelled as the EBS CSI driver spells them so that the
// operator's StorageClass works unchanged with either driver.
const (
	ParamType      = "type"
	ParamEncrypted = "encrypted"
	ParamKMSKeyID  = "kmsKeyId"

	// passthroughPrefix marks the parameters the Kubernetes sidecars add or strip
	// themselves (csi.storage.k8s.io/fstype, .../pvc/name, secret references).
	passthroughPrefix = "csi.storage.k8s.io/"
)

// ebsTypes are the volume types EBS accepts; the driver records the type and
// gives every type the same directory-backed storage.
var ebsTypes = []string{"gp2", "gp3", "io1", "io2", "sc1", "st1", "standard"}

// kmsKeyARN matches a KMS key or alias ARN in any AWS partition, which is what the
// operator (and local-kms) hand out.
var kmsKeyARN = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$`)

// volumeParams is what the driver keeps of a StorageClass's parameters.
type volumeParams struct {
	Type      string `json:"type,omitempty"`
	Encrypted bool   `json:"encrypted"`
	KMSKeyID  string `json:"kmsKeyId,omitempty"`
}

// parseVolumeParams validates CreateVolume parameters. Unlike EBS, which falls back
// to the account's default aws/ebs key, encrypted without kmsKeyId is refused: the
// operator always names the workspace's own key, and a silent default would hide a
// StorageClass that lost it.
func parseVolumeParams(params map[string]string) (volumeParams, error) {
	var p volumeParams
	encryptedSet := false
	for _, k := range sortedKeys(params) {
		v := params[k]
		switch {
		case k == ParamType:
			if !slices.Contains(ebsTypes, v) {
				return p, fmt.Errorf("parameter %s=%q is not an EBS volume type (one of %s)", k, v, strings.Join(ebsTypes, ", "))
			}
			p.Type = v
		case k == ParamEncrypted:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return p, fmt.Errorf("parameter %s=%q must be \"true\" or \"false\"", k, v)
			}
			p.Encrypted, encryptedSet = b, true
		case k == ParamKMSKeyID:
			if !kmsKeyARN.MatchString(v) {
				return p, fmt.Errorf("parameter %s=%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", k, v)
			}
			p.KMSKeyID = v
		case strings.HasPrefix(k, passthroughPrefix):
		default:
			return p, fmt.Errorf("unknown parameter %q: this driver accepts %s, %s, %s and %s* (the EBS CSI driver's names)",
				k, ParamType, ParamEncrypted, ParamKMSKeyID, passthroughPrefix)
		}
	}
	if p.Encrypted && p.KMSKeyID == "" {
		return p, fmt.Errorf("parameter %s=true needs %s: name the KMS key ARN the volume is encrypted with", ParamEncrypted, ParamKMSKeyID)
	}
	if p.KMSKeyID != "" && !p.Encrypted {
		if encryptedSet {
			return p, fmt.Errorf("parameter %s is set but %s is false: set %s=\"true\" or drop the key", ParamKMSKeyID, ParamEncrypted, ParamEncrypted)
		}
		return p, fmt.Errorf("parameter %s is set without %s=\"true\": EBS ignores the key then, so the volume would not be encrypted", ParamKMSKeyID, ParamEncrypted)
	}
	return p, nil
}

// parseSnapshotParams accepts only the sidecars' own parameters: a
// VolumeSnapshotClass cannot change how a snapshot is encrypted, it keeps the
// source volume's key as an EBS snapshot does.
func parseSnapshotParams(params map[string]string) error {
	for _, k := range sortedKeys(params) {
		if !strings.HasPrefix(k, passthroughPrefix) {
			return fmt.Errorf("unknown snapshot parameter %q: this driver accepts only %s*; a snapshot keeps its volume's encryption key", k, passthroughPrefix)
		}
	}
	return nil
}

// volumeContext is what the driver tells the CO about a volume; it ends up in the
// PersistentVolume's spec.csi.volumeAttributes, where tests and people can read
// which key a volume is encrypted with.
func (p volumeParams) volumeContext() map[string]string {
	ctx := map[string]string{ParamEncrypted: strconv.FormatBool(p.Encrypted)}
	if p.Type != "" {
		ctx[ParamType] = p.Type
	}
	if p.KMSKeyID != "" {
		ctx[ParamKMSKeyID] = p.KMSKeyID
	}
	return ctx
}

// sortedKeys makes the first error reported for a bad map deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
