package awsemu

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

const (
	aliasPrefix         = "alias/"
	reservedAliasPrefix = "alias/aws/"
	maxAliasNameLen     = 256
)

var aliasNamePattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

// validateAliasName applies KMS's alias naming rules; alias/aws/ is reserved
// for AWS managed keys.
func validateAliasName(name string) error {
	if !strings.HasPrefix(name, aliasPrefix) {
		return kmsValidationError(`Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html`)
	}
	if strings.HasPrefix(name, reservedAliasPrefix) {
		return newError(http.StatusBadRequest, "NotAuthorizedException", "Aliases beginning with %s are reserved for AWS managed keys", reservedAliasPrefix)
	}
	if len(name) > maxAliasNameLen || !aliasNamePattern.MatchString(name) {
		return kmsValidationError("1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$", name)
	}
	return nil
}

type aliasInput struct {
	AliasName   string
	TargetKeyId string
}

func (k *kmsService) createAlias(region string, in *aliasInput) (any, error) {
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, err
	}
	key, err := k.resolveKey(region, in.TargetKeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	reg := k.region(region)
	if reg.aliases[in.AliasName] != nil {
		return nil, newError(http.StatusBadRequest, "AlreadyExistsException", "An alias with the name %s already exists", k.aliasARN(region, in.AliasName))
	}
	now := k.clock.Now()
	reg.aliases[in.AliasName] = &kmsAlias{name: in.AliasName, keyID: key.id, created: now, updated: now}
	return empty{}, nil
}

func (k *kmsService) updateAlias(region string, in *aliasInput) (any, error) {
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, err
	}
	reg := k.region(region)
	alias := reg.aliases[in.AliasName]
	if alias == nil {
		return nil, newError(http.StatusBadRequest, "NotFoundException", "Alias %s is not found.", k.aliasARN(region, in.AliasName))
	}
	key, err := k.resolveKey(region, in.TargetKeyId, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireNotPendingDeletion(); err != nil {
		return nil, err
	}
	alias.keyID = key.id
	alias.updated = k.clock.Now()
	return empty{}, nil
}

type deleteAliasInput struct {
	AliasName string
}

func (k *kmsService) deleteAlias(region string, in *deleteAliasInput) (any, error) {
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, err
	}
	reg := k.region(region)
	if reg.aliases[in.AliasName] == nil {
		return nil, newError(http.StatusBadRequest, "NotFoundException", "Alias %s is not found.", k.aliasARN(region, in.AliasName))
	}
	delete(reg.aliases, in.AliasName)
	return empty{}, nil
}

type listAliasesInput struct {
	KeyId  string
	Limit  *int32
	Marker string
}

type aliasListEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string
	CreationDate    epochSeconds
	LastUpdatedDate epochSeconds
}

type listAliasesOutput struct {
	Aliases    []aliasListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

// listAliases lists customer aliases sorted by name, optionally only those of
// one key. AWS would also list the predefined alias/aws/* aliases; the
// emulator has no AWS managed keys, so it lists none.
func (k *kmsService) listAliases(region string, in *listAliasesInput) (any, error) {
	reg := k.region(region)
	filter := ""
	if in.KeyId != "" {
		key, err := k.resolveKey(region, in.KeyId, false)
		if err != nil {
			return nil, err
		}
		filter = key.id
	}
	var aliases []*kmsAlias
	for _, name := range slices.Sorted(maps.Keys(reg.aliases)) {
		if a := reg.aliases[name]; filter == "" || a.keyID == filter {
			aliases = append(aliases, a)
		}
	}
	page, next, err := paginate(aliases, func(a *kmsAlias) string { return a.name }, in.Limit, 100, in.Marker)
	if err != nil {
		return nil, err
	}
	out := listAliasesOutput{Aliases: []aliasListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, a := range page {
		out.Aliases = append(out.Aliases, aliasListEntry{
			AliasName:       a.name,
			AliasArn:        k.aliasARN(region, a.name),
			TargetKeyId:     a.keyID,
			CreationDate:    epochSeconds(a.created),
			LastUpdatedDate: epochSeconds(a.updated),
		})
	}
	return out, nil
}
