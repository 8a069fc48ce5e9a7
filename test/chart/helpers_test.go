// Package chart tests the Helm chart in charts/workspace-operator: that it lints, renders
// and rejects bad values, that it stays equivalent to config/default, that its manifests
// pass a real API server's validation and kube-score, and that the operator's RBAC only
// changes through a reviewed allow-list.
//
// The tests that need helm, kube-score or a control plane are skipped with -short; they
// find helm and kube-score in bin/ (make helm kube-score) or in $HELM and $KUBE_SCORE, and
// kubectl and the API server in $KUBEBUILDER_ASSETS (make test sets it).
package chart

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

const (
	// releaseName and releaseNamespace make the chart's object names those of config/default.
	releaseName      = "workspace-operator"
	releaseNamespace = "workspace-operator-system"
	// kubeVersion is the control plane hack/controlplane.sh builds, which the dry-run uses.
	kubeVersion = "1.37.1"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func chartDir() string { return filepath.Join(repoRoot(), "charts", "workspace-operator") }

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs helm, kube-score or a control plane: run without -short (make test)")
	}
}

// tool finds a binary from its environment variable, else in bin/ as the Makefile installs
// it (bin/<name>-<version>, or bin/<name>), and fails naming the make target otherwise.
func tool(t *testing.T, name, envVar, makeTarget string) string {
	t.Helper()
	if path := os.Getenv(envVar); path != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s=%s: %v", envVar, path, err)
		}
		return path
	}
	bin := filepath.Join(repoRoot(), "bin")
	versioned, _ := filepath.Glob(filepath.Join(bin, name+"-v*"))
	sort.Strings(versioned)
	candidates := append([]string{}, versioned...)
	candidates = append(candidates, filepath.Join(bin, name))
	for i := len(candidates) - 1; i >= 0; i-- {
		if info, err := os.Stat(candidates[i]); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return candidates[i]
		}
	}
	t.Fatalf("%s not found in %s: run `make %s` to install it (or set %s to its path)", name, bin, makeTarget, envVar)
	return ""
}

func helmBin(t *testing.T) string      { return tool(t, "helm", "HELM", "helm") }
func kubeScoreBin(t *testing.T) string { return tool(t, "kube-score", "KUBE_SCORE", "kube-score") }

// assetsDir is the control plane for envtest and its kubectl.
func assetsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
	}
	return dir
}

func kubectlBin(t *testing.T) string {
	t.Helper()
	path := filepath.Join(assetsDir(t), "kubectl")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no kubectl in KUBEBUILDER_ASSETS: %v (hack/controlplane.sh builds it)", err)
	}
	return path
}

// run runs a command in the repository root and returns its stdout, and its stderr in err.
func run(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &commandError{cmd: name + " " + strings.Join(args, " "), err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type commandError struct {
	cmd, stderr string
	err         error
}

func (e *commandError) Error() string {
	return e.cmd + ": " + e.err.Error() + "\n" + e.stderr
}

// helmTemplate renders the chart as `helm install workspace-operator -n
// workspace-operator-system` would, CRDs included, with the given --set/-f arguments.
func helmTemplate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", releaseName, chartDir(), "--namespace", releaseNamespace,
		"--kube-version", kubeVersion, "--include-crds"}
	return run(t, nil, helmBin(t), append(base, args...)...)
}

// mustRender renders the chart and decodes it, failing the test on any error.
func mustRender(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(args, " "), err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.DecodeManifests([]byte(manifests))
	if err != nil {
		t.Fatalf("decode manifests: %v", err)
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		out = append(out, obj.(*unstructured.Unstructured))
	}
	return out
}

// kustomizeDefault is `kubectl kustomize config/default`, with the kubectl built by
// hack/controlplane.sh.
func kustomizeDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := run(t, nil, kubectlBin(t), "kustomize", filepath.Join(repoRoot(), "config", "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	return decode(t, out)
}

func key(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// container returns the manager container of a Deployment.
func container(t *testing.T, deployment *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if c := c.(map[string]any); c["name"] == "manager" {
			return c
		}
	}
	t.Fatalf("%s has no manager container", key(deployment))
	return nil
}

func args(t *testing.T, deployment *unstructured.Unstructured) []string {
	t.Helper()
	raw, _ := container(t, deployment)["args"].([]any)
	out := make([]string, 0, len(raw))
	for _, a := range raw {
		out = append(out, a.(string))
	}
	return out
}

// allOptional turns on every optional part of the chart.
var allOptional = []string{
	"--set", "serviceMonitor.enabled=true",
	"--set", "prometheusRule.enabled=true",
	"--set", "grafanaDashboard.enabled=true",
	"--set", "metrics.readerSubjects[0].kind=ServiceAccount",
	"--set", "metrics.readerSubjects[0].name=prometheus-k8s",
	"--set", "metrics.readerSubjects[0].namespace=monitoring",
	"--set", "aws.region=eu-west-1",
	"--set", "aws.kmsKeyPolicy.Version=2012-10-17",
	"--set", "dataMover.namespace=workspace-operator-mover",
}
