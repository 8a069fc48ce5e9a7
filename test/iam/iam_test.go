// Package iam checks the IAM policy set in config/iam: that every document is
// a valid policy, and that every AWS API call the operator and the backup agent
// make is granted to the role that makes it, and nothing more.
package iam

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/workspace-operator/workspace-operator/internal/backup"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

const dir = "../../config/iam"

// placeholders are the values a user substitutes (envsubst) before applying a
// document; docs/aws.md explains each.
var placeholders = map[string]string{
	"ACCOUNT_ID":             "123456789012",
	"CLUSTER":                "prod-eu",
	"REGION":                 "eu-west-1",
	"REPLICA_REGION":         "eu-central-1",
	"ALIAS_PREFIX":           "workspace-operator",
	"BUCKET_PREFIX":          "wso",
	"WORKSPACE":              "acme",
	"BACKUP_BUCKET":          "wso-acme-bk-0123456789",
	"REPLICA_BACKUP_BUCKET":  "wso-acme-bk-9876543210",
	"OPERATOR_ROLE_ARN":      "arn:aws:iam::123456789012:role/workspace-operator",
	"BREAK_GLASS_ROLE_ARN":   "arn:aws:iam::123456789012:role/break-glass",
	"REPLICATION_ROLE_ARN":   "arn:aws:iam::123456789012:role/ws-replication",
	"VOLUME_DRIVER_ROLE_ARN": "arn:aws:iam::123456789012:role/ebs-csi-driver",
}

// operationActions maps each SDK operation the code calls to the IAM actions
// AWS authorizes it with (Service Authorization Reference). An operation
// missing here fails TestEveryCallIsGranted: add it, and grant it in the
// policy of the role that calls it.
var operationActions = map[string][]string{
	// KMS
	"CreateKey":            {"kms:CreateKey", "kms:TagResource"}, // Tags in the request need TagResource
	"DescribeKey":          {"kms:DescribeKey"},
	"CreateAlias":          {"kms:CreateAlias"}, // on the alias and on the key
	"ListKeys":             {"kms:ListKeys"},
	"ListResourceTags":     {"kms:ListResourceTags"},
	"GetKeyRotationStatus": {"kms:GetKeyRotationStatus"},
	"EnableKeyRotation":    {"kms:EnableKeyRotation"},
	"GetKeyPolicy":         {"kms:GetKeyPolicy"},
	"PutKeyPolicy":         {"kms:PutKeyPolicy"},
	"EnableKey":            {"kms:EnableKey"},
	"CancelKeyDeletion":    {"kms:CancelKeyDeletion"},
	"ScheduleKeyDeletion":  {"kms:ScheduleKeyDeletion"},
	"GenerateDataKey":      {"kms:GenerateDataKey"},
	"Decrypt":              {"kms:Decrypt"},
	// S3 buckets
	"HeadBucket":                      {"s3:ListBucket"},
	"CreateBucket":                    {"s3:CreateBucket", "s3:PutBucketOwnershipControls"}, // ObjectOwnership at creation
	"DeleteBucket":                    {"s3:DeleteBucket"},
	"GetBucketTagging":                {"s3:GetBucketTagging"},
	"PutBucketTagging":                {"s3:PutBucketTagging"},
	"GetPublicAccessBlock":            {"s3:GetBucketPublicAccessBlock"},
	"PutPublicAccessBlock":            {"s3:PutBucketPublicAccessBlock"},
	"GetBucketOwnershipControls":      {"s3:GetBucketOwnershipControls"},
	"PutBucketOwnershipControls":      {"s3:PutBucketOwnershipControls"},
	"GetBucketVersioning":             {"s3:GetBucketVersioning"},
	"PutBucketVersioning":             {"s3:PutBucketVersioning"},
	"GetBucketEncryption":             {"s3:GetEncryptionConfiguration"},
	"PutBucketEncryption":             {"s3:PutEncryptionConfiguration"},
	"GetBucketPolicy":                 {"s3:GetBucketPolicy"},
	"PutBucketPolicy":                 {"s3:PutBucketPolicy"},
	"GetBucketLifecycleConfiguration": {"s3:GetLifecycleConfiguration"},
	"PutBucketLifecycleConfiguration": {"s3:PutLifecycleConfiguration"},
	"GetBucketReplication":            {"s3:GetReplicationConfiguration"},
	"PutBucketReplication":            {"s3:PutReplicationConfiguration", "iam:PassRole"}, // passes the replication role
	"ListObjectVersions":              {"s3:ListBucketVersions"},
	"ListObjectsV2":                   {"s3:ListBucket"},
	// S3 objects
	"DeleteObjects":           {"s3:DeleteObject", "s3:DeleteObjectVersion"}, // by version
	"PutObject":               {"s3:PutObject"},
	"CreateMultipartUpload":   {"s3:PutObject"},
	"UploadPart":              {"s3:PutObject"},
	"CompleteMultipartUpload": {"s3:PutObject"},
	"AbortMultipartUpload":    {"s3:AbortMultipartUpload"},
	"GetObject":               {"s3:GetObject"},
	"HeadObject":              {"s3:GetObject", "s3:GetObjectVersion"}, // the agent heads a version it wrote
}

// role is one identity of the policy set and the code that runs as it.
type role struct {
	policy string
	// interfaces are the narrow SDK interfaces the role's code calls AWS through.
	interfaces []reflect.Type
	// packages are scanned for SDK calls too, in case one bypasses the interfaces.
	packages []string
}

var roles = map[string]role{
	"operator": {
		policy:     "operator.json",
		interfaces: []reflect.Type{reflect.TypeFor[cloud.KMS](), reflect.TypeFor[cloud.S3]()},
		packages:   []string{"../../internal/cloud", "../../controllers", "../.."},
	},
	"backup agent": {
		policy:     "backup.json",
		interfaces: []reflect.Type{reflect.TypeFor[backup.KMS](), reflect.TypeFor[backup.S3]()},
		packages:   []string{"../../internal/backup"},
	},
}

// policyDoc is an IAM policy document; unknown fields are refused.
type policyDoc struct {
	Version   string
	ID        string `json:"Id,omitempty"`
	Statement []statement
}

type statement struct {
	Sid          string
	Effect       string
	Principal    json.RawMessage `json:",omitempty"`
	NotPrincipal json.RawMessage `json:",omitempty"`
	Action       stringOrList
	NotAction    stringOrList
	Resource     stringOrList
	NotResource  stringOrList
	Condition    map[string]map[string]stringOrList
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// load reads a document, checks its placeholders are the documented ones and
// parses it with them substituted, as a user would apply it.
func load(t *testing.T, name string) policyDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range placeholder.FindAllStringSubmatch(string(raw), -1) {
		if _, ok := placeholders[m[1]]; !ok {
			t.Errorf("%s: placeholder ${%s} is not documented (docs/aws.md, placeholders)", name, m[1])
		}
	}
	filled := placeholder.ReplaceAllStringFunc(string(raw), func(s string) string { return placeholders[s[2:len(s)-1]] })
	dec := json.NewDecoder(bytes.NewReader([]byte(filled)))
	dec.DisallowUnknownFields()
	var doc policyDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: not a policy document: %v", name, err)
	}
	return doc
}

var (
	actionRE    = regexp.MustCompile(`^(kms|s3|iam|sts):[A-Za-z]+\*?$`)
	sidRE       = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	resourceRE  = regexp.MustCompile(`^(\*|arn:aws:(kms|s3|iam):[^\s]*)$`)
	conditionOp = regexp.MustCompile(`^(StringEquals|StringNotEquals|StringLike|StringNotLike|ArnEquals|ArnNotEquals|ArnLike|ArnNotLike|Bool|NumericLessThanEquals)(IfExists)?$`)
)

// resourcePolicies carry a Principal; identity policies must not.
var resourcePolicies = map[string]bool{"kms-key-policy.json": true, "replication-trust.json": true}

// TestPoliciesAreValid: every document in config/iam parses as an IAM policy
// with the structure IAM accepts.
func TestPoliciesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in %s: %v", dir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			doc := load(t, name)
			if doc.Version != "2012-10-17" {
				t.Errorf("Version %q, want 2012-10-17 (the only one with policy variables)", doc.Version)
			}
			if len(doc.Statement) == 0 {
				t.Error("no statements")
			}
			sids := map[string]bool{}
			for i, s := range doc.Statement {
				if !sidRE.MatchString(s.Sid) || sids[s.Sid] {
					t.Errorf("statement %d: Sid %q is missing, not alphanumeric or repeated", i, s.Sid)
				}
				sids[s.Sid] = true
				if s.Effect != "Allow" && s.Effect != "Deny" {
					t.Errorf("%s: Effect %q", s.Sid, s.Effect)
				}
				if len(s.Action) == 0 || len(s.NotAction) > 0 {
					t.Errorf("%s: needs Action (and no NotAction, which grants by omission)", s.Sid)
				}
				for _, a := range s.Action {
					if !actionRE.MatchString(a) && a != "kms:*" {
						t.Errorf("%s: action %q is not service:Name", s.Sid, a)
					}
				}
				if len(s.Resource) == 0 && !resourcePolicies[name] {
					t.Errorf("%s: no Resource", s.Sid)
				}
				for _, r := range s.Resource {
					if !resourceRE.MatchString(r) {
						t.Errorf("%s: resource %q is not an ARN", s.Sid, r)
					}
				}
				if hasPrincipal := len(s.Principal) > 0 || len(s.NotPrincipal) > 0; hasPrincipal != resourcePolicies[name] {
					t.Errorf("%s: Principal %s in a %s", s.Sid, s.Principal, map[bool]string{true: "resource policy", false: "identity policy"}[resourcePolicies[name]])
				}
				for op := range s.Condition {
					if !conditionOp.MatchString(op) {
						t.Errorf("%s: condition operator %q", s.Sid, op)
					}
				}
			}
		})
	}
}

// grants is what a policy's Allow statements grant: action -> resources.
func grants(doc policyDoc) map[string][]string {
	out := map[string][]string{}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Action {
			out[a] = append(out[a], s.Resource...)
		}
	}
	return out
}

// granted reports whether action is granted, directly or by a wildcard.
func granted(g map[string][]string, action string) bool {
	for a := range g {
		if a == action || (strings.HasSuffix(a, "*") && strings.HasPrefix(action, strings.TrimSuffix(a, "*"))) {
			return true
		}
	}
	return false
}

// sdkCall finds SDK calls in source: the operation's input type names it.
var sdkCall = regexp.MustCompile(`&(kms|s3)\.([A-Z][A-Za-z0-9]*)Input\{`)

// calls is every SDK operation a role's code can make.
func calls(t *testing.T, r role) []string {
	t.Helper()
	ops := map[string]bool{}
	for _, it := range r.interfaces {
		for i := range it.NumMethod() {
			ops[it.Method(i).Name] = true
		}
	}
	for _, pkg := range r.packages {
		files, _ := filepath.Glob(filepath.Join(pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range sdkCall.FindAllStringSubmatch(string(src), -1) {
				ops[m[2]] = true
			}
		}
	}
	out := make([]string, 0, len(ops))
	for op := range ops {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// TestEveryCallIsGranted: each role's policy grants every action its code's
// calls need, and nothing its code does not call (least privilege: the backup
// agent cannot schedule a key's deletion, the operator cannot decrypt).
func TestEveryCallIsGranted(t *testing.T) {
	for name, r := range roles {
		t.Run(name, func(t *testing.T) {
			g := grants(load(t, r.policy))
			needed := map[string]bool{}
			for _, op := range calls(t, r) {
				actions, ok := operationActions[op]
				if !ok {
					t.Errorf("the %s calls %s, which operationActions does not map to IAM actions", name, op)
					continue
				}
				for _, a := range actions {
					needed[a] = true
					if !granted(g, a) {
						t.Errorf("the %s calls %s, which needs %s: %s does not grant it", name, op, a, r.policy)
					}
				}
			}
			for a := range g {
				if !needed[a] {
					t.Errorf("%s grants %s, which no call of the %s needs", r.policy, a, name)
				}
			}
		})
	}
}

// TestReplicationRoleKeys: S3 replication decrypts with the source region's
// key and encrypts with the replica region's, and with no other key.
func TestReplicationRoleKeys(t *testing.T) {
	g := grants(load(t, "replication.json"))
	want := map[string][]string{
		"kms:Decrypt": {"arn:aws:kms:eu-west-1:123456789012:key/*"},
		"kms:Encrypt": {"arn:aws:kms:eu-central-1:123456789012:key/*"},
	}
	for action, resources := range want {
		if !slices.Equal(g[action], resources) {
			t.Errorf("replication role: %s on %v, want on %v", action, g[action], resources)
		}
	}
	for _, a := range []string{"s3:GetReplicationConfiguration", "s3:GetObjectVersionForReplication", "s3:ReplicateObject", "s3:ReplicateDelete"} {
		if !granted(g, a) {
			t.Errorf("replication role lacks %s", a)
		}
	}
	trust := load(t, "replication-trust.json")
	if len(trust.Statement) != 1 || !strings.Contains(string(trust.Statement[0].Principal), `"s3.amazonaws.com"`) {
		t.Errorf("replication role must be assumable by S3 only: %+v", trust.Statement)
	}
}

// TestEBSCSIKeyAccess: the volume driver may create grants only for AWS
// resources (EBS), and gets the data-key operations EBS performs for it.
func TestEBSCSIKeyAccess(t *testing.T) {
	doc := load(t, "ebs-csi-kms.json")
	for _, a := range []string{"kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:ReEncryptFrom", "kms:DescribeKey"} {
		if !granted(grants(doc), a) {
			t.Errorf("EBS CSI driver lacks %s", a)
		}
	}
	for _, s := range doc.Statement {
		if slices.Contains(s.Action, "kms:CreateGrant") &&
			!slices.Equal(s.Condition["Bool"]["kms:GrantIsForAWSResource"], stringOrList{"true"}) {
			t.Errorf("%s: kms:CreateGrant without kms:GrantIsForAWSResource=true lets the driver's role grant the key to anyone", s.Sid)
		}
	}
}

// TestKeyPolicyKeepsTheAccountInCharge: KMS refuses a key policy that would
// lock the caller out, and a key no one can administer cannot be recovered; the
// template keeps the account's root principal (and so IAM policies) in charge.
func TestKeyPolicyKeepsTheAccountInCharge(t *testing.T) {
	doc := load(t, "kms-key-policy.json")
	var root bool
	for _, s := range doc.Statement {
		if s.Effect == "Allow" && strings.Contains(string(s.Principal), "arn:aws:iam::123456789012:root") && slices.Contains(s.Action, "kms:*") {
			root = true
		}
		if s.Effect == "Deny" && !strings.Contains(string(s.Principal), "*") {
			continue
		}
		if s.Effect == "Deny" {
			if got := s.Condition["ArnNotEquals"]["aws:PrincipalArn"]; !slices.Contains(got, placeholders["OPERATOR_ROLE_ARN"]) || !slices.Contains(got, placeholders["BREAK_GLASS_ROLE_ARN"]) {
				t.Errorf("%s denies everyone but %v: the operator and a break-glass role must stay exempt", s.Sid, got)
			}
		}
	}
	if !root {
		t.Error("no statement gives the account root kms:*: IAM policies would not apply to the key")
	}
}

// TestOperatorReadsEveryKeysTags: before it adopts a key or schedules its deletion, the
// operator reads the key's tags to refuse one of another cluster or workspace
// (KeyOwnedElsewhere). Granting ListResourceTags only on this cluster's keys would turn
// that answer into AccessDenied, and hide whose key it is.
func TestOperatorReadsEveryKeysTags(t *testing.T) {
	for _, s := range load(t, "operator.json").Statement {
		if s.Effect == "Allow" && slices.Contains(s.Action, "kms:ListResourceTags") {
			if len(s.Condition) > 0 {
				t.Errorf("%s: kms:ListResourceTags under conditions %v", s.Sid, s.Condition)
			}
			return
		}
	}
	t.Error("operator.json does not grant kms:ListResourceTags")
}

// TestKeyPolicyProvesTheVolumeDriver: the template names the volume driver's role for
// everything EBS does with a key on its behalf, so that the operator's preflight
// (--volume-driver-role-arn) proves it from the key policy alone.
func TestKeyPolicyProvesTheVolumeDriver(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dir, "kms-key-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	filled := placeholder.ReplaceAllStringFunc(string(raw), func(s string) string { return placeholders[s[2:len(s)-1]] })
	access, err := cloud.EvaluateVolumeDriverAccess(filled, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		placeholders["VOLUME_DRIVER_ROLE_ARN"], placeholders["REGION"])
	if err != nil {
		t.Fatal(err)
	}
	if len(access.Refused) > 0 || len(access.Unproven) > 0 {
		t.Errorf("the key policy template does not prove the volume driver's access: refused %v, only through IAM %v", access.Refused, access.Unproven)
	}
}
