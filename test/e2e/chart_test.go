package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// chartNamespace is where the chart installs the operator, as the install docs say.
const chartNamespace = "workspace-operator-system"

// chartValues install the operator from its image on the node, with the chart's own
// ServiceAccount, RBAC and NetworkPolicy. The firewall's API server and AWS rules name the
// stack's addresses: the API server and the emulator listen on the node address, on ports
// that are not 443.
func chartValues(apiServer, emulator *url.URL) map[string]any {
	repository, tag, _ := strings.Cut(operatorImage, ":")
	nodeCIDR := localstack.NodeIP + "/32"
	env := []map[string]string{}
	for _, kv := range awsEnv {
		name, value, _ := strings.Cut(kv, "=")
		env = append(env, map[string]string{"name": name, "value": value})
	}
	return map[string]any{
		"image":    map[string]any{"repository": repository, "tag": tag, "pullPolicy": "Never"},
		"replicas": 1,
		"aws": map[string]any{
			"region": awsRegion, "replicaRegion": replicaRegion,
			"replicationRoleArn": "arn:aws:iam::000000000000:role/replication",
			"endpoints":          map[string]any{"kms": emulator.String(), "s3": emulator.String()},
		},
		"storage": map[string]any{"provisioner": localstack.CSIDriverName},
		// The emulator's credentials; on EKS the ServiceAccount's IAM role gives them.
		"extraEnv": env,
		"networkPolicy": map[string]any{
			"apiServer": map[string]any{"cidrs": []string{nodeCIDR}, "ports": []int{mustAtoi(apiServer.Port())}},
			"extraEgress": []any{map[string]any{
				"to":    []any{map[string]any{"ipBlock": map[string]any{"cidr": nodeCIDR}}},
				"ports": []any{map[string]any{"port": mustAtoi(emulator.Port()), "protocol": "TCP"}},
			}},
		},
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	Expect(err).NotTo(HaveOccurred())
	return n
}

// chartOperatorSpecs register, inside the suite's ordered container (before the uninstall
// spec), the specs that run the operator as production does: a pod from its image, installed
// by the chart, with the chart's RBAC rather than an admin kubeconfig.
func chartOperatorSpecs() {
	Context("installed by its chart on a real node", Ordered, func() {
		var rendered string

		BeforeAll(func() {
			if noNode != "" {
				Skip(noNode)
			}
			helm := os.Getenv("HELM")
			if helm == "" {
				Skip("HELM is not set: run through make test or make test-e2e, which install helm")
			}
			apiServer, err := url.Parse(stack.Config().Host)
			Expect(err).NotTo(HaveOccurred())
			emulator, err := url.Parse(emulatorURL)
			Expect(err).NotTo(HaveOccurred())
			values, err := yaml.Marshal(chartValues(apiServer, emulator))
			Expect(err).NotTo(HaveOccurred())
			valuesFile := filepath.Join(workDir, "chart-values.yaml")
			Expect(os.WriteFile(valuesFile, values, 0o600)).To(Succeed())
			discovery, err := discovery.NewDiscoveryClientForConfig(stack.Config())
			Expect(err).NotTo(HaveOccurred())
			version, err := discovery.ServerVersion()
			Expect(err).NotTo(HaveOccurred())
			out, err := exec.CommandContext(ctx, helm, "template", "workspace-operator",
				filepath.Join(testenv.RepoRoot(), "charts", "workspace-operator"),
				"--namespace="+chartNamespace, "--values="+valuesFile, "--kube-version="+version.GitVersion).Output()
			var stderr []byte
			if exitErr, ok := err.(*exec.ExitError); ok {
				stderr = exitErr.Stderr
			}
			Expect(err).NotTo(HaveOccurred(), "helm template: %s", stderr)
			rendered = filepath.Join(workDir, "chart.yaml")
			Expect(os.WriteFile(rendered, out, 0o600)).To(Succeed())

			By("stopping the operator process, so that the chart's pod is the only operator")
			Expect(operator.Stop()).To(Succeed())
			DeferCleanup(func() {
				var err error
				operator, err = stack.StartOperator(ctx, operatorOptions)
				Expect(err).NotTo(HaveOccurred())
			})
		})

		It("runs as a pod with the chart's RBAC and makes a workspace Ready, then deletes it", func() {
			Expect(stack.Apply(ctx, rendered)).To(Succeed())
			DeferCleanup(func() {
				deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: chartNamespace, Name: "workspace-operator"}}
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, deployment))).To(Succeed())
				Eventually(func(g Gomega) {
					var pods corev1.PodList
					g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(chartNamespace))).To(Succeed())
					g.Expect(pods.Items).To(BeEmpty(), "the operator pod has stopped and released its lease")
				}, namespaceTimeout, interval).Should(Succeed())
			})
			Eventually(func(g Gomega) {
				deployment := &appsv1.Deployment{}
				g.Expect(k8sClient.Get(ctx, key(chartNamespace, "workspace-operator"), deployment)).To(Succeed())
				g.Expect(deployment.Status.AvailableReplicas).To(BeNumerically("==", 1))
			}, podTimeout, interval).Should(Succeed(), "the operator pod is Ready: its probes pass through its own NetworkPolicy")

			Expect(k8sClient.Create(ctx, &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: "charted"},
				Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "chris"}}},
			})).To(Succeed())
			ws := expectReady("charted")
			Expect(ws.Status.Backup.Locations).To(HaveLen(2), "the pod reached KMS and S3 through its firewall")

			Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, key("", "charted"), &tenancyv1alpha1.Workspace{}))
			}, namespaceTimeout, interval).Should(BeTrue(), "the pod ran the secure deletion and released the finalizer")
		})
	})
}
