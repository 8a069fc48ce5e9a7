package awsemu

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Key states, as reported in KeyMetadata.KeyState.
const (
	keyStateEnabled         = "Enabled"
	keyStateDisabled        = "Disabled"
	keyStatePendingDeletion = "PendingDeletion"
)

// kmsKey is a symmetric KMS key with real AES-256 material held in memory.
type kmsKey struct {
	id, arn, region string
	seq             int // creation order within the emulator

	description   string
	created       time.Time
	state         string
	deletionDate  time.Time // set while PendingDeletion
	pendingWindow int       // days, set while PendingDeletion

	rotationEnabled bool
	rotationPeriod  int       // days
	rotationStart   time.Time // when the current rotation schedule began

	policy      string
	tags        map[string]string
	origin      string
	multiRegion bool
	keySpec     string
	keyUsage    string

	material []byte
}

type kmsAlias struct {
	name             string
	keyID            string
	created, updated time.Time
}

// kmsRegion is the KMS state of one region; keys and aliases of different
// regions never see each other, as in AWS.
type kmsRegion struct {
	keys    map[string]*kmsKey
	aliases map[string]*kmsAlias
}

// region returns the state of the named region after removing keys whose
// deletion date has passed, so every operation observes expiry according to
// the injected clock. Callers hold k.mu.
func (k *kmsService) region(name string) *kmsRegion {
	reg := k.regions[name]
	if reg == nil {
		reg = &kmsRegion{keys: map[string]*kmsKey{}, aliases: map[string]*kmsAlias{}}
		k.regions[name] = reg
	}
	now := k.clock.Now()
	for id, key := range reg.keys {
		if key.state == keyStatePendingDeletion && !now.Before(key.deletionDate) {
			// Deleting a key deletes its aliases too.
			delete(reg.keys, id)
			maps.DeleteFunc(reg.aliases, func(_ string, a *kmsAlias) bool { return a.keyID == id })
		}
	}
	return reg
}

func (k *kmsService) keyARN(region, id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, k.accountID, id)
}

func (k *kmsService) aliasARN(region, name string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", region, k.accountID, name)
}

// resolveKey finds the key that ref designates in region. ref is a key ID or
// key ARN and, where the operation allows it, an alias name or alias ARN. An
// ARN of another region or account is not found, as in AWS. Callers hold k.mu.
func (k *kmsService) resolveKey(region, ref string, allowAlias bool) (*kmsKey, error) {
	if ref == "" {
		return nil, kmsValidationError("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	reg := k.region(region)
	resource := ref
	if strings.HasPrefix(ref, "arn:") {
		parts := strings.SplitN(ref, ":", 6)
		if len(parts) != 6 || parts[2] != serviceKMS {
			return nil, newError(http.StatusBadRequest, "NotFoundException", "Invalid arn")
		}
		if parts[3] != region || parts[4] != k.accountID {
			return nil, newError(http.StatusBadRequest, "NotFoundException", "Invalid arn %s", parts[3])
		}
		resource = parts[5]
		if id, ok := strings.CutPrefix(resource, "key/"); ok {
			resource = id
		} else if !strings.HasPrefix(resource, "alias/") {
			return nil, newError(http.StatusBadRequest, "NotFoundException", "Invalid arn")
		}
	}
	if strings.HasPrefix(resource, "alias/") {
		if !allowAlias {
			return nil, newError(http.StatusBadRequest, "NotFoundException", "Invalid keyId %s", ref)
		}
		alias := reg.aliases[resource]
		if alias == nil {
			return nil, newError(http.StatusBadRequest, "NotFoundException", "Alias %s is not found.", k.aliasARN(region, resource))
		}
		resource = alias.keyID
	}
	key := reg.keys[resource]
	if key == nil {
		return nil, newError(http.StatusBadRequest, "NotFoundException", "Key '%s' does not exist", k.keyARN(region, resource))
	}
	return key, nil
}

// requireUsable enforces the key states in which cryptographic operations
// (and rotation changes) are allowed.
func (key *kmsKey) requireUsable() error {
	switch key.state {
	case keyStateDisabled:
		return newError(http.StatusBadRequest, "DisabledException", "%s is disabled.", key.arn)
	case keyStatePendingDeletion:
		return key.pendingDeletionError()
	}
	return nil
}

// requireNotPendingDeletion enforces the rule that management operations
// (aliases, tags, enable/disable, descriptions) are refused while a key
// awaits deletion.
func (key *kmsKey) requireNotPendingDeletion() error {
	if key.state == keyStatePendingDeletion {
		return key.pendingDeletionError()
	}
	return nil
}

func (key *kmsKey) pendingDeletionError() error {
	return newError(http.StatusBadRequest, "KMSInvalidStateException", "%s is pending deletion.", key.arn)
}

// usableKeyARN resolves ref (key ID, key ARN, alias name or alias ARN) in
// region for S3's SSE-KMS and checks the key can encrypt and decrypt. It
// returns the key ARN, which S3 records on the object, or the KMS error S3
// relays to its caller.
func (k *kmsService) usableKeyARN(region, ref string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, err := k.resolveKey(region, ref, true)
	if err != nil {
		return "", err
	}
	if err := key.requireUsable(); err != nil {
		return "", err
	}
	return key.arn, nil
}

// KeySnapshot is a copy of a KMS key's state for test assertions.
type KeySnapshot struct {
	KeyID       string
	ARN         string
	Region      string
	Description string
	// State is Enabled, Disabled or PendingDeletion. Deleted keys are gone
	// from snapshots, as from the API.
	State        string
	CreationDate time.Time
	// DeletionDate and PendingWindowInDays are set while PendingDeletion.
	DeletionDate         time.Time
	PendingWindowInDays  int
	RotationEnabled      bool
	RotationPeriodInDays int
	Policy               string
	Tags                 map[string]string
	Origin               string
	MultiRegion          bool
	KeySpec              string
	KeyUsage             string
	// Aliases are the alias names pointing at the key, sorted.
	Aliases []string
}

// Keys returns the keys of region in creation order, after applying expiry
// of keys whose deletion date has passed.
func (h *Handler) Keys(region string) []KeySnapshot {
	k := h.kms
	k.mu.Lock()
	defer k.mu.Unlock()
	reg := k.region(region)
	out := make([]KeySnapshot, 0, len(reg.keys))
	for _, key := range reg.sortedKeys() {
		snap := KeySnapshot{
			KeyID:               key.id,
			ARN:                 key.arn,
			Region:              key.region,
			Description:         key.description,
			State:               key.state,
			CreationDate:        key.created,
			DeletionDate:        key.deletionDate,
			PendingWindowInDays: key.pendingWindow,
			RotationEnabled:     key.rotationEnabled,
			Policy:              key.policy,
			Tags:                maps.Clone(key.tags),
			Origin:              key.origin,
			MultiRegion:         key.multiRegion,
			KeySpec:             key.keySpec,
			KeyUsage:            key.keyUsage,
			Aliases:             reg.aliasesOf(key.id),
		}
		if key.rotationEnabled {
			snap.RotationPeriodInDays = key.rotationPeriod
		}
		out = append(out, snap)
	}
	return out
}

func (reg *kmsRegion) sortedKeys() []*kmsKey {
	keys := slices.Collect(maps.Values(reg.keys))
	slices.SortFunc(keys, func(a, b *kmsKey) int { return a.seq - b.seq })
	return keys
}

func (reg *kmsRegion) aliasesOf(keyID string) []string {
	var names []string
	for name, a := range reg.aliases {
		if a.keyID == keyID {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
