package awsemu

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	minPendingWindowDays     = 7
	maxPendingWindowDays     = 30
	defaultPendingWindowDays = 30
	minRotationPeriodDays    = 90
	maxRotationPeriodDays    = 2560
	defaultRotationDays      = 365
	maxDescriptionLen        = 8192
	maxPolicyLen             = 32768
	maxTagsPerKey            = 50
	day                      = 24 * time.Hour
)

type kmsTag struct {
	TagKey   string
	TagValue string
}

type multiRegionKey struct {
	Arn    string
	Region string
}

type multiRegionConfiguration struct {
	MultiRegionKeyType string
	PrimaryKey         multiRegionKey
	ReplicaKeys        []multiRegionKey
}

// keyMetadata is the KeyMetadata structure of CreateKey and DescribeKey.
type keyMetadata struct {
	AWSAccountId             string
	KeyId                    string
	Arn                      string
	CreationDate             epochSeconds
	Enabled                  bool
	Description              string
	KeyUsage                 string
	KeyState                 string
	DeletionDate             *epochSeconds `json:",omitempty"`
	Origin                   string
	KeyManager               string
	CustomerMasterKeySpec    string
	KeySpec                  string
	EncryptionAlgorithms     []string
	MultiRegion              bool
	MultiRegionConfiguration *multiRegionConfiguration `json:",omitempty"`
}

func (k *kmsService) metadata(key *kmsKey) keyMetadata {
	md := keyMetadata{
		AWSAccountId:          k.accountID,
		KeyId:                 key.id,
		Arn:                   key.arn,
		CreationDate:          epochSeconds(key.created),
		Enabled:               key.state == keyStateEnabled,
		Description:           key.description,
		KeyUsage:              key.keyUsage,
		KeyState:              key.state,
		DeletionDate:          epochPtr(key.deletionDate),
		Origin:                key.origin,
		KeyManager:            "CUSTOMER",
		CustomerMasterKeySpec: key.keySpec,
		KeySpec:               key.keySpec,
		EncryptionAlgorithms:  []string{"SYMMETRIC_DEFAULT"},
		MultiRegion:           key.multiRegion,
	}
	if key.multiRegion {
		md.MultiRegionConfiguration = &multiRegionConfiguration{
			MultiRegionKeyType: "PRIMARY",
			PrimaryKey:         multiRegionKey{Arn: key.arn, Region: key.region},
			ReplicaKeys:        []multiRegionKey{},
		}
	}
	return md
}

type keyMetadataOutput struct {
	KeyMetadata keyMetadata
}

type createKeyInput struct {
	Policy                         *string
	Description                    string
	KeyUsage                       string
	KeySpec                        string
	CustomerMasterKeySpec          string
	Origin                         string
	CustomKeyStoreId               string
	BypassPolicyLockoutSafetyCheck bool
	Tags                           []kmsTag
	MultiRegion                    bool
}

func (k *kmsService) createKey(region string, in *createKeyInput) (any, error) {
	if len(in.Description) > maxDescriptionLen {
		return nil, kmsValidationError("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d", maxDescriptionLen)
	}
	spec := in.KeySpec
	if spec == "" {
		spec = in.CustomerMasterKeySpec
	} else if in.CustomerMasterKeySpec != "" && in.CustomerMasterKeySpec != spec {
		return nil, kmsValidationError("KeySpec and CustomerMasterKeySpec must not differ")
	}
	if spec == "" {
		spec = "SYMMETRIC_DEFAULT"
	}
	if spec != "SYMMETRIC_DEFAULT" {
		return nil, newError(http.StatusBadRequest, "UnsupportedOperationException", "KeySpec %s is not supported by the emulator; only SYMMETRIC_DEFAULT is", spec)
	}
	usage := in.KeyUsage
	if usage == "" {
		usage = "ENCRYPT_DECRYPT"
	}
	if usage != "ENCRYPT_DECRYPT" {
		return nil, kmsValidationError("KeyUsage %s is not compatible with KeySpec %s", usage, spec)
	}
	origin := in.Origin
	switch origin {
	case "":
		origin = "AWS_KMS"
	case "AWS_KMS":
	case "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE":
		return nil, newError(http.StatusBadRequest, "UnsupportedOperationException", "Origin %s is not supported by the emulator; only AWS_KMS is", origin)
	default:
		return nil, kmsValidationError("1 validation error detected: Value '%s' at 'origin' failed to satisfy constraint: Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL, EXTERNAL_KEY_STORE, AWS_KMS]", origin)
	}
	if in.CustomKeyStoreId != "" {
		return nil, newError(http.StatusBadRequest, "CustomKeyStoreNotFoundException", "Custom key store %s does not exist", in.CustomKeyStoreId)
	}
	policy := k.defaultKeyPolicy()
	if in.Policy != nil {
		if err := validateKeyPolicy(*in.Policy); err != nil {
			return nil, err
		}
		if err := k.checkLockout(*in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
			return nil, err
		}
		policy = *in.Policy
	}
	tags := map[string]string{}
	if err := mergeTags(tags, in.Tags); err != nil {
		return nil, err
	}

	id := uuid.NewString()
	if in.MultiRegion {
		// Multi-Region key IDs are "mrk-" and 32 hex digits, so the same
		// ID can name the primary and its replicas.
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id = "mrk-" + hex.EncodeToString(b)
	}
	material := make([]byte, 32)
	_, _ = rand.Read(material)
	k.nextSeq++
	key := &kmsKey{
		id:          id,
		arn:         k.keyARN(region, id),
		region:      region,
		seq:         k.nextSeq,
		description: in.Description,
		created:     k.clock.Now(),
		state:       keyStateEnabled,
		policy:      policy,
		tags:        tags,
		origin:      origin,
		multiRegion: in.MultiRegion,
		keySpec:     spec,
		keyUsage:    usage,
		material:    material,
	}
	k.region(region).keys[id] = key
	return keyMetadataOutput{KeyMetadata: k.metadata(key)}, nil
}

type keyIDInput struct {
	KeyId       string
	GrantTokens []string
}

func (k *kmsService) describeKey(region string, in *keyIDInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, true)
	if err != nil {
		return nil, err
	}
	if err := k.authorizeByKeyPolicy(key, "kms:DescribeKey"); err != nil {
		return nil, err
	}
	return keyMetadataOutput{KeyMetadata: k.metadata(key)}, nil
}

type listInput struct {
	Limit  *int32
	Marker string
}

type keyListEntry struct {
	KeyId  string
	KeyArn string
}

type listKeysOutput struct {
	Keys       []keyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (k *kmsService) listKeys(region string, in *listInput) (any, error) {
	keys := k.region(region).sortedKeys()
	page, next, err := paginate(keys, func(key *kmsKey) string { return fmt.Sprintf("%020d", key.seq) }, in.Limit, 1000, in.Marker)
	if err != nil {
		return nil, err
	}
	out := listKeysOutput{Keys: []keyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, key := range page {
		out.Keys = append(out.Keys, keyListEntry{KeyId: key.id, KeyArn: key.arn})
	}
	return out, nil
}

type empty struct{}

func (k *kmsService) enableKey(region string, in *keyIDInput) (any, error) {
	return k.setEnabled(region, in.KeyId, keyStateEnabled)
}

func (k *kmsService) disableKey(region string, in *keyIDInput) (any, error) {
	return k.setEnabled(region, in.KeyId, keyStateDisabled)
}

func (k *kmsService) setEnabled(region, ref, state string) (any, error) {
	key, err := k.resolveKey(region, ref, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	key.state = state
	return empty{}, nil
}

type scheduleKeyDeletionInput struct {
	KeyId               string
	PendingWindowInDays *int32
}

type scheduleKeyDeletionOutput struct {
	KeyId               string
	DeletionDate        epochSeconds
	KeyState            string
	PendingWindowInDays int
}

func (k *kmsService) scheduleKeyDeletion(region string, in *scheduleKeyDeletionInput) (any, error) {
	window := defaultPendingWindowDays
	if in.PendingWindowInDays != nil {
		window = int(*in.PendingWindowInDays)
		if window < minPendingWindowDays {
			return nil, kmsValidationError("1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to %d", window, minPendingWindowDays)
		}
		if window > maxPendingWindowDays {
			return nil, kmsValidationError("1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value less than or equal to %d", window, maxPendingWindowDays)
		}
	}
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	key.state = keyStatePendingDeletion
	key.pendingWindow = window
	key.deletionDate = k.clock.Now().Add(time.Duration(window) * day)
	return scheduleKeyDeletionOutput{
		KeyId:               key.arn,
		DeletionDate:        epochSeconds(key.deletionDate),
		KeyState:            key.state,
		PendingWindowInDays: window,
	}, nil
}

type keyARNOutput struct {
	KeyId string
}

func (k *kmsService) cancelKeyDeletion(region string, in *keyIDInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if key.state != keyStatePendingDeletion {
		return nil, newError(http.StatusBadRequest, "KMSInvalidStateException", "%s is not pending deletion.", key.arn)
	}
	// Like AWS, a key rescued from deletion comes back disabled, so that
	// whoever cancels must decide explicitly to use it again.
	key.state = keyStateDisabled
	key.deletionDate = time.Time{}
	key.pendingWindow = 0
	return keyARNOutput{KeyId: key.arn}, nil
}

type updateKeyDescriptionInput struct {
	KeyId       string
	Description string
}

func (k *kmsService) updateKeyDescription(region string, in *updateKeyDescriptionInput) (any, error) {
	if len(in.Description) > maxDescriptionLen {
		return nil, kmsValidationError("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d", maxDescriptionLen)
	}
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	key.description = in.Description
	return empty{}, nil
}

type enableKeyRotationInput struct {
	KeyId                string
	RotationPeriodInDays *int32
}

func (k *kmsService) enableKeyRotation(region string, in *enableKeyRotationInput) (any, error) {
	period := defaultRotationDays
	if in.RotationPeriodInDays != nil {
		period = int(*in.RotationPeriodInDays)
		if period < minRotationPeriodDays || period > maxRotationPeriodDays {
			return nil, kmsValidationError("1 validation error detected: Value '%d' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between %d and %d", period, minRotationPeriodDays, maxRotationPeriodDays)
		}
	}
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireUsable(); err != nil {
		return nil, err
	}
	if !key.rotationEnabled || key.rotationPeriod != period {
		key.rotationStart = k.clock.Now()
	}
	key.rotationEnabled = true
	key.rotationPeriod = period
	return empty{}, nil
}

func (k *kmsService) disableKeyRotation(region string, in *keyIDInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireUsable(); err != nil {
		return nil, err
	}
	key.rotationEnabled = false
	key.rotationPeriod = 0
	key.rotationStart = time.Time{}
	return empty{}, nil
}

type getKeyRotationStatusOutput struct {
	KeyId                string
	KeyRotationEnabled   bool
	RotationPeriodInDays *int          `json:",omitempty"`
	NextRotationDate     *epochSeconds `json:",omitempty"`
}

func (k *kmsService) getKeyRotationStatus(region string, in *keyIDInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	out := getKeyRotationStatusOutput{KeyId: key.arn, KeyRotationEnabled: key.rotationEnabled}
	if key.rotationEnabled {
		period := key.rotationPeriod
		out.RotationPeriodInDays = &period
		out.NextRotationDate = epochPtr(key.rotationStart.Add(time.Duration(period) * day))
	}
	return out, nil
}

type keyPolicyInput struct {
	KeyId                          string
	PolicyName                     string
	Policy                         string
	BypassPolicyLockoutSafetyCheck bool
}

type getKeyPolicyOutput struct {
	Policy     string
	PolicyName string
}

// checkPolicyName accepts the only key policy name KMS has.
func checkPolicyName(name string) error {
	if name != "" && name != "default" {
		return newError(http.StatusBadRequest, "NotFoundException", "No such policy exists: %s", name)
	}
	return nil
}

func (k *kmsService) getKeyPolicy(region string, in *keyPolicyInput) (any, error) {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	return getKeyPolicyOutput{Policy: key.policy, PolicyName: "default"}, nil
}

func (k *kmsService) putKeyPolicy(region string, in *keyPolicyInput) (any, error) {
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	if err := validateKeyPolicy(in.Policy); err != nil {
		return nil, err
	}
	if err := k.checkLockout(in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
		return nil, err
	}
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	key.policy = in.Policy
	return empty{}, nil
}

func (k *kmsService) defaultKeyPolicy() string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`, k.accountID)
}

// authorizeByKeyPolicy evaluates the key policy for a request of the volume driver, as KMS
// does for every request: a Deny refuses it, and so does the absence of an Allow for the
// role or its account (the account's root statement hands the decision to IAM, which the
// emulator grants). The other principals are not evaluated: tests replace key policies
// with ones AWS would lock them out of.
func (k *kmsService) authorizeByKeyPolicy(key *kmsKey, action string) error {
	if !strings.HasSuffix(k.caller.arn, ":role/"+VolumeDriverRoleName) {
		return nil
	}
	doc, err := parsePolicy([]byte(key.policy))
	if err == nil && doc.evaluate(authzRequest{principal: k.caller, action: action, resource: key.arn, context: map[string]string{
		"aws:PrincipalArn": k.caller.arn, "aws:PrincipalAccount": k.caller.account, "kms:CallerAccount": k.caller.account,
	}}) == allowed {
		return nil
	}
	return newError(http.StatusBadRequest, "AccessDeniedException",
		"User: %s is not authorized to perform: %s on resource: %s because no resource-based policy allows the %s action", k.caller.arn, action, key.arn, action)
}

// checkLockout is KMS's policy lockout safety check: a key policy must let the principal
// setting it (or, through IAM, every principal of the account) put the key policy again.
// Keys' policies are otherwise stored, not evaluated.
func (k *kmsService) checkLockout(policy string, bypass bool) error {
	if bypass {
		return nil
	}
	doc, err := parsePolicy([]byte(policy))
	if err == nil && doc.evaluate(authzRequest{principal: k.caller, action: "kms:PutKeyPolicy", resource: "*", context: map[string]string{
		"aws:PrincipalArn": k.caller.arn, "aws:PrincipalAccount": k.caller.account,
	}}) == allowed {
		return nil
	}
	return newError(http.StatusBadRequest, "MalformedPolicyDocumentException",
		"The new key policy will not allow you to update the key policy in the future.")
}

// validateKeyPolicy checks what KMS checks syntactically: a JSON object with
// statements.
func validateKeyPolicy(policy string) error {
	if policy == "" {
		return kmsValidationError("1 validation error detected: Value null at 'policy' failed to satisfy constraint: Member must not be null")
	}
	if len(policy) > maxPolicyLen {
		return kmsValidationError("1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to %d", maxPolicyLen)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return newError(http.StatusBadRequest, "MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future: %v", err)
	}
	if _, ok := doc["Statement"]; !ok {
		return newError(http.StatusBadRequest, "MalformedPolicyDocumentException", "The policy document has no Statement")
	}
	return nil
}

type tagResourceInput struct {
	KeyId string
	Tags  []kmsTag
}

func (k *kmsService) tagResource(region string, in *tagResourceInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	merged := maps.Clone(key.tags)
	if err := mergeTags(merged, in.Tags); err != nil {
		return nil, err
	}
	key.tags = merged
	return empty{}, nil
}

// mergeTags validates tags as KMS does and adds them to dst, overwriting
// values of existing keys.
func mergeTags(dst map[string]string, tags []kmsTag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		if t.TagKey == "" || len(t.TagKey) > 128 || len(t.TagValue) > 256 {
			return kmsValidationError("1 validation error detected: tag key must be 1-128 characters and tag value at most 256 characters")
		}
		if strings.HasPrefix(t.TagKey, "aws:") {
			return newError(http.StatusBadRequest, "TagException", "Tags beginning with aws: are reserved")
		}
		if seen[t.TagKey] {
			return newError(http.StatusBadRequest, "TagException", "Duplicate tag key %s", t.TagKey)
		}
		seen[t.TagKey] = true
		dst[t.TagKey] = t.TagValue
	}
	if len(dst) > maxTagsPerKey {
		return newError(http.StatusBadRequest, "LimitExceededException", "A KMS key can have at most %d tags", maxTagsPerKey)
	}
	return nil
}

type untagResourceInput struct {
	KeyId   string
	TagKeys []string
}

func (k *kmsService) untagResource(region string, in *untagResourceInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	for _, tk := range in.TagKeys {
		delete(key.tags, tk)
	}
	return empty{}, nil
}

type listResourceTagsInput struct {
	KeyId  string
	Limit  *int32
	Marker string
}

type listResourceTagsOutput struct {
	Tags       []kmsTag
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (k *kmsService) listResourceTags(region string, in *listResourceTagsInput) (any, error) {
	key, err := k.resolveKey(region, in.KeyId, false)
	if err != nil {
		return nil, err
	}
	tags := make([]kmsTag, 0, len(key.tags))
	for _, tk := range slices.Sorted(maps.Keys(key.tags)) {
		tags = append(tags, kmsTag{TagKey: tk, TagValue: key.tags[tk]})
	}
	page, next, err := paginate(tags, func(t kmsTag) string { return t.TagKey }, in.Limit, maxTagsPerKey, in.Marker)
	if err != nil {
		return nil, err
	}
	return listResourceTagsOutput{Tags: page, NextMarker: next, Truncated: next != ""}, nil
}
