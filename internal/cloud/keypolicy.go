package cloud

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// VolumeDriverActions are the KMS actions EBS performs with a volume's key on behalf of
// the role that calls CreateVolume (the EBS CSI driver's): a grant for the instance the
// volume attaches to, the volume's data key, and its decryption and re-encryption.
var VolumeDriverActions = []string{
	"kms:CreateGrant",
	"kms:DescribeKey",
	"kms:GenerateDataKeyWithoutPlaintext",
	"kms:Decrypt",
	"kms:ReEncryptFrom",
	"kms:ReEncryptTo",
}

// VolumeDriverAccess is what a key policy says about the volume driver's use of the key.
type VolumeDriverAccess struct {
	// Refused lists the actions the key policy denies the driver's role, or allows it
	// under no statement: EC2 would accept a volume under the key and then roll it back.
	Refused []string
	// Unproven lists the actions allowed only through the account's root principal: the
	// role's own IAM policy decides, which the operator cannot read.
	Unproven []string
}

// Usable reports whether the key policy lets the driver use the key, at least through IAM.
func (a VolumeDriverAccess) Usable() bool { return len(a.Refused) == 0 }

// EvaluateVolumeDriverAccess evaluates a key policy for the requests EBS makes with the
// key when roleARN creates a volume in region: CreateGrant with
// kms:GrantIsForAWSResource, and the data-key operations, all through EC2
// (kms:ViaService). It reads the key policy only: what IAM, an SCP or a permissions
// boundary says about the role is invisible to it, which is why an allow through the
// account root is Unproven rather than proven. A condition on a key it does not model
// makes an Allow count for nothing and a Deny count as denying.
func EvaluateVolumeDriverAccess(policy, keyARN, roleARN, region string) (VolumeDriverAccess, error) {
	var doc struct {
		Statement statements
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return VolumeDriverAccess{}, fmt.Errorf("key policy of %s is not a policy document: %w", keyARN, err)
	}
	account := arnAccount(roleARN)
	var access VolumeDriverAccess
	for _, action := range VolumeDriverActions {
		ctx := map[string]string{
			"aws:principalarn":     roleARN,
			"aws:principalaccount": account,
			"kms:calleraccount":    account,
			"kms:viaservice":       "ec2." + region + ".amazonaws.com",
		}
		if action == "kms:CreateGrant" {
			ctx["kms:grantisforawsresource"] = "true"
		}
		var direct, throughRoot, denied bool
		for _, s := range doc.Statement {
			principal := s.principal(roleARN, account)
			if principal == noMatch || !s.matchesAction(action) || !s.matchesResource(keyARN) {
				continue
			}
			applies, known := s.conditionsHold(ctx)
			switch {
			case s.Effect == "Deny" && (applies || !known):
				denied = true
			case s.Effect == "Allow" && applies && known && principal == rootMatch:
				throughRoot = true
			case s.Effect == "Allow" && applies && known:
				direct = true
			}
		}
		switch {
		case denied || (!direct && !throughRoot):
			access.Refused = append(access.Refused, action)
		case !direct:
			access.Unproven = append(access.Unproven, action)
		}
	}
	return access, nil
}

type principalMatch int

const (
	noMatch principalMatch = iota
	// rootMatch: the statement names the account, which delegates to IAM policies.
	rootMatch
	directMatch
)

type statement struct {
	Effect       string
	Principal    json.RawMessage
	NotPrincipal json.RawMessage
	Action       stringList
	NotAction    stringList
	Resource     stringList
	NotResource  stringList
	Condition    map[string]map[string]stringList
}

type statements []statement

// UnmarshalJSON accepts a single statement as well as a list, as IAM does.
func (s *statements) UnmarshalJSON(b []byte) error {
	var one statement
	if json.Unmarshal(b, &one) == nil && len(b) > 0 && b[0] == '{' {
		*s = statements{one}
		return nil
	}
	var many []statement
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = stringList{one}
		return nil
	}
	var many []any
	if err := json.Unmarshal(b, &many); err != nil {
		var single any
		if err := json.Unmarshal(b, &single); err != nil {
			return err
		}
		many = []any{single}
	}
	for _, v := range many {
		*l = append(*l, fmt.Sprint(v)) // Bool conditions may be JSON booleans
	}
	return nil
}

// principals is a Principal element's AWS principals; "*" for anyone.
func principals(raw json.RawMessage) []string {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return []string{star}
	}
	var byType map[string]stringList
	if json.Unmarshal(raw, &byType) != nil {
		return nil
	}
	return byType["AWS"]
}

// principal says how the statement's Principal (or NotPrincipal) covers the role.
func (s statement) principal(roleARN, account string) principalMatch {
	match := func(list []string) principalMatch {
		best := noMatch
		for _, p := range list {
			switch p {
			case "*", roleARN:
				return directMatch
			case account, "arn:aws:iam::" + account + ":root":
				best = rootMatch
			}
		}
		return best
	}
	if len(s.NotPrincipal) > 0 {
		if match(principals(s.NotPrincipal)) != noMatch {
			return noMatch
		}
		return directMatch
	}
	return match(principals(s.Principal))
}

func (s statement) matchesAction(action string) bool {
	matches := func(list stringList) bool {
		return slices.ContainsFunc(list, func(pattern string) bool { return wildcard(pattern, action) })
	}
	if len(s.NotAction) > 0 {
		return !matches(s.NotAction)
	}
	return matches(s.Action)
}

func (s statement) matchesResource(keyARN string) bool {
	matches := func(list stringList) bool {
		return slices.ContainsFunc(list, func(pattern string) bool { return wildcard(pattern, keyARN) })
	}
	if len(s.NotResource) > 0 {
		return !matches(s.NotResource)
	}
	// In a key policy, the resource is the key itself; "*" is what KMS documents.
	return len(s.Resource) == 0 || matches(s.Resource)
}

// wildcard matches an IAM pattern (* and ?), case-insensitively as IAM compares actions.
func wildcard(pattern, value string) bool {
	return like(strings.ToLower(pattern), strings.ToLower(value))
}

// like is IAM's StringLike: * matches any run of characters, '/' included; ? matches one.
func like(pattern, value string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for i := len(value); i >= 0; i-- {
				if like(pattern[1:], value[i:]) {
					return true
				}
			}
			return false
		case '?':
			if value == "" {
				return false
			}
		default:
			if value == "" || value[0] != pattern[0] {
				return false
			}
		}
		pattern, value = pattern[1:], value[1:]
	}
	return value == ""
}

// conditionsHold evaluates the statement's conditions against ctx (lower-case keys).
// known is false when one of them uses an operator or key this evaluator does not model.
func (s statement) conditionsHold(ctx map[string]string) (holds, known bool) {
	holds = true
	for op, byKey := range s.Condition {
		base, ifExists := strings.CutSuffix(op, "IfExists")
		for key, values := range byKey {
			key = strings.ToLower(key)
			actual, present := ctx[key]
			if !present && !modelledAbsent(key) {
				return false, false
			}
			ok, modelled := evalCondition(base, actual, present, values)
			if !modelled {
				return false, false
			}
			if !present && ifExists {
				ok = true
			}
			holds = holds && ok
		}
	}
	return holds, true
}

// modelledAbsent are the keys EBS's requests carry only for some actions: their absence
// is known, not a gap of the evaluator.
func modelledAbsent(key string) bool {
	return key == "kms:grantisforawsresource"
}

func evalCondition(op, actual string, present bool, values []string) (ok, modelled bool) {
	anyOf := func(match func(string) bool) bool { return present && slices.ContainsFunc(values, match) }
	switch op {
	case "StringEquals", "ArnEquals":
		return anyOf(func(v string) bool { return v == actual }), true
	case "StringEqualsIgnoreCase":
		return anyOf(func(v string) bool { return strings.EqualFold(v, actual) }), true
	case "StringLike", "ArnLike":
		return anyOf(func(v string) bool { return like(v, actual) }), true
	case "StringNotEquals", "ArnNotEquals":
		return !anyOf(func(v string) bool { return v == actual }), true
	case "StringNotLike", "ArnNotLike":
		return !anyOf(func(v string) bool { return like(v, actual) }), true
	case "Bool":
		return anyOf(func(v string) bool { return strings.EqualFold(v, actual) }), true
	}
	return false, false
}

// arnAccount is the account ID in an ARN, "" if it has none.
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}
