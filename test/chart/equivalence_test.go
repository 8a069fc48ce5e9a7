package chart

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestChartMatchesKustomize compares the chart, rendered with default values as the
// release workspace-operator in workspace-operator-system, with `kubectl kustomize
// config/default`: every object config/default has must be in the chart, and mean the same.
// It reports every difference it finds, not only the first.
func TestChartMatchesKustomize(t *testing.T) {
	skipShort(t)
	kustomized, rendered := kustomizeDefault(t), mustRender(t)
	diffs := compareWithKustomize(t, operatorFlags(t), kustomized, rendered)
	if len(diffs) > 0 {
		t.Errorf("the chart and config/default differ in %d ways:\n  %s", len(diffs), strings.Join(diffs, "\n  "))
	}
	// What the chart adds on top of config/default, for the record.
	for _, obj := range rendered {
		if find(kustomized, obj.GetKind(), obj.GetName()) == nil {
			t.Logf("only in the chart: %s", key(obj))
		}
	}
	wantD, gotD := find(kustomized, "Deployment", releaseName), find(rendered, "Deployment", releaseName)
	if wantD != nil && gotD != nil {
		wantPod, _, _ := unstructured.NestedMap(wantD.Object, "spec", "template", "spec", "securityContext")
		gotPod, _, _ := unstructured.NestedMap(gotD.Object, "spec", "template", "spec", "securityContext")
		for field, value := range gotPod {
			if _, ok := wantPod[field]; !ok {
				t.Logf("the chart adds to config/default's pod securityContext: %s: %s", field, toJSON(value))
			}
		}
	}
}

// TestComparisonFindsDifferences makes sure the comparison above can fail: it compares
// config/default with a chart rendered with different settings and a rule removed.
func TestComparisonFindsDifferences(t *testing.T) {
	skipShort(t)
	kustomized := kustomizeDefault(t)
	rendered := mustRender(t, "--set", "kubeApiBurst=300", "--set", "stalledRetryInterval=10m",
		"--set", "replicas=3", "--set", "probes.port=9000")
	role := find(rendered, "ClusterRole", releaseName)
	rules := role.Object["rules"].([]any)
	role.Object["rules"] = rules[1:]
	deployment := find(rendered, "Deployment", releaseName)
	containers := deployment.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	containers[0].(map[string]any)["securityContext"].(map[string]any)["readOnlyRootFilesystem"] = false

	diffs := strings.Join(compareWithKustomize(t, operatorFlags(t), kustomized, rendered), "\n")
	for _, want := range []string{
		`ClusterRole workspace-operator: chart lacks permission create limitranges`,
		`--kube-api-burst: config/default "2000", chart "300"`,
		`--stalled-retry-interval: config/default "5m0s", chart "10m0s"`,
		`--health-probe-bind-address: config/default ":8081", chart ":9000"`,
		`spec.replicas: config/default 2, chart 3`,
		`container securityContext.readOnlyRootFilesystem: config/default true, chart false`,
		`container ports: config/default map[metrics:8443 probes:8081], chart map[metrics:8443 probes:9000]`,
	} {
		if !strings.Contains(diffs, want) {
			t.Errorf("the comparison missed %q; it found:\n%s", want, diffs)
		}
	}
}

// compareWithKustomize lists how rendered differs from kustomized in what matters.
func compareWithKustomize(t *testing.T, flags map[string]operatorFlag, kustomized, rendered []*unstructured.Unstructured) []string {
	t.Helper()
	byKey := map[string]*unstructured.Unstructured{}
	for _, obj := range rendered {
		byKey[key(obj)] = obj
	}
	var diffs []string
	report := func(obj *unstructured.Unstructured, format string, args ...any) {
		diffs = append(diffs, key(obj)+": "+fmt.Sprintf(format, args...))
	}
	for _, want := range kustomized {
		if want.GetKind() == "Namespace" {
			// Helm does not own its release namespace (helm install --create-namespace makes
			// it unlabelled); the README and NOTES.txt ask for the Pod Security label.
			continue
		}
		got, ok := byKey[key(want)]
		if !ok {
			report(want, "in config/default but not rendered by the chart")
			continue
		}
		switch want.GetKind() {
		case "CustomResourceDefinition":
			if !reflect.DeepEqual(want.Object["spec"], got.Object["spec"]) {
				report(want, "spec differs from config/crd/bases: run hack/sync-chart.sh")
			}
		case "ClusterRole", "Role":
			for _, d := range comparePermissions(t, want, got) {
				report(want, "%s", d)
			}
		case "ClusterRoleBinding", "RoleBinding":
			for _, field := range []string{"roleRef", "subjects"} {
				if !reflect.DeepEqual(want.Object[field], got.Object[field]) {
					report(want, "%s: config/default %s, chart %s", field, toJSON(want.Object[field]), toJSON(got.Object[field]))
				}
			}
		case "Deployment":
			for _, d := range compareDeployments(t, flags, want, got) {
				report(want, "%s", d)
			}
		case "ServiceAccount":
			// Present is all that matters.
		default:
			// Anything else (admission policies, ...) must be the same but for metadata.
			for field, value := range want.Object {
				if field == "apiVersion" || field == "kind" || field == "metadata" {
					continue
				}
				if !reflect.DeepEqual(value, got.Object[field]) {
					report(want, "%s differs: config/default %s, chart %s", field, toJSON(value), toJSON(got.Object[field]))
				}
			}
			for field := range got.Object {
				if _, ok := want.Object[field]; !ok && field != "metadata" {
					report(want, "the chart adds %s: %s", field, toJSON(got.Object[field]))
				}
			}
		}
	}
	return diffs
}

// permission is one verb on one resource (or non-resource URL), possibly one name.
type permission struct{ group, resource, name, verb string }

func (p permission) String() string {
	if p.resource == "" {
		return p.verb + " " + p.name // a non-resource URL
	}
	s := fmt.Sprintf("%s %s.%s", p.verb, p.resource, p.group)
	if p.group == "" {
		s = fmt.Sprintf("%s %s", p.verb, p.resource)
	}
	if p.name != "" {
		s += "/" + p.name
	}
	return s
}

// permissions expands a role's rules into single permissions, so that rules split or merged
// differently still compare equal.
func permissions(t *testing.T, role *unstructured.Unstructured) map[permission]bool {
	t.Helper()
	var typed struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(role.Object, &typed); err != nil {
		t.Fatalf("%s: %v", key(role), err)
	}
	return expandRules(typed.Rules)
}

func expandRules(rules []rbacv1.PolicyRule) map[permission]bool {
	out := map[permission]bool{}
	orEmpty := func(s []string) []string {
		if len(s) == 0 {
			return []string{""}
		}
		return s
	}
	for _, rule := range rules {
		for _, verb := range rule.Verbs {
			for _, url := range rule.NonResourceURLs {
				out[permission{name: url, verb: verb}] = true
			}
			for _, group := range rule.APIGroups {
				for _, resource := range rule.Resources {
					for _, name := range orEmpty(rule.ResourceNames) {
						out[permission{group, resource, name, verb}] = true
					}
				}
			}
		}
	}
	return out
}

func comparePermissions(t *testing.T, want, got *unstructured.Unstructured) []string {
	wantPerms, gotPerms := permissions(t, want), permissions(t, got)
	var diffs []string
	for p := range wantPerms {
		if !gotPerms[p] {
			diffs = append(diffs, "chart lacks permission "+p.String())
		}
	}
	for p := range gotPerms {
		if !wantPerms[p] {
			diffs = append(diffs, "chart adds permission "+p.String())
		}
	}
	sort.Strings(diffs)
	return diffs
}

// compareDeployments compares what matters of the operator's Deployment: replicas, service
// account, grace period, pod and container security contexts, ports, probes, resources and
// the flags' effective values. Settings the chart adds on top (a non-root user ID, topology
// spread, ephemeral storage) are allowed: every setting of config/default must be there.
func compareDeployments(t *testing.T, flags map[string]operatorFlag, want, got *unstructured.Unstructured) []string {
	t.Helper()
	var diffs []string
	for _, path := range [][]string{
		{"spec", "replicas"},
		{"spec", "template", "spec", "serviceAccountName"},
		{"spec", "template", "spec", "terminationGracePeriodSeconds"},
	} {
		w, _, _ := unstructured.NestedFieldNoCopy(want.Object, path...)
		g, _, _ := unstructured.NestedFieldNoCopy(got.Object, path...)
		if !reflect.DeepEqual(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s: config/default %v, chart %v", strings.Join(path, "."), w, g))
		}
	}
	wantPod, _, _ := unstructured.NestedMap(want.Object, "spec", "template", "spec", "securityContext")
	gotPod, _, _ := unstructured.NestedMap(got.Object, "spec", "template", "spec", "securityContext")
	diffs = append(diffs, subset("pod securityContext", wantPod, gotPod)...)

	wantC, gotC := container(t, want), container(t, got)
	for _, field := range []string{"securityContext", "livenessProbe", "readinessProbe", "resources"} {
		w, _ := wantC[field].(map[string]any)
		g, _ := gotC[field].(map[string]any)
		diffs = append(diffs, subset("container "+field, w, g)...)
	}
	if w, g := ports(wantC), ports(gotC); !reflect.DeepEqual(w, g) {
		diffs = append(diffs, fmt.Sprintf("container ports: config/default %v, chart %v", w, g))
	}
	wantImage, gotImage := wantC["image"].(string), gotC["image"].(string)
	if repo := func(image string) string { r, _, _ := strings.Cut(image, "@"); return r[:strings.LastIndex(r, ":")] }; repo(wantImage) != repo(gotImage) {
		diffs = append(diffs, fmt.Sprintf("image repository: config/default %s, chart %s", wantImage, gotImage))
	}

	wantFlags, problems := effectiveFlags(t, flags, args(t, want))
	diffs = append(diffs, prefixed("config/default args: ", problems)...)
	gotFlags, problems := effectiveFlags(t, flags, args(t, got))
	diffs = append(diffs, prefixed("chart args: ", problems)...)
	var names []string
	for name := range flags {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if wantFlags[name] != gotFlags[name] {
			diffs = append(diffs, fmt.Sprintf("--%s: config/default %q, chart %q", name, wantFlags[name], gotFlags[name]))
		}
	}
	return diffs
}

// subset reports every field of want that got lacks or sets differently.
func subset(what string, want, got map[string]any) []string {
	var diffs []string
	var walk func(path string, w, g any)
	walk = func(path string, w, g any) {
		wm, wIsMap := w.(map[string]any)
		gm, gIsMap := g.(map[string]any)
		if wIsMap && gIsMap {
			for k, v := range wm {
				walk(path+"."+k, v, gm[k])
			}
			return
		}
		if !reflect.DeepEqual(normaliseValue(w), normaliseValue(g)) {
			diffs = append(diffs, fmt.Sprintf("%s%s: config/default %s, chart %s", what, path, toJSON(w), toJSON(g)))
		}
	}
	walk("", want, got)
	sort.Strings(diffs)
	return diffs
}

// normaliseValue makes numbers decoded from YAML comparable whatever their Go type.
func normaliseValue(v any) any {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	return v
}

func ports(c map[string]any) map[string]any {
	out := map[string]any{}
	list, _ := c["ports"].([]any)
	for _, p := range list {
		p := p.(map[string]any)
		out[fmt.Sprint(p["name"])] = normaliseValue(p["containerPort"])
	}
	return out
}

func prefixed(prefix string, list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, prefix+s)
	}
	return out
}

func toJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}
