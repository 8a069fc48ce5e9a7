package cloud_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func TestEnsureKeyCreatesAShreddableKey(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	if !key.Created || key.Alias != "alias/workspace-operator/prod/acme" || key.State != "Enabled" || !key.RotationEnabled {
		t.Errorf("key = %+v", key)
	}
	// A new key is set up as it is created: nothing is read back, nothing was repaired.
	if len(key.Repaired) != 0 {
		t.Errorf("a new key reports repairs: %v", key.Repaired)
	}
	calls := map[string]int{}
	for call, n := range e.emu.Calls() {
		calls[call.Operation] += n
	}
	// Two DescribeKeys: the alias, then the legacy alias (a key created before the alias
	// named the cluster, whose ARN a lost status no longer records).
	if diff := cmp.Diff(map[string]int{"DescribeKey": 2, "CreateKey": 1, "CreateAlias": 1, "EnableKeyRotation": 1}, calls); diff != "" {
		t.Errorf("calls to create a key (-want +got):\n%s", diff)
	}

	keys := e.keysIn(primary)
	if len(keys) != 1 {
		t.Fatalf("%d keys in %s, want 1", len(keys), primary)
	}
	got := keys[0]
	if got.ARN != key.ARN || got.Origin != "AWS_KMS" || got.MultiRegion || got.KeySpec != "SYMMETRIC_DEFAULT" || !got.RotationEnabled {
		t.Errorf("key in KMS = %+v", got)
	}
	wantTags := map[string]string{cloud.TagManagedBy: "workspace-operator", cloud.TagCluster: "prod", cloud.TagWorkspace: "acme"}
	if diff := cmp.Diff(wantTags, got.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"alias/workspace-operator/prod/acme"}, got.Aliases); diff != "" {
		t.Errorf("aliases (-want +got):\n%s", diff)
	}
	if len(e.keysIn(replica)) != 0 {
		t.Error("a key was created in the other region")
	}
}

func TestEnsureKeyIsIdempotent(t *testing.T) {
	e := newEnv(t, "")
	first := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	e.emu.ResetCalls()
	second := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})

	if second.Created || second.ARN != first.ARN || len(second.Repaired) != 0 {
		t.Errorf("second ensure = %+v, want the same key untouched", second)
	}
	for call := range e.emu.Calls() {
		if !strings.HasPrefix(call.Operation, "Describe") && !strings.HasPrefix(call.Operation, "Get") && !strings.HasPrefix(call.Operation, "List") {
			t.Errorf("steady-state ensure made a write: %s", call.Operation)
		}
	}
	if n := len(e.keysIn(primary)); n != 1 {
		t.Errorf("%d keys, want 1", n)
	}
}

// A crash, or a lost answer, between CreateKey and CreateAlias leaves a key without an
// alias. The next attempt must find and adopt it rather than create a second key.
func TestEnsureKeyAdoptsTheOrphanOfALostCreateKey(t *testing.T) {
	e := newEnv(t, "")
	marked := false
	e.emu.Inject(awsemu.Fault{Service: "kms", Operation: "CreateKey", Kind: awsemu.DropResponse, Times: 1})

	_, err := e.keys.Ensure(context.Background(), cloud.KeyRequest{Owner: owner, Region: primary,
		BeforeCreate: func(context.Context) error { marked = true; return nil }})
	if err == nil {
		t.Fatal("ensure succeeded although CreateKey's answer was lost")
	}
	if !marked {
		t.Fatal("BeforeCreate did not run before CreateKey")
	}
	if n := len(e.keysIn(primary)); n != 1 {
		t.Fatalf("%d keys after the lost CreateKey, want exactly 1 (the SDK must not retry CreateKey)", n)
	}
	if aliasOf(e, primary) != "" {
		t.Fatal("alias exists although CreateAlias never ran")
	}

	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary, MayHaveOrphan: true})
	keys := e.keysIn(primary)
	if len(keys) != 1 {
		t.Fatalf("%d keys after recovery, want the orphan adopted and no second key", len(keys))
	}
	if key.ARN != keys[0].ARN || aliasOf(e, primary) != keys[0].ARN || key.Created {
		t.Errorf("recovered key %+v, want the orphan %s behind the alias", key, keys[0].ARN)
	}
}

func TestEnsureKeyRefusesKeysItMustNotUse(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		create   *kms.CreateKeyInput
		wantCode string
	}{
		{
			name:     "key of another workspace behind our alias",
			create:   &kms.CreateKeyInput{Tags: []kmstypes.Tag{{TagKey: aws.String(cloud.TagManagedBy), TagValue: aws.String("workspace-operator")}, {TagKey: aws.String(cloud.TagCluster), TagValue: aws.String("prod")}, {TagKey: aws.String(cloud.TagWorkspace), TagValue: aws.String("globex")}}},
			wantCode: "KeyOwnedElsewhere",
		},
		{
			name:     "multi-Region key, whose replicas would outlive deletion",
			create:   &kms.CreateKeyInput{MultiRegion: aws.Bool(true)},
			wantCode: "KeyNotShreddable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			out, err := e.kms[primary].CreateKey(ctx, tt.create)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.kms[primary].CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace-operator/prod/acme"), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
				t.Fatal(err)
			}
			_, err = e.keys.Ensure(ctx, cloud.KeyRequest{Owner: owner, Region: primary})
			if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != tt.wantCode {
				t.Errorf("err = %v (code %q), want terminal %s", err, cloud.ErrorCode(err), tt.wantCode)
			}
		})
	}
}

func TestEnsureKeyRepairsDrift(t *testing.T) {
	ctx := context.Background()
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"}]}`
	tests := []struct {
		name         string
		drift        func(c *kms.Client, id *string) error
		wantRepaired []string
	}{
		{
			name: "disabled",
			drift: func(c *kms.Client, id *string) error {
				_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: id})
				return err
			},
			wantRepaired: []string{"key enabled"},
		},
		{
			name: "scheduled for deletion",
			drift: func(c *kms.Client, id *string) error {
				_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)})
				return err
			},
			wantRepaired: []string{"scheduled deletion cancelled", "key enabled"},
		},
		{
			name: "rotation off",
			drift: func(c *kms.Client, id *string) error {
				_, err := c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: id})
				return err
			},
			wantRepaired: []string{"automatic rotation enabled"},
		},
		{
			name: "policy replaced",
			drift: func(c *kms.Client, id *string) error {
				_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: id, PolicyName: aws.String("default"), Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`), BypassPolicyLockoutSafetyCheck: true})
				return err
			},
			wantRepaired: []string{"key policy restored"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, policy)
			key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
			if err := tt.drift(e.kms[primary], aws.String(key.ID)); err != nil {
				t.Fatal(err)
			}
			repaired := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
			if diff := cmp.Diff(tt.wantRepaired, repaired.Repaired); diff != "" {
				t.Errorf("repaired (-want +got):\n%s", diff)
			}
			snapshot := e.keysIn(primary)[0]
			if snapshot.State != "Enabled" || !snapshot.RotationEnabled {
				t.Errorf("after repair: state %s rotation %t", snapshot.State, snapshot.RotationEnabled)
			}
			if again := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary}); len(again.Repaired) != 0 {
				t.Errorf("repairs again: %v", again.Repaired)
			}
		})
	}
}

func TestEnsureKeySurvivesThrottling(t *testing.T) {
	e := newEnv(t, "")
	e.emu.Inject(awsemu.Fault{Service: "kms", Kind: awsemu.Throttle, Times: 3})
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	if !key.Created {
		t.Errorf("key = %+v", key)
	}
	if n := e.emu.Calls()[awsemu.Call{Service: "kms", Operation: "DescribeKey", Outcome: "ThrottlingException"}]; n != 3 {
		t.Errorf("%d throttled DescribeKey calls, want the 3 injected, retried by the SDK", n)
	}
}

func TestEnsureKeyAccessDeniedIsTerminal(t *testing.T) {
	e := newEnv(t, "")
	e.emu.Inject(awsemu.Fault{Service: "kms", Kind: awsemu.AccessDenied})
	_, err := e.keys.Ensure(context.Background(), cloud.KeyRequest{Owner: owner, Region: primary})
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "AccessDeniedException" {
		t.Errorf("err = %v, want terminal AccessDeniedException", err)
	}
}

func TestScheduleKeyDeletion(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	ctx := context.Background()

	// By alias: a key whose ARN was never recorded (its CreateKey answer was lost).
	date, err := e.keys.ScheduleDeletion(ctx, owner, primary, "", 7*24*time.Hour)
	if err != nil || date == nil {
		t.Fatalf("schedule deletion = %v, %v", date, err)
	}
	if d := time.Until(*date); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Errorf("deletion date %s is not 7 days away", date)
	}
	again, err := e.keys.ScheduleDeletion(ctx, owner, primary, key.ARN, 7*24*time.Hour)
	if err != nil || !again.Equal(*date) {
		t.Errorf("second schedule = %v, %v; want the same date %s", again, err, date)
	}
	if missing, err := e.keys.ScheduleDeletion(ctx, cloud.Owner{Cluster: "prod", Workspace: "nobody"}, primary, "", 7*24*time.Hour); err != nil || missing != nil {
		t.Errorf("schedule for a workspace without a key = %v, %v; want nothing to do", missing, err)
	}
	if _, err := e.keys.Ensure(ctx, cloud.KeyRequest{Owner: owner, Region: "ap-south-1"}); !errors.As(err, new(*cloud.Error)) {
		t.Errorf("unconfigured region: %v", err)
	}
}

// KMS is eventually consistent: a DescribeKey by alias may answer NotFound for a while
// after the key's ARN is already recorded. That must never create a second key.
func TestEnsureKeyTrustsTheRecordedARN(t *testing.T) {
	e := newEnv(t, "")
	first := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	e.emu.Inject(awsemu.Fault{Service: "kms", Operation: "DescribeKey", Kind: awsemu.NotYetVisible, Times: 1})
	second, err := e.keys.Ensure(context.Background(), cloud.KeyRequest{Owner: owner, Region: primary, ARN: first.ARN})
	if err == nil && second.ARN != first.ARN {
		t.Errorf("ensure answered key %s, want the recorded %s", second.ARN, first.ARN)
	}
	if n := len(e.keysIn(primary)); n != 1 {
		t.Errorf("%d keys after a stale DescribeKey, want 1", n)
	}
	if err != nil && cloud.IsTerminal(err) {
		t.Errorf("a stale read is not terminal: %v", err)
	}
	// Once visible, the recorded key is used.
	if again := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary, ARN: first.ARN}); again.ARN != first.ARN || again.Created {
		t.Errorf("ensure = %+v", again)
	}
}

// Two clusters in one account and region (blue/green), each with a workspace of the
// same name: each gets a key under its own alias, and deleting one workspace schedules
// the deletion of its own key only.
func TestBlueGreenClustersKeepTheirOwnKeys(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	green := cloud.Owner{Cluster: "green", Workspace: owner.Workspace}
	blueKey := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	greenKey := ensureKey(t, e, cloud.KeyRequest{Owner: green, Region: primary})
	if !greenKey.Created || greenKey.ARN == blueKey.ARN || greenKey.Alias != "alias/workspace-operator/green/acme" {
		t.Fatalf("green's key = %+v, want a key of its own beside blue's %s", greenKey, blueKey.ARN)
	}
	if _, err := e.keys.ScheduleDeletion(ctx, green, primary, "", 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, k := range e.keysIn(primary) {
		states[k.ARN] = k.State
	}
	if diff := cmp.Diff(map[string]string{blueKey.ARN: "Enabled", greenKey.ARN: "PendingDeletion"}, states); diff != "" {
		t.Errorf("key states after green deleted its workspace (-want +got):\n%s", diff)
	}
}

// A status that names another cluster's key (edited by hand, or restored into the wrong
// cluster) must never lead to the deletion of that key.
func TestScheduleDeletionRefusesAKeyOfAnotherCluster(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	green := cloud.Owner{Cluster: "green", Workspace: owner.Workspace}
	_, err := e.keys.ScheduleDeletion(context.Background(), green, primary, key.ARN, 7*24*time.Hour)
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "KeyOwnedElsewhere" {
		t.Errorf("err = %v, want terminal KeyOwnedElsewhere", err)
	}
	if state := e.keysIn(primary)[0].State; state != "Enabled" {
		t.Errorf("the other cluster's key is %s", state)
	}
}

// legacyKey creates a key as an operator did before the alias named the cluster: tagged
// for cluster/workspace, behind alias/workspace-operator/<workspace>.
func legacyKey(t *testing.T, e *env, o cloud.Owner) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.kms[primary].CreateKey(ctx, &kms.CreateKeyInput{Tags: []kmstypes.Tag{
		{TagKey: aws.String(cloud.TagManagedBy), TagValue: aws.String("workspace-operator")},
		{TagKey: aws.String(cloud.TagCluster), TagValue: aws.String(o.Cluster)},
		{TagKey: aws.String(cloud.TagWorkspace), TagValue: aws.String(o.Workspace)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kms[primary].EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kms[primary].CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace-operator/" + o.Workspace), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// A key created under the legacy alias keeps working: found by its recorded ARN, or by
// the legacy alias when the status is lost, it gets the new alias beside the old one.
func TestKeyUnderTheLegacyAliasMigrates(t *testing.T) {
	tests := map[string]func(arn string) cloud.KeyRequest{
		"recorded in status": func(arn string) cloud.KeyRequest {
			return cloud.KeyRequest{Owner: owner, Region: primary, ARN: arn, Alias: "alias/workspace-operator/acme"}
		},
		"status lost": func(string) cloud.KeyRequest { return cloud.KeyRequest{Owner: owner, Region: primary} },
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "")
			arn := legacyKey(t, e, owner)
			key := ensureKey(t, e, req(arn))
			if key.Created || key.ARN != arn || key.Alias != "alias/workspace-operator/prod/acme" {
				t.Errorf("ensure = %+v, want the legacy key %s under the new alias", key, arn)
			}
			keys := e.keysIn(primary)
			if len(keys) != 1 {
				t.Fatalf("%d keys, want the legacy key alone", len(keys))
			}
			if diff := cmp.Diff([]string{"alias/workspace-operator/acme", "alias/workspace-operator/prod/acme"}, keys[0].Aliases); diff != "" {
				t.Errorf("aliases (-want +got):\n%s", diff)
			}
			// Recorded under the new alias from now on: a steady state without writes.
			e.emu.ResetCalls()
			ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary, ARN: arn, Alias: key.Alias})
			for call := range e.emu.Calls() {
				if call.Operation == "CreateAlias" {
					t.Error("the migrated key got its alias again")
				}
			}
		})
	}
}

// The legacy alias names no cluster: another cluster's key behind it is neither adopted
// nor refused nor deleted; this cluster's workspace gets a key of its own.
func TestLegacyAliasOfAnotherCluster(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	blue := legacyKey(t, e, cloud.Owner{Cluster: "blue", Workspace: owner.Workspace})
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	if !key.Created || key.ARN == blue {
		t.Errorf("ensure = %+v, want a new key, not blue's %s", key, blue)
	}
	// A purge record from a lost CreateKey has no ARN: the alias leads to our key only.
	if _, err := e.keys.ScheduleDeletion(ctx, owner, primary, "", 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range e.keysIn(primary) {
		if want := map[bool]string{true: "Enabled", false: "PendingDeletion"}[k.ARN == blue]; k.State != want {
			t.Errorf("key %s is %s, want %s", k.ARN, k.State, want)
		}
	}
	// With no key of ours under any alias, nothing is scheduled, and blue's stays.
	e2 := newEnv(t, "")
	blue2 := legacyKey(t, e2, cloud.Owner{Cluster: "blue", Workspace: owner.Workspace})
	if date, err := e2.keys.ScheduleDeletion(ctx, owner, primary, "", 7*24*time.Hour); err != nil || date != nil {
		t.Errorf("schedule deletion = %v, %v; want nothing to do", date, err)
	}
	if state := e2.keysIn(primary)[0]; state.ARN != blue2 || state.State != "Enabled" {
		t.Errorf("blue's key = %+v, want it Enabled", state)
	}
}

// The new alias already naming another key is a conflict a human resolves; the
// recorded key is not swapped for it, nor the alias repointed.
func TestMigrationRefusesAnAliasOnAnotherKey(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	arn := legacyKey(t, e, owner)
	squatter, err := e.kms[primary].CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kms[primary].CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace-operator/prod/acme"), TargetKeyId: squatter.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.keys.Ensure(ctx, cloud.KeyRequest{Owner: owner, Region: primary, ARN: arn, Alias: "alias/workspace-operator/acme"})
	if !cloud.IsTerminal(err) || cloud.ErrorCode(err) != "AliasTaken" {
		t.Errorf("err = %v, want terminal AliasTaken", err)
	}
}

// Cluster names may hold dots, which KMS refuses in alias names.
func TestAliasOfADottedClusterName(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: cloud.Owner{Cluster: "prod.eu-west-1", Workspace: "acme"}, Region: primary})
	if key.Alias != "alias/workspace-operator/prod_eu-west-1/acme" {
		t.Errorf("alias = %s", key.Alias)
	}
}

// A key deleted moments after its creation may not be found by its recorded ARN yet: a
// stale read must not leave the key out of the deletion.
func TestScheduleDeletionOutlastsAStaleRead(t *testing.T) {
	e := newEnv(t, "")
	key := ensureKey(t, e, cloud.KeyRequest{Owner: owner, Region: primary})
	e.emu.Inject(awsemu.Fault{Service: "kms", Operation: "DescribeKey", Kind: awsemu.NotYetVisible, Times: 1})
	date, err := e.keys.ScheduleDeletion(context.Background(), owner, primary, key.ARN, 7*24*time.Hour)
	if err != nil || date == nil {
		t.Fatalf("schedule deletion = %v, %v; want a date", date, err)
	}
	if state := e.keysIn(primary)[0].State; state != "PendingDeletion" {
		t.Errorf("key is %s, want PendingDeletion", state)
	}
}
