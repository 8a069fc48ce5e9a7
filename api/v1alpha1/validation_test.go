package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// TestValidation applies bad Workspaces to a real API server with the generated CRD and
// checks each is refused with a message that says what to fix.
func TestValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane (make test)")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.OperatorCRDDir()}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: runtime.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tests := []struct {
		name     string
		manifest string
		want     string
	}{
		{"no owners", `
metadata: {name: no-owners}
spec: {owners: []}`, "should have at least 1 items"},
		{"name that is not a DNS label", `
metadata: {name: acme.example}
spec: {owners: [{kind: User, name: alice}]}`, "metadata.name must be a DNS label"},
		{"name too long for the namespace prefix", `
metadata: {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
spec: {owners: [{kind: User, name: alice}]}`, "metadata.name must be at most 60 characters"},
		{"unknown owner kind", `
metadata: {name: owner-kind}
spec: {owners: [{kind: Robot, name: r2d2}]}`, `Unsupported value: "Robot"`},
		{"service account without namespace", `
metadata: {name: sa-ns}
spec: {owners: [{kind: ServiceAccount, name: deployer}]}`, "owners[].namespace is required for a ServiceAccount"},
		{"user with a namespace", `
metadata: {name: user-ns}
spec: {owners: [{kind: User, name: alice, namespace: ci}]}`, "not allowed for a User or Group"},
		{"unknown tier", `
metadata: {name: tier}
spec: {owners: [{kind: User, name: alice}], quota: {tier: huge}}`, `Unsupported value: "huge"`},
		{"tier and limits", `
metadata: {name: tier-and-limits}
spec:
  owners: [{kind: User, name: alice}]
  quota: {tier: small, limits: {cpu: "1", memory: 1Gi, storage: 1Gi, pods: 1}}`, "set only one of spec.quota.tier or spec.quota.limits"},
		{"zero cpu", `
metadata: {name: zero-cpu}
spec:
  owners: [{kind: User, name: alice}]
  quota: {limits: {cpu: "0", memory: 1Gi, storage: 1Gi, pods: 1}}`, "spec.quota.limits.cpu must be greater than zero"},
		{"bad CIDR", `
metadata: {name: bad-cidr}
spec:
  owners: [{kind: User, name: alice}]
  network: {egress: [{cidr: 10.0.0.0/33}]}`, "spec.network.egress[].cidr must be a CIDR"},
		{"metadata service", `
metadata: {name: metadata}
spec:
  owners: [{kind: User, name: alice}]
  network: {egress: [{cidr: 169.254.169.254/32}]}`, "must not be the cloud metadata address"},
		{"bad port", `
metadata: {name: bad-port}
spec:
  owners: [{kind: User, name: alice}]
  network: {egress: [{cidr: 10.0.0.0/8, ports: [{port: 70000}]}]}`, "should be less than or equal to 65535"},
		{"bad ingress namespace", `
metadata: {name: bad-ingress}
spec:
  owners: [{kind: User, name: alice}]
  network: {ingressFromNamespaces: [Ingress_NGINX]}`, "should match"},
		{"bad host", `
metadata: {name: bad-host}
spec:
  owners: [{kind: User, name: alice}]
  tls: {hosts: [https://app.example.com]}`, "spec.tls.hosts[] must be a lower-case fully qualified DNS name"},
		{"single-label host", `
metadata: {name: single-label}
spec:
  owners: [{kind: User, name: alice}]
  tls: {hosts: [localhost]}`, "spec.tls.hosts[] must be a lower-case fully qualified DNS name"},
		{"unknown issuer kind", `
metadata: {name: issuer-kind}
spec:
  owners: [{kind: User, name: alice}]
  tls: {hosts: [app.example.com], issuerRef: {name: ca, kind: Vault}}`, `Unsupported value: "Vault"`},
		{"system namespace", `
metadata: {name: system}
spec: {owners: [{kind: User, name: alice}], namespace: kube-system}`, "must not be a Kubernetes system namespace"},
		{"namespace that is not a DNS label", `
metadata: {name: ns-label}
spec: {owners: [{kind: User, name: alice}], namespace: Acme}`, "spec.namespace must be a DNS label"},
		{"schedule with a sixth field", `
metadata: {name: six-fields}
spec: {owners: [{kind: User, name: alice}], backup: {schedule: "0 30 2 * * *"}}`, "spec.backup.schedule must be a cron schedule"},
		{"schedule with a reversed range", `
metadata: {name: reversed-range}
spec: {owners: [{kind: User, name: alice}], backup: {schedule: "0 5-1 * * *"}}`, "spec.backup.schedule has a range whose start is after its end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Create(ctx, workspace(t, tt.manifest))
			if err == nil {
				t.Fatalf("accepted, want refused with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("refused with %q, want a message containing %q", err, tt.want)
			}
		})
	}

	t.Run("valid sample is accepted", func(t *testing.T) {
		ws := workspace(t, `
metadata: {name: valid}
spec:
  owners: [{kind: User, name: alice}, {kind: ServiceAccount, name: deployer, namespace: ci}]
  quota: {limits: {cpu: 500m, memory: 1Gi, storage: 10Gi, pods: 5}}
  network:
    ingressFromNamespaces: [ingress-nginx]
    egress: [{cidr: 0.0.0.0/0, ports: [{port: 443}]}, {cidr: "2001:db8::/32"}]
  tls: {hosts: [app.example.com, "*.example.com"]}`)
		if err := c.Create(ctx, ws); err != nil {
			t.Fatalf("refused a valid Workspace: %v", err)
		}
		egress, _, _ := unstructured.NestedSlice(ws.Object, "spec", "network", "egress")
		if protocol, _, _ := unstructured.NestedString(egress[0].(map[string]any)["ports"].([]any)[0].(map[string]any), "protocol"); protocol != "TCP" {
			t.Errorf("egress port protocol defaulted to %q, want TCP", protocol)
		}
	})

	// Regression: a typed Go client sends quota: {} for a Workspace that sets no quota.
	t.Run("typed Workspace without a quota is accepted", func(t *testing.T) {
		scheme := runtime.NewScheme()
		if err := tenancyv1alpha1.AddToScheme(scheme); err != nil {
			t.Fatal(err)
		}
		typed, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		ws := &tenancyv1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: "typed"},
			Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}}},
		}
		if err := typed.Create(ctx, ws); err != nil {
			t.Fatalf("refused a typed Workspace without a quota: %v", err)
		}
	})

	// The CRD's rules must accept exactly the schedules the CronJob controller (robfig/cron's
	// standard parser, as the operator uses) accepts, apart from the time-zone prefixes a
	// CronJob with a timeZone refuses: a schedule refused by neither would stall the
	// workspace after its namespace, keys and buckets exist.
	t.Run("backup schedules", func(t *testing.T) {
		schedules := []string{
			"30 2 * * *", "*/15 * * * *", "0 0-23/6 * * mon-fri", "0 0 1,15 * *", "5 4 * jan,JUL sun",
			"0 0 ? * *", "00 02 * * *", "  30 2 * * *  ", "30  2 * * *", "0 0 31 12 6", "59 23 * * 0",
			"@daily", "@hourly", "@every 1h30m", "@midnight", "@annually",
			"60 2 * * *", "30 24 * * *", "0 0 0 * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 7",
			"*/0 * * * *", "0 5-1 * * *", "0 0 * * mon-sun-tue", "a b c d e", "30 2 * *", "0 30 2 * * *",
			"@fortnightly", "@every", "@every soon", "@Daily", "TZ=UTC 30 2 * * *", "30 2 * * * ", "1-2-3 * * * *",
			"0 0 * foo *", "*/5,10-20/3 1,2,3 1-31 1-12 0-6",
		}
		for i, schedule := range schedules {
			_, parseErr := cron.ParseStandard(schedule)
			want := parseErr == nil && !strings.Contains(schedule, "TZ")
			ws := workspace(t, `
spec: {owners: [{kind: User, name: alice}]}`)
			ws.SetName(fmt.Sprintf("schedule-%d", i))
			_ = unstructured.SetNestedField(ws.Object, schedule, "spec", "backup", "schedule")
			err := c.Create(ctx, ws, client.DryRunAll)
			switch {
			case want && err != nil:
				t.Errorf("schedule %q: refused (%v), but cron accepts it", schedule, err)
			case !want && err == nil:
				t.Errorf("schedule %q: accepted, but cron refuses it: %v", schedule, parseErr)
			case err != nil && !strings.Contains(err.Error(), "spec.backup.schedule"):
				t.Errorf("schedule %q: refused with %q, which does not name spec.backup.schedule", schedule, err)
			}
		}
	})

	t.Run("spec.restoreFrom only at creation", func(t *testing.T) {
		ws := workspace(t, `
metadata: {name: never-deleted}
spec: {owners: [{kind: User, name: alice}]}`)
		if err := c.Create(ctx, ws); err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(ws.Object, "never-deleted-20260101t000000z", "spec", "restoreFrom")
		if err := c.Update(ctx, ws); err == nil || !strings.Contains(err.Error(), "spec.restoreFrom can only be set when the Workspace is created") {
			t.Errorf("adding spec.restoreFrom = %v, want refused", err)
		}

		undeleted := workspace(t, `
metadata: {name: undeleted}
spec: {owners: [{kind: User, name: alice}], restoreFrom: undeleted-20260101t000000z}`)
		if err := c.Create(ctx, undeleted); err != nil {
			t.Fatalf("creating a Workspace with spec.restoreFrom: %v", err)
		}
		_ = unstructured.SetNestedSlice(undeleted.Object, []any{map[string]any{"kind": "User", "name": "bob"}}, "spec", "owners")
		if err := c.Update(ctx, undeleted); err != nil {
			t.Errorf("updating a Workspace created with spec.restoreFrom: %v", err)
		}
	})

	t.Run("spec.namespace is immutable", func(t *testing.T) {
		ws := workspace(t, `
metadata: {name: immutable}
spec: {owners: [{kind: User, name: alice}], namespace: acme-data}`)
		if err := c.Create(ctx, ws); err != nil {
			t.Fatal(err)
		}
		for _, change := range []func(){
			func() { _ = unstructured.SetNestedField(ws.Object, "other-data", "spec", "namespace") },
			func() { unstructured.RemoveNestedField(ws.Object, "spec", "namespace") },
		} {
			if err := c.Get(ctx, client.ObjectKeyFromObject(ws), ws); err != nil {
				t.Fatal(err)
			}
			change()
			err := c.Update(ctx, ws)
			if err == nil || !strings.Contains(err.Error(), "spec.namespace is immutable") {
				t.Errorf("update = %v, want refused as immutable", err)
			}
		}

		plain := workspace(t, `
metadata: {name: derived}
spec: {owners: [{kind: User, name: alice}]}`)
		if err := c.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if tier, _, _ := unstructured.NestedString(plain.Object, "spec", "quota", "tier"); tier != "small" {
			t.Errorf("spec.quota defaulted to tier %q, want small", tier)
		}
		_ = unstructured.SetNestedField(plain.Object, "late-data", "spec", "namespace")
		if err := c.Update(ctx, plain); err == nil || !strings.Contains(err.Error(), "spec.namespace is immutable") {
			t.Errorf("setting spec.namespace after creation = %v, want refused as immutable", err)
		}
	})
}

func workspace(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	obj.SetAPIVersion("tenancy.workspace-operator.io/v1alpha1")
	obj.SetKind("Workspace")
	return obj
}
