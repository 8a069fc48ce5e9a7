package chart

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// allowed is a reviewed grant: verbs on resources of a group, optionally only some names.
type allowed struct {
	group         string
	resources     []string
	verbs         []string
	resourceNames []string
}

var (
	crud     = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	readOnly = []string{"get", "list", "watch"}
)

// operatorAllowList is every permission the operator's ClusterRole (config/rbac/role.yaml,
// generated from the +kubebuilder:rbac markers) may have. A marker that adds a permission
// fails TestOperatorRBACAllowList until the permission is added here, in a change a
// reviewer approves: say in the comment why the operator needs it.
var operatorAllowList = []allowed{
	// The tenant namespace, its quota and default limits.
	{group: "", resources: []string{"namespaces", "resourcequotas", "limitranges"}, verbs: crud},
	// The default-deny firewall.
	{group: "networking.k8s.io", resources: []string{"networkpolicies"}, verbs: crud},
	// The owners' RoleBinding.
	{group: "rbac.authorization.k8s.io", resources: []string{"rolebindings"}, verbs: crud},
	// Check the owner ClusterRole exists before binding it.
	{group: "rbac.authorization.k8s.io", resources: []string{"clusterroles"}, verbs: readOnly},
	// Bind the owner ClusterRole, and only it, without holding its permissions.
	{group: "rbac.authorization.k8s.io", resources: []string{"clusterroles"}, verbs: []string{"bind"}, resourceNames: []string{"workspace-owner"}},
	// The workspace's HTTPS certificate.
	{group: "cert-manager.io", resources: []string{"certificates"}, verbs: crud},
	// Detect an uninstall (the Workspace CRD being deleted) to leave tenant data alone.
	{group: "apiextensions.k8s.io", resources: []string{"customresourcedefinitions"}, verbs: []string{"get"}},
	// The workloads' and the backup agent's identities (IRSA-annotated ServiceAccounts).
	{group: "", resources: []string{"serviceaccounts"}, verbs: crud},
	// Each workspace's encrypted StorageClass; every class is read to zero the others in quotas.
	{group: "storage.k8s.io", resources: []string{"storageclasses"}, verbs: crud},
	// The backup CronJob, and reading the outcome of its Jobs and their pods' summaries.
	{group: "batch", resources: []string{"cronjobs"}, verbs: crud},
	// Reading backup Jobs' outcomes; running the one-shot restore Job of an undelete.
	{group: "batch", resources: []string{"jobs"}, verbs: crud},
	// Pods: the backup summary in their termination message; the data mover's pods, which
	// it creates and deletes in its own namespace only (by label and name, from live
	// reads). Creating Jobs anywhere already implied creating pods.
	{group: "", resources: []string{"pods"}, verbs: []string{"create", "delete", "get", "list", "watch"}},
	// The data mover runs the pre-backup hook an application pod asks for (by annotation,
	// in its own pod template) in that pod, right before snapshotting its volume. An exec
	// over WebSockets is a GET the API server authorizes as get (and create).
	{group: "", resources: []string{"pods/exec"}, verbs: []string{"create", "get"}},
	// Volumes are listed for backups and recreated by an undelete; the data mover creates
	// and deletes its temporary clones in its own namespace. A tenant's claims are never
	// deleted: the namespace's deletion does that, and the mover deletes only claims
	// labelled for one of its runs.
	{group: "", resources: []string{"persistentvolumeclaims"}, verbs: crud},
	// The data mover reads a claim's volume for its zone; a restore holds the volume it
	// wrote at Retain while it hands it from its own claim to the workspace's (claimRef and
	// a label), and only volumes it labelled, which it finds again by that label after a
	// crash. Never delete: the reclaim policy does that.
	{group: "", resources: []string{"persistentvolumes"}, verbs: []string{"get", "list", "patch", "update"}},
	// The data mover's snapshots: the tenant-side snapshot, its statically bound copy in
	// the mover namespace, and each workspace's VolumeSnapshotClass.
	{group: "snapshot.storage.k8s.io", resources: []string{"volumesnapshots", "volumesnapshotcontents", "volumesnapshotclasses"}, verbs: []string{"create", "delete", "get", "list", "watch"}},
	// Backup runs, their progress and their cleanup finalizer.
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacebackups"}, verbs: crud},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacebackups/status"}, verbs: []string{"get", "patch", "update"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacebackups/finalizers"}, verbs: []string{"update"}},
	// Restore runs (spec.restore and undelete), their progress and their cleanup finalizer.
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacerestores"}, verbs: crud},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacerestores/status"}, verbs: []string{"get", "patch", "update"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacerestores/finalizers"}, verbs: []string{"update"}},
	// The purge records of deleted workspaces, their progress and their finalizer.
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacepurges"}, verbs: crud},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacepurges/status"}, verbs: []string{"get", "patch", "update"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspacepurges/finalizers"}, verbs: []string{"update"}},
	// Events on Workspaces.
	{group: "events.k8s.io", resources: []string{"events"}, verbs: []string{"create", "patch"}},
	// The Workspaces themselves: finalizer, status.
	{group: "tenancy.workspace-operator.io", resources: []string{"workspaces"}, verbs: []string{"get", "list", "patch", "update", "watch"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspaces/status"}, verbs: []string{"get", "patch", "update"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspaces/finalizers"}, verbs: []string{"update"}},
}

// handWrittenAllowLists are the other roles of config/rbac: leader election, and metrics
// authentication and authorization.
var handWrittenAllowLists = map[string][]allowed{
	"Role workspace-operator-leader-election": {
		{group: "coordination.k8s.io", resources: []string{"leases"}, verbs: crud},
		{group: "events.k8s.io", resources: []string{"events"}, verbs: []string{"create", "patch"}},
	},
	"ClusterRole workspace-operator-metrics-auth": {
		{group: "authentication.k8s.io", resources: []string{"tokenreviews"}, verbs: []string{"create"}},
		{group: "authorization.k8s.io", resources: []string{"subjectaccessreviews"}, verbs: []string{"create"}},
	},
	"ClusterRole workspace-operator-metrics-reader": nil, // only GET /metrics, checked below
}

// tenantForbidden are the permissions the workspace-owner ClusterRole must never grant: each
// would let a tenant switch off a control the operator enforces, or reach outside its
// namespace.
var tenantForbidden = []allowed{
	{group: "networking.k8s.io", resources: []string{"networkpolicies"}, verbs: []string{"create", "update", "patch", "delete", "deletecollection"}},
	{group: "", resources: []string{"resourcequotas", "limitranges"}, verbs: []string{"create", "update", "patch", "delete", "deletecollection"}},
	{group: "rbac.authorization.k8s.io", resources: []string{"roles", "rolebindings"}, verbs: []string{"create", "update", "patch", "delete", "deletecollection", "bind", "escalate"}},
	{group: "rbac.authorization.k8s.io", resources: []string{"clusterroles", "clusterrolebindings"}, verbs: []string{"create", "update", "patch", "delete", "bind", "escalate"}},
	{group: "", resources: []string{"namespaces"}, verbs: []string{"create", "update", "patch", "delete"}},
	{group: "", resources: []string{"users", "groups", "serviceaccounts"}, verbs: []string{"impersonate"}},
	{group: "tenancy.workspace-operator.io", resources: []string{"workspaces", "workspaces/status"}, verbs: []string{"create", "update", "patch", "delete"}},
	{group: "cert-manager.io", resources: []string{"certificates"}, verbs: []string{"create", "update", "patch", "delete", "deletecollection"}},
}

func expandAllowed(list []allowed) map[permission]bool {
	rules := make([]rbacv1.PolicyRule, 0, len(list))
	for _, a := range list {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{a.group}, Resources: a.resources, Verbs: a.verbs, ResourceNames: a.resourceNames})
	}
	return expandRules(rules)
}

// configObjects decodes every object in the YAML files under dir (or in the file dir).
func configObjects(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, obj := range decode(t, string(data)) {
			obj.SetAnnotations(map[string]string{"source": path})
			objs = append(objs, obj)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func policyRules(t *testing.T, role *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var typed struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(role.Object, &typed); err != nil {
		t.Fatalf("%s: %v", key(role), err)
	}
	return typed.Rules
}

// TestOperatorRBACAllowList compares the generated ClusterRole with operatorAllowList.
func TestOperatorRBACAllowList(t *testing.T) {
	objs := configObjects(t, filepath.Join(repoRoot(), "config", "rbac", "role.yaml"))
	role := find(objs, "ClusterRole", "workspace-operator")
	if role == nil || len(objs) != 1 {
		t.Fatalf("config/rbac/role.yaml should hold only the workspace-operator ClusterRole, holds %d objects; "+
			"a namespaced +kubebuilder:rbac marker adds a Role, which needs its own allow-list and chart template", len(objs))
	}
	checkAllowList(t, "config/rbac/role.yaml", expandRules(policyRules(t, role)), expandAllowed(operatorAllowList),
		"operatorAllowList in test/chart/rbac_test.go")
}

// TestHandWrittenRBACAllowList does the same for the other roles in config/rbac, and makes
// sure a new role comes with an allow-list.
func TestHandWrittenRBACAllowList(t *testing.T) {
	for _, obj := range configObjects(t, filepath.Join(repoRoot(), "config", "rbac")) {
		if (obj.GetKind() != "Role" && obj.GetKind() != "ClusterRole") || obj.GetName() == "workspace-operator" || obj.GetName() == "workspace-owner" {
			continue
		}
		name := obj.GetKind() + " " + obj.GetName()
		list, ok := handWrittenAllowLists[name]
		if !ok {
			t.Errorf("%s (%s) has no allow-list: add one to handWrittenAllowLists in test/chart/rbac_test.go", name, obj.GetAnnotations()["source"])
			continue
		}
		got := expandRules(policyRules(t, obj))
		want := expandAllowed(list)
		if name == "ClusterRole workspace-operator-metrics-reader" {
			want = map[permission]bool{{name: "/metrics", verb: "get"}: true}
		}
		checkAllowList(t, name, got, want, "handWrittenAllowLists in test/chart/rbac_test.go")
	}
}

func checkAllowList(t *testing.T, what string, got, want map[permission]bool, list string) {
	t.Helper()
	added, removed := allowListDiff(got, want)
	if len(added) > 0 {
		t.Errorf("%s grants permissions that are not in the reviewed allow-list:\n  %s\n"+
			"if the operator really needs them, add them to %s with a comment saying why, for review",
			what, strings.Join(added, "\n  "), list)
	}
	if len(removed) > 0 {
		t.Errorf("%s no longer grants these allow-listed permissions; remove them from %s:\n  %s",
			what, list, strings.Join(removed, "\n  "))
	}
}

// allowListDiff lists the permissions granted but not allowed, and allowed but not granted.
func allowListDiff(got, want map[permission]bool) (added, removed []string) {
	for p := range got {
		if !want[p] {
			added = append(added, p.String())
		}
	}
	for p := range want {
		if !got[p] {
			removed = append(removed, p.String())
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// TestAllowListDiff makes sure a new permission is caught, however the rule is written.
func TestAllowListDiff(t *testing.T) {
	granted := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"admin"}},
	}
	list := []allowed{
		{group: "", resources: []string{"namespaces"}, verbs: []string{"list", "get", "watch"}},
		{group: "rbac.authorization.k8s.io", resources: []string{"clusterroles"}, verbs: []string{"bind"}, resourceNames: []string{"workspace-owner"}},
	}
	added, removed := allowListDiff(expandRules(granted), expandAllowed(list))
	wantAdded := []string{"bind clusterroles.rbac.authorization.k8s.io/admin", "get secrets"}
	wantRemoved := []string{"bind clusterroles.rbac.authorization.k8s.io/workspace-owner", "watch namespaces"}
	if strings.Join(added, ",") != strings.Join(wantAdded, ",") || strings.Join(removed, ",") != strings.Join(wantRemoved, ",") {
		t.Errorf("allowListDiff = %v, %v; want %v, %v", added, removed, wantAdded, wantRemoved)
	}
}

// TestTenantRoleKeepsIsolation checks the workspace-owner ClusterRole grants nothing that
// would let a tenant undo the operator's controls.
func TestTenantRoleKeepsIsolation(t *testing.T) {
	objs := configObjects(t, filepath.Join(repoRoot(), "config", "rbac", "workspace_owner_role.yaml"))
	role := find(objs, "ClusterRole", "workspace-owner")
	if role == nil {
		t.Fatal("no workspace-owner ClusterRole in config/rbac/workspace_owner_role.yaml")
	}
	granted := expandRules(policyRules(t, role))
	for p := range expandAllowed(tenantForbidden) {
		if granted[p] || granted[permission{p.group, p.resource, "", p.verb}] {
			t.Errorf("workspace-owner grants %s, which would let tenants undo the workspace's isolation", p)
		}
	}
}

// rbacProblems reports wildcards, cluster-admin bindings and unrestricted bind, escalate
// or impersonate in objs.
func rbacProblems(t *testing.T, objs []*unstructured.Unstructured, source func(*unstructured.Unstructured) string) []string {
	t.Helper()
	var problems []string
	for _, obj := range objs {
		where := key(obj) + " (" + source(obj) + ")"
		switch obj.GetKind() {
		case "Role", "ClusterRole":
			if _, ok := obj.Object["aggregationRule"]; ok {
				problems = append(problems, where+": aggregationRule pulls in other roles' permissions unreviewed")
			}
			for _, rule := range policyRules(t, obj) {
				for field, values := range map[string][]string{
					"apiGroups": rule.APIGroups, "resources": rule.Resources, "verbs": rule.Verbs,
					"resourceNames": rule.ResourceNames, "nonResourceURLs": rule.NonResourceURLs,
				} {
					for _, v := range values {
						if strings.Contains(v, "*") {
							problems = append(problems, where+": wildcard "+field+" "+v)
						}
					}
				}
				for _, verb := range rule.Verbs {
					if (verb == "bind" || verb == "escalate" || verb == "impersonate") && len(rule.ResourceNames) == 0 {
						problems = append(problems, where+": "+verb+" on "+strings.Join(rule.Resources, ",")+" without resourceNames")
					}
				}
			}
		case "RoleBinding", "ClusterRoleBinding":
			var binding rbacv1.ClusterRoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &binding); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if binding.RoleRef.Name == "cluster-admin" {
				problems = append(problems, where+": binds cluster-admin")
			}
			for _, s := range binding.Subjects {
				if s.Kind == "Group" && s.Name == "system:masters" {
					problems = append(problems, where+": binds system:masters")
				}
			}
		}
	}
	return problems
}

// TestNoBroadRBACInConfig checks every manifest under config/.
func TestNoBroadRBACInConfig(t *testing.T) {
	objs := configObjects(t, filepath.Join(repoRoot(), "config"))
	for _, p := range rbacProblems(t, objs, func(obj *unstructured.Unstructured) string { return obj.GetAnnotations()["source"] }) {
		t.Error(p)
	}
}

// TestNoBroadRBACInChart checks the rendered chart, with every option on.
func TestNoBroadRBACInChart(t *testing.T) {
	skipShort(t)
	for name, values := range map[string][]string{
		"default values":     nil,
		"every option on":    allOptional,
		"renamed owner role": {"--set", "ownerClusterRole=tenant-admin"},
	} {
		t.Run(name, func(t *testing.T) {
			objs := mustRender(t, values...)
			for _, p := range rbacProblems(t, objs, func(*unstructured.Unstructured) string { return "rendered chart" }) {
				t.Error(p)
			}
		})
	}
}
