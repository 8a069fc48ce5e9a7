package chart

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// prometheusOperator is the module whose example/prometheus-operator-crd holds the
// ServiceMonitor and PrometheusRule CRDs, fetched through the Go module proxy like
// cert-manager's in internal/testenv. It is not a dependency of the operator.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

func prometheusOperatorCRDs(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", prometheusOperator)
	cmd.Dir = t.TempDir() // outside this module: go.mod and go.sum stay untouched
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("download %s through the Go module proxy: %v\n%s", prometheusOperator, err, out)
	}
	var module struct{ Dir string }
	if err := json.Unmarshal(out, &module); err != nil || module.Dir == "" {
		t.Fatalf("locate %s in %q: %v", prometheusOperator, out, err)
	}
	dir := filepath.Join(module.Dir, "example", "prometheus-operator-crd")
	return []string{
		filepath.Join(dir, "monitoring.coreos.com_servicemonitors.yaml"),
		filepath.Join(dir, "monitoring.coreos.com_prometheusrules.yaml"),
	}
}

// warnings collects the API server's warnings: deprecated APIs, unknown fields and Pod
// Security violations all arrive as warnings on an otherwise successful request.
type warnings struct {
	sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.Lock()
	defer w.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.Lock()
	defer w.Unlock()
	list := w.list
	w.list = nil
	return list
}

// TestServerSideDryRun applies the rendered chart, every option on, to a real API server
// with server-side apply in dry-run mode and strict field validation. The chart's CRD is
// installed from charts/workspace-operator/crds (which tests that it installs), the
// ServiceMonitor and PrometheusRule CRDs from prometheus-operator's module. The operator's
// pod template is also dry-run created as a Pod in a namespace that enforces the restricted
// Pod Security profile.
func TestServerSideDryRun(t *testing.T) {
	skipShort(t)
	assetsDir(t)
	env := &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(chartDir(), "crds")}, prometheusOperatorCRDs(t)...),
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the API server: %v", err)
		}
	})
	collected := &warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandlerWithContext = collected
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The release namespace, for real, labelled as the README says; and the namespaces the
	// chart's values point at.
	for _, ns := range []string{releaseNamespace, "monitoring"} {
		namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		}}}
		if err := c.Create(ctx, namespace); err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}

	// A control: the same checks must reject a broken Deployment and an unsafe pod, or the
	// passes below mean nothing.
	t.Run("control", func(t *testing.T) {
		deployment := find(mustRender(t), "Deployment", releaseName).DeepCopy()
		containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
		containers[0].(map[string]any)["imagePullPolicyy"] = "Always"
		_ = unstructured.SetNestedSlice(deployment.Object, containers, "spec", "template", "spec", "containers")
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(deployment), client.DryRunAll, client.FieldOwner("helm"), client.ForceOwnership)
		if err == nil || !strings.Contains(err.Error(), "imagePullPolicyy") {
			t.Errorf("dry-run accepted a Deployment with an unknown field: %v", err)
		}
		collected.take()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "unsafe", Namespace: releaseNamespace},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
		}
		if err := c.Create(ctx, pod, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Errorf("dry-run accepted a pod that violates the restricted profile: %v", err)
		}
		collected.take()
	})

	for name, values := range map[string][]string{
		"every option on":  allOptional,
		"a single replica": {"--set", "replicas=1", "--set", "leaderElection.enabled=false", "--set", "metrics.secure=false"},
	} {
		t.Run(name, func(t *testing.T) {
			objs := mustRender(t, values...)
			for _, obj := range objs {
				applyConfig := client.ApplyConfigurationFromUnstructured(obj.DeepCopy())
				opts := []client.ApplyOption{client.FieldOwner("helm"), client.ForceOwnership}
				// A namespace the chart creates (the data mover's) is applied for real, so
				// that the objects in it can be dry-run.
				if obj.GetKind() != "Namespace" {
					opts = append(opts, client.DryRunAll)
				}
				err := c.Apply(ctx, applyConfig, opts...)
				if err != nil {
					t.Errorf("server-side dry-run of %s: %v", key(obj), err)
				}
				for _, w := range collected.take() {
					t.Errorf("server-side dry-run of %s: warning: %s", key(obj), w)
				}
			}

			// The pod the Deployment would create, against the restricted profile.
			deployment := find(objs, "Deployment", releaseName)
			template, _, _ := unstructured.NestedMap(deployment.Object, "spec", "template")
			pod := &unstructured.Unstructured{Object: template}
			pod.SetAPIVersion("v1")
			pod.SetKind("Pod")
			pod.SetNamespace(releaseNamespace)
			pod.SetName(releaseName + "-dry-run")
			if err := c.Create(ctx, pod, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("dry-run create of the operator pod: %v", err)
			}
			for _, w := range collected.take() {
				t.Errorf("dry-run create of the operator pod: warning: %s", w)
			}
		})
	}
}

// TestKubeScore runs kube-score on the rendered chart: no CRITICAL finding.
//
// Two checks are relaxed, on purpose:
//   - --ignore-container-cpu-limit: a CPU limit throttles the reconciler under load (CFS
//     quota), slowing every Workspace for no isolation gain; the CPU request reserves its
//     share. Memory and ephemeral storage are limited.
//   - container-image-pull-policy (wants Always): an image-tag policy check. The chart pins
//     the image to the chart's appVersion or a digest, never latest (the schema and a
//     template check refuse it), so IfNotPresent runs exactly the pinned image and lets the
//     operator restart while the registry is unreachable. Set image.pullPolicy=Always where
//     nodes share images between tenants with different pull secrets.
func TestKubeScore(t *testing.T) {
	skipShort(t)
	for name, values := range map[string][]string{
		"default values":  nil,
		"every option on": allOptional,
	} {
		t.Run(name, func(t *testing.T) {
			manifests, err := helmTemplate(t, values...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := run(t, []byte(manifests), kubeScoreBin(t), "score", "--output-format", "ci",
				"--ignore-container-cpu-limit", "--ignore-test", "container-image-pull-policy", "-")
			var critical []string
			for _, line := range strings.Split(out, "\n") {
				switch {
				case strings.HasPrefix(line, "[CRITICAL]"):
					critical = append(critical, line)
				case strings.HasPrefix(line, "[WARNING]"):
					t.Log(line)
				}
			}
			if len(critical) > 0 {
				t.Errorf("kube-score found %d critical problems:\n%s", len(critical), strings.Join(critical, "\n"))
			} else if err != nil {
				t.Errorf("kube-score: %v\n%s", err, out)
			}
		})
	}
}

// TestHelmInstallAndUpgrade installs the chart with helm into a real API server (CRDs from
// crds/ included), then upgrades it to other values, as an operator of the cluster would.
// Nothing runs the pods: the API server alone checks what helm sends.
func TestHelmInstallAndUpgrade(t *testing.T) {
	skipShort(t)
	assetsDir(t)
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the API server: %v", err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	kubeconfigFile := filepath.Join(home, "kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helmBin(t), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigFile, "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := helm("install", releaseName, chartDir(), "--namespace", releaseNamespace, "--create-namespace", "--wait=false")
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "workspace-operator 0.1.0 is installed") {
		t.Errorf("helm install did not deploy, or NOTES.txt did not render:\n%s", out)
	}
	helm("upgrade", releaseName, chartDir(), "--namespace", releaseNamespace,
		"--set", "replicas=1", "--set", "leaderElection.enabled=false", "--set", "metrics.enabled=false")
	helm("upgrade", releaseName, chartDir(), "--namespace", releaseNamespace, "--reuse-values", "--set", "replicas=3",
		"--set", "leaderElection.enabled=true", "--set", "metrics.enabled=true")
	out = helm("uninstall", releaseName, "--namespace", releaseNamespace)
	if !strings.Contains(out, "uninstalled") {
		t.Errorf("helm uninstall: %s", out)
	}

	// Uninstalling must leave the CRD, and with it every Workspace and tenant's data.
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := c.Get(context.Background(), client.ObjectKey{Name: "workspaces.tenancy.workspace-operator.io"}, crd); err != nil {
		t.Errorf("the Workspace CRD is gone after helm uninstall: %v", err)
	}
}
