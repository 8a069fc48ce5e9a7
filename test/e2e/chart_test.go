package e2e

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/datamover"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// chartNamespace is where the chart installs the operator, as the install docs say.
const chartNamespace = "workspace-operator-system"

// moverNamespace is the data mover's namespace, which the chart creates.
const moverNamespace = "workspace-operator-mover"

// podIdentityPolicy gives every pod of the mover namespace the emulator's access key of the
// backup role, the identity the mover's ServiceAccount is annotated with on EKS.
func podIdentityPolicy() string {
	return localstack.PodIdentityPolicy(moverNamespace, localstack.ClientEnvAs(awsemu.BackupAccessKeyID, awsemu.TestSecretAccessKey))
}

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
		"storage":   map[string]any{"provisioner": localstack.CSIDriverName},
		"dataMover": map[string]any{"namespace": moverNamespace},
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

// emulatorEndpointEnv sends an agent run by a spec to the emulator, as the operator sends
// the pods it creates.
func emulatorEndpointEnv() []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, kv := range localstack.EndpointEnv(emulatorURL) {
		name, value, _ := strings.Cut(kv, "=")
		env = append(env, corev1.EnvVar{Name: name, Value: value})
	}
	return env
}

// ledger is what the workload writes into its volume; hookOutput what its pre-backup hook
// writes there.
const (
	ledger     = "invoice 1: 100 EUR"
	hookOutput = "flushed by the pre-backup hook"
)

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
		// ledgerLine is what the probe read of the workload's file: owner, group, mode, content.
		var ledgerLine string

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
			if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
				stderr = exitErr.Stderr
			}
			Expect(err).NotTo(HaveOccurred(), "helm template: %s", stderr)
			rendered = filepath.Join(workDir, "chart.yaml")
			Expect(os.WriteFile(rendered, out, 0o600)).To(Succeed())
			identity := filepath.Join(workDir, "pod-identity.yaml")
			Expect(os.WriteFile(identity, []byte(podIdentityPolicy()), 0o600)).To(Succeed())
			Expect(stack.Apply(ctx, identity)).To(Succeed())

			By("stopping the operator process, so that the chart's pod is the only operator")
			Expect(operator.Stop()).To(Succeed())
			DeferCleanup(func() {
				var err error
				operator, err = stack.StartOperator(ctx, operatorOptions)
				Expect(err).NotTo(HaveOccurred())
			})
			Expect(stack.Apply(ctx, rendered)).To(Succeed())
			DeferCleanup(func() {
				if CurrentSpecReport().Failed() {
					logs, _ := stack.Kubectl(ctx, "logs", "--namespace="+chartNamespace, "deployment/workspace-operator", "--tail=80").CombinedOutput()
					fmt.Fprintf(GinkgoWriter, "\n----- last lines of the operator pod's log -----\n%s\n", logs)
				}
				deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: chartNamespace, Name: "workspace-operator"}}
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, deployment))).To(Succeed())
				Eventually(func(g Gomega) {
					var pods corev1.PodList
					g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(chartNamespace))).To(Succeed())
					g.Expect(pods.Items).To(BeEmpty(), "the operator pod has stopped and released its lease")
				}, namespaceTimeout, interval).Should(Succeed())
			})
		})

		It("runs as a pod with the chart's RBAC and makes a workspace Ready", func() {
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
		})

		It("backs up a volume in use through a snapshot, from the mover namespace", func() {
			const namespace = "ws-charted"
			claim := &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: ptrTo(namespace + "-encrypted"),
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
				},
			}
			Expect(k8sClient.Create(ctx, claim)).To(Succeed())
			By("running a workload that writes to the volume and keeps it in use")
			writer := probePod(namespace, "writer", corev1.RestartPolicyAlways, "write", "--file=/data/ledger.txt", "--content="+ledger)
			writer.Spec.SecurityContext.FSGroup = ptr.To[int64](65532)
			// The application's own pre-backup hook, run by the mover through exec right
			// before the snapshot: what it writes must be in the backup.
			writer.Annotations = map[string]string{
				datamover.PreBackupHookCommandAnnotation: `["/probe", "put", "--file=/data/hook.txt", "--content=` + hookOutput + `"]`,
			}
			writer.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "db", MountPath: "/data"}}
			writer.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db"},
			}}}
			Expect(k8sClient.Create(ctx, writer)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(namespace, "writer"), writer)).To(Succeed())
				g.Expect(writer.Status.ContainerStatuses).NotTo(BeEmpty())
				g.Expect(writer.Status.ContainerStatuses[0].Ready).To(BeTrue())
			}, podTimeout, interval).Should(Succeed())

			By("starting a backup now: kubectl create job --from=cronjob/backup-charted in the mover namespace")
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(moverNamespace, "backup-charted"), &batchv1.CronJob{})).To(Succeed())
			}, readyTimeout, interval).Should(Succeed())
			out, err := stack.Kubectl(ctx, "create", "job", "--namespace="+moverNamespace, "backup-now", "--from=cronjob/backup-charted").CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "%s", out)

			run := &tenancyv1alpha1.WorkspaceBackup{}
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(moverNamespace, "backup-now"), run)).To(Succeed())
				g.Expect(run.Status.Phase).To(BeElementOf(tenancyv1alpha1.BackupRunSucceeded, tenancyv1alpha1.BackupRunFailed, tenancyv1alpha1.BackupRunPartiallyFailed))
			}, 3*time.Minute, interval).Should(Succeed())
			Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded), "run status: %+v", run.Status)
			Expect(run.Status.Volumes).To(HaveLen(1))
			Expect(run.Status.Volumes[0].Bytes).To(BeNumerically(">", 0))

			Eventually(func(g Gomega) {
				job := &batchv1.Job{}
				g.Expect(k8sClient.Get(ctx, key(moverNamespace, "backup-now"), job)).To(Succeed())
				g.Expect(job.Status.Succeeded).To(BeNumerically("==", 1), "the request pod reports the run's success")
			}, readyTimeout, interval).Should(Succeed())

			By("leaving nothing behind: no snapshot in the tenant's namespace, no volume or pod in the mover's")
			Eventually(func(g Gomega) {
				snapshots := &unstructured.UnstructuredList{}
				snapshots.SetAPIVersion("snapshot.storage.k8s.io/v1")
				snapshots.SetKind("VolumeSnapshotList")
				g.Expect(k8sClient.List(ctx, snapshots, client.InNamespace(namespace))).To(Succeed())
				g.Expect(snapshots.Items).To(BeEmpty())
				var claims corev1.PersistentVolumeClaimList
				g.Expect(k8sClient.List(ctx, &claims, client.InNamespace(moverNamespace))).To(Succeed())
				g.Expect(claims.Items).To(BeEmpty())
			}, readyTimeout, interval).Should(Succeed())

			By("giving the workspace's owner no way into the mover namespace")
			for _, attributes := range []authorizationv1.ResourceAttributes{
				{Namespace: moverNamespace, Verb: "create", Resource: "pods"},
				{Namespace: moverNamespace, Verb: "create", Resource: "pods", Subresource: "exec"},
				{Namespace: moverNamespace, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Name: "mover-charted"},
				{Namespace: moverNamespace, Verb: "get", Resource: "persistentvolumeclaims"},
				{Namespace: moverNamespace, Verb: "create", Group: tenancyv1alpha1.GroupVersion.Group, Resource: "workspacebackups"},
				{Namespace: moverNamespace, Verb: "delete", Group: tenancyv1alpha1.GroupVersion.Group, Resource: "workspacerestores"},
				{Namespace: namespace, Verb: "create", Resource: "pods", Subresource: "exec"},
			} {
				review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "chris", ResourceAttributes: &attributes}}
				Expect(k8sClient.Create(ctx, review)).To(Succeed())
				if attributes.Namespace == namespace {
					Expect(review.Status.Allowed).To(BeTrue(), "the owner may exec into its own pods: the check can say yes")
					continue
				}
				Expect(review.Status.Allowed).To(BeFalse(), "the owner may %s %s/%s in the mover namespace", attributes.Verb, attributes.Resource, attributes.Subresource)
			}

			By("finding the volume's backup, with its bytes, from the restore side")
			ws := getWorkspace(Default, "charted")
			list := runAgent(agentCommand{args: []string{"restore", "--workspace", "charted", "--list",
				"--location", awsRegion + "=" + ws.Status.Backup.Locations[0].Bucket,
				"--location", replicaRegion + "=" + ws.Status.Backup.Locations[1].Bucket,
			}, env: emulatorEndpointEnv()}, GinkgoT().TempDir())
			Expect(string(list)).To(ContainSubstring(run.Status.Volumes[0].BackupID))
		})

		It("restores the volume beside the live one, into a claim that binds only once the data is in", func() {
			const namespace = "ws-charted"
			runs := &tenancyv1alpha1.WorkspaceBackupList{}
			Expect(k8sClient.List(ctx, runs, client.InNamespace(moverNamespace))).To(Succeed())
			Expect(runs.Items).NotTo(BeEmpty(), "the backup spec ran first")
			backupID := runs.Items[0].Status.BackupID

			DeferCleanup(func() {
				if CurrentSpecReport().Failed() {
					out, _ := stack.Kubectl(ctx, "describe", "workspacerestores,pvc,pods", "--namespace="+moverNamespace).CombinedOutput()
					claims, _ := stack.Kubectl(ctx, "describe", "pvc,pods", "--namespace="+namespace).CombinedOutput()
					volumes, _ := stack.Kubectl(ctx, "get", "pv", "-o", "yaml").CombinedOutput()
					fmt.Fprintf(GinkgoWriter, "\n----- mover namespace -----\n%s\n----- workspace -----\n%s\n----- volumes -----\n%s\n", out, claims, volumes)
				}
			})

			By("asking for the restore in spec.restore, under another claim name")
			ws := getWorkspace(Default, "charted")
			ws.Spec.Restore = &tenancyv1alpha1.RestoreSpec{
				BackupID: backupID, Volumes: []string{"db"},
				Targets: []tenancyv1alpha1.RestoreTarget{{Volume: "db", Claim: "db-restored"}},
			}
			Expect(k8sClient.Update(ctx, ws)).To(Succeed())

			By("starting a workload on the restored claim at once: it must wait for the data")
			reader := probePod(namespace, "reader", corev1.RestartPolicyNever, "read", "/original/ledger.txt", "/restored/ledger.txt", "/restored/hook.txt")
			reader.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
				{Name: "original", MountPath: "/original", ReadOnly: true},
				{Name: "restored", MountPath: "/restored", ReadOnly: true},
			}
			reader.Spec.Volumes = []corev1.Volume{
				{Name: "original", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db", ReadOnly: true}}},
				{Name: "restored", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db-restored", ReadOnly: true}}},
			}
			Expect(k8sClient.Create(ctx, reader)).To(Succeed())

			Eventually(func(g Gomega) {
				ws := getWorkspace(g, "charted")
				restored := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionRestored)
				g.Expect(restored).NotTo(BeNil())
				g.Expect(restored.Reason).NotTo(Equal("RestoreFailed"), restored.Message)
				g.Expect(restored.Status).To(Equal(metav1.ConditionTrue), restored.Message)
			}, 3*time.Minute, interval).Should(Succeed())

			By("finding the data, its owner and its mode as the workload wrote them")
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(namespace, "reader"), reader)).To(Succeed())
				g.Expect(reader.Status.Phase).To(Equal(corev1.PodSucceeded), "reader: %+v", reader.Status)
			}, podTimeout, interval).Should(Succeed())
			out, err := stack.Kubectl(ctx, "logs", "--namespace="+namespace, "reader").Output()
			Expect(err).NotTo(HaveOccurred())
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			Expect(lines).To(HaveLen(3), "%s", out)
			Expect(lines[0]).To(ContainSubstring(strconv.Quote(ledger)))
			Expect(lines[1]).To(Equal(lines[0]), "the restored file is the original, owner and mode included")
			Expect(lines[2]).To(ContainSubstring(strconv.Quote(hookOutput)), "the hook ran in the application pod before the snapshot")
			ledgerLine = lines[0]

			By("handing over a volume that is the workspace's like any other, and leaving nothing in the mover namespace")
			claim := &corev1.PersistentVolumeClaim{}
			Expect(k8sClient.Get(ctx, key(namespace, "db-restored"), claim)).To(Succeed())
			pv := &corev1.PersistentVolume{}
			Expect(k8sClient.Get(ctx, key("", claim.Spec.VolumeName), pv)).To(Succeed())
			Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete))
			Expect(pv.Spec.StorageClassName).To(Equal(namespace + "-encrypted"))
			Eventually(func(g Gomega) {
				var claims corev1.PersistentVolumeClaimList
				g.Expect(k8sClient.List(ctx, &claims, client.InNamespace(moverNamespace))).To(Succeed())
				g.Expect(claims.Items).To(BeEmpty())
				var pods corev1.PodList
				g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(moverNamespace), client.HasLabels{tenancyv1alpha1.RestoreRunLabel})).To(Succeed())
				g.Expect(pods.Items).To(BeEmpty())
			}, readyTimeout, interval).Should(Succeed())
		})

		It("runs the secure deletion", func() {
			ws := getWorkspace(Default, "charted")
			Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, key("", "charted"), &tenancyv1alpha1.Workspace{}))
			}, namespaceTimeout, interval).Should(BeTrue(), "the pod ran the secure deletion and released the finalizer")
		})

		It("undeletes through the mover: the volume comes back from the backup buckets into a new claim", func() {
			const namespace = "ws-charted"
			Expect(ledgerLine).NotTo(BeEmpty(), "the restore spec ran first")
			var purges tenancyv1alpha1.WorkspacePurgeList
			Expect(k8sClient.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "charted"})).To(Succeed())
			Expect(purges.Items).To(HaveLen(1))
			purge := purges.Items[0]
			Expect(purge.Spec.Volumes).To(ContainElement(HaveField("Name", "db")))
			for _, v := range purge.Spec.Volumes {
				if v.Name == "db" {
					Expect(v.BackupID).NotTo(BeEmpty(), "the record keeps the volume's own last backup")
				}
			}

			Expect(k8sClient.Create(ctx, &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: "charted"},
				Spec: tenancyv1alpha1.WorkspaceSpec{
					Owners:      []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "chris"}},
					RestoreFrom: purge.Name,
				},
			})).To(Succeed())
			DeferCleanup(func() {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "charted"}}))).To(Succeed())
				Eventually(func() bool {
					return apierrors.IsNotFound(k8sClient.Get(ctx, key("", "charted"), &tenancyv1alpha1.Workspace{}))
				}, namespaceTimeout, interval).Should(BeTrue())
			})
			Eventually(func(g Gomega) {
				ws := getWorkspace(g, "charted")
				restored := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionRestored)
				g.Expect(restored).NotTo(BeNil())
				g.Expect(restored.Reason).NotTo(Equal("RestoreFailed"), restored.Message)
				g.Expect(restored.Status).To(Equal(metav1.ConditionTrue), restored.Message)
			}, 3*time.Minute, interval).Should(Succeed())

			By("reading the file back as the workload wrote it, from a volume the namespace's deletion had destroyed")
			reader := probePod(namespace, "reader", corev1.RestartPolicyNever, "read", "/data/ledger.txt")
			reader.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "db", MountPath: "/data", ReadOnly: true}}
			reader.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db", ReadOnly: true},
			}}}
			Expect(k8sClient.Create(ctx, reader)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(namespace, "reader"), reader)).To(Succeed())
				g.Expect(reader.Status.Phase).To(Equal(corev1.PodSucceeded), "reader: %+v", reader.Status)
			}, podTimeout, interval).Should(Succeed())
			out, err := stack.Kubectl(ctx, "logs", "--namespace="+namespace, "reader").Output()
			Expect(err).NotTo(HaveOccurred())
			Expect(strings.TrimSpace(string(out))).To(Equal(ledgerLine))
		})
	})
}
