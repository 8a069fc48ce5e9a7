package awsemu

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// policyDocument is an IAM policy language document (a bucket or key policy). The
// emulator evaluates the parts the operator's policies use: Effect, Principal, Action,
// Resource and the condition operators below; an explicit Deny always wins.
type policyDocument struct {
	Statement statementList
}

type policyStatement struct {
	Effect    string
	Principal json.RawMessage
	Action    stringList
	NotAction stringList
	Resource  stringList
	Condition map[string]map[string]stringList
}

// stringList is a policy value that is one string or an array of them.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	// IAM also takes JSON booleans and numbers as condition values ("Bool": {"k": true}).
	var many []any
	if err := json.Unmarshal(b, &many); err != nil {
		var scalar any
		if err := json.Unmarshal(b, &scalar); err != nil {
			return err
		}
		many = []any{scalar}
	}
	*l = nil
	for _, v := range many {
		switch v.(type) {
		case string, bool, float64:
			*l = append(*l, fmt.Sprint(v))
		default:
			return fmt.Errorf("policy value %s is not a string, boolean or number", b)
		}
	}
	return nil
}

// statementList is one statement or an array of them.
type statementList []policyStatement

func (l *statementList) UnmarshalJSON(b []byte) error {
	var one policyStatement
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = []policyStatement{one}
		return nil
	}
	var many []policyStatement
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

func parsePolicy(doc []byte) (policyDocument, error) {
	var p policyDocument
	err := json.Unmarshal(doc, &p)
	return p, err
}

// authzRequest is what a policy is evaluated against.
type authzRequest struct {
	principal principal
	action    string
	resource  string
	// context holds the condition keys present in the request; absent keys are missing.
	context map[string]string
}

type decision int

const (
	noDecision decision = iota
	allowed
	denied
)

// evaluate returns denied when any statement denies the request, allowed when one allows
// it, noDecision otherwise (the caller's IAM policies decide, which the emulator grants).
func (p policyDocument) evaluate(req authzRequest) decision {
	result := noDecision
	for _, s := range p.Statement {
		if !s.matches(req) {
			continue
		}
		if strings.EqualFold(s.Effect, "Deny") {
			return denied
		}
		result = allowed
	}
	return result
}

func (s policyStatement) matches(req authzRequest) bool {
	if !principalMatches(s.Principal, req.principal) {
		return false
	}
	switch {
	case len(s.Action) > 0 && !anyGlob(s.Action, req.action, true):
		return false
	case len(s.NotAction) > 0 && anyGlob(s.NotAction, req.action, true):
		return false
	case len(s.Resource) > 0 && !anyGlob(s.Resource, req.resource, false):
		return false
	}
	for operator, keys := range s.Condition {
		for key, values := range keys {
			if !conditionHolds(operator, values, req.context, key) {
				return false
			}
		}
	}
	return true
}

// principalMatches reads "*", {"AWS": "*"}, or {"AWS": [ARNs or account IDs]}. An
// account's root ARN or ID names every principal of that account.
func principalMatches(raw json.RawMessage, p principal) bool {
	if len(raw) == 0 {
		return false
	}
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return star == "*"
	}
	var byType map[string]stringList
	if json.Unmarshal(raw, &byType) != nil {
		return false
	}
	for _, v := range byType["AWS"] {
		if v == "*" || v == p.arn || v == p.account || v == rootARN(p.account) {
			return true
		}
	}
	return false
}

// conditionHolds evaluates one condition operator on one key. A key missing from the
// request satisfies ...IfExists and the negated operators, and nothing else but Null.
func conditionHolds(operator string, values stringList, context map[string]string, key string) bool {
	operator = strings.TrimPrefix(strings.TrimPrefix(operator, "ForAnyValue:"), "ForAllValues:")
	ifExists := strings.HasSuffix(operator, "IfExists")
	operator = strings.TrimSuffix(operator, "IfExists")
	got, present := lookupKey(context, key)
	if operator == "Null" {
		for _, v := range values {
			if (v == "true") == !present {
				return true
			}
		}
		return false
	}
	negated := strings.Contains(operator, "Not")
	if !present {
		return ifExists || negated
	}
	var match func(pattern string) bool
	switch operator {
	case "StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals":
		match = func(v string) bool { return v == got }
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		match = func(v string) bool { return strings.EqualFold(v, got) }
	case "StringLike", "StringNotLike", "ArnLike", "ArnNotLike":
		match = func(v string) bool { return glob(v, got) }
	case "Bool":
		match = func(v string) bool { return strings.EqualFold(v, got) }
	default:
		return false // an operator the emulator does not know never matches
	}
	for _, v := range values {
		if match(v) {
			return !negated
		}
	}
	return negated
}

// lookupKey finds a condition key; their names are case-insensitive.
func lookupKey(context map[string]string, key string) (string, bool) {
	for k, v := range context {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func anyGlob(patterns []string, value string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			p, value = strings.ToLower(p), strings.ToLower(value)
		}
		if glob(p, value) {
			return true
		}
	}
	return false
}

// glob matches IAM's wildcards: * any run of characters (including /), ? one character.
func glob(pattern, value string) bool {
	// path.Match stops * at '/', which IAM does not: escape the slashes on both sides.
	const slash = "\x00"
	ok, err := path.Match(strings.ReplaceAll(escapeBrackets(pattern), "/", slash), strings.ReplaceAll(value, "/", slash))
	return err == nil && ok
}

func escapeBrackets(p string) string {
	return strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`).Replace(p)
}
