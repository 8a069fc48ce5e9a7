package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
)

// agentCommand is what a Job's container runs: the agent's arguments and the environment
// the operator gave it.
type agentCommand struct {
	args []string
	env  []corev1.EnvVar
}

// runAgent runs a Job's container command the way its pod would, with the operator binary
// standing in for the operator image and localDir standing in for /data, where the pod
// mounts the workspace's volumes. The container's environment is all that tells it where
// AWS is: awsEnv only holds the credentials.
func runAgent(command agentCommand, localDir string, extra ...string) []byte {
	mapped := make([]string, 0, len(command.args)+len(extra))
	for _, a := range append(append([]string(nil), command.args...), extra...) {
		if a == "/dev/termination-log" {
			a = filepath.Join(localDir, "termination-log")
		}
		mapped = append(mapped, strings.Replace(a, "/data", localDir, 1))
	}
	cmd := exec.CommandContext(ctx, operatorBinary, mapped...)
	cmd.Env = append(os.Environ(), awsEnv...)
	// Should the pod lack an endpoint, the request goes to a dead proxy rather than to AWS:
	// Go never proxies loopback addresses, where the emulator is, nor the node address, where
	// it is with a node.
	cmd.Env = append(cmd.Env, "HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY="+localstack.NodeIP)
	for _, e := range command.env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "agent %v failed:\n%s", mapped, stderr.String())
	return stdout
}

func podCommand(template corev1.PodTemplateSpec) agentCommand {
	Expect(template.Spec.Containers).To(HaveLen(1))
	return agentCommand{args: template.Spec.Containers[0].Args, env: template.Spec.Containers[0].Env}
}

// backupUndeleteSpecs back a workspace up with the agent exactly as its CronJob runs it,
// delete the workspace, undelete it and restore the data byte for byte.
func backupUndeleteSpecs() {
	var (
		localData = map[string][]byte{}
		purgeName string
		dataDir   string
	)

	It("backs a workspace up to both regions with the CronJob's own command", func() {
		ws := &tenancyv1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: "vault"},
			Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}}},
		}
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady("vault")
		Expect(ws.Status.Backup.Locations).To(HaveLen(2))

		cronJob := &batchv1.CronJob{}
		Expect(k8sClient.Get(ctx, key("ws-vault", "workspace-backup"), cronJob)).To(Succeed())
		backupCommand := podCommand(cronJob.Spec.JobTemplate.Spec.Template)
		Expect(backupCommand.args[0]).To(Equal("backup"))

		dataDir = GinkgoT().TempDir()
		volume := filepath.Join(dataDir, "db")
		Expect(os.MkdirAll(filepath.Join(volume, "tables"), 0o755)).To(Succeed())
		localData["tables/invoices.db"] = make([]byte, 3<<20)
		_, _ = rand.Read(localData["tables/invoices.db"])
		localData["README"] = []byte("customer ledger\n")
		for name, data := range localData {
			Expect(os.WriteFile(filepath.Join(volume, name), data, 0o640)).To(Succeed())
		}
		// The pod would mount the workspace's volume db at /data/db.
		out := runAgent(backupCommand, dataDir, "--source", "/data/db")

		var summary struct {
			BackupID  string `json:"backupID"`
			Status    string `json:"status"`
			Locations []struct {
				Region, Bucket string
				Backups        int
			} `json:"locations"`
		}
		Expect(json.Unmarshal(out, &summary)).To(Succeed(), "summary: %s", out)
		Expect(summary.Status).To(Equal("succeeded"))
		Expect(summary.Locations).To(HaveLen(2))
		for i, l := range summary.Locations {
			Expect(l.Bucket).To(Equal(ws.Status.Backup.Locations[i].Bucket))
			Expect(l.Backups).To(Equal(1), "a complete backup in %s", l.Region)
		}

		By("finding the backup from the restore side, in each location")
		list := runAgent(agentCommand{env: backupCommand.env, args: []string{"restore", "--workspace", "vault", "--list",
			"--location", awsRegion + "=" + ws.Status.Backup.Locations[0].Bucket,
			"--location", replicaRegion + "=" + ws.Status.Backup.Locations[1].Bucket,
		}}, dataDir)
		Expect(strings.Count(string(list), summary.BackupID)).To(BeNumerically(">=", 2), "listing:\n%s", list)

		// Record the backup as its Job would (kube-controller-manager runs no pods here).
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "vault")
			ws.Status.Backup.LastBackupID = summary.BackupID
			g.Expect(k8sClient.Status().Update(ctx, ws)).To(Succeed())
		}, readyTimeout, interval).Should(Succeed())
	})

	It("undeletes the workspace inside the purge window and restores its data byte for byte", func() {
		// The deletion records the volumes it finds: the pod's volume db.
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ws-vault", Name: "db"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptrTo("ws-vault-encrypted"),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
			},
		}
		Expect(k8sClient.Create(ctx, claim)).To(Succeed())
		Expect(k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}})).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, key("", "vault"), &tenancyv1alpha1.Workspace{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			var purges tenancyv1alpha1.WorkspacePurgeList
			g.Expect(k8sClient.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "vault"})).To(Succeed())
			g.Expect(purges.Items).To(HaveLen(1))
			g.Expect(purges.Items[0].Status.State).To(Equal(tenancyv1alpha1.PurgePending))
			g.Expect(purges.Items[0].Spec.LastBackupID).NotTo(BeEmpty())
			purgeName = purges.Items[0].Name
		}, namespaceTimeout, interval).Should(Succeed())

		By("undeleting with spec.restoreFrom")
		ws := &tenancyv1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: "vault"},
			Spec: tenancyv1alpha1.WorkspaceSpec{
				Owners:      []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}},
				RestoreFrom: purgeName,
			},
		}
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		var job *batchv1.Job
		Eventually(func(g Gomega) {
			var jobs batchv1.JobList
			g.Expect(k8sClient.List(ctx, &jobs, client.InNamespace("ws-vault"))).To(Succeed())
			job = nil
			for i := range jobs.Items {
				if strings.HasPrefix(jobs.Items[i].Name, "workspace-restore-") {
					job = &jobs.Items[i]
				}
			}
			g.Expect(job).NotTo(BeNil(), "the restore Job")
			purge := &tenancyv1alpha1.WorkspacePurge{}
			g.Expect(k8sClient.Get(ctx, key("", purgeName), purge)).To(Succeed())
			g.Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgeRestored))
		}, readyTimeout, interval).Should(Succeed())

		By("running the restore Job's command into an empty volume")
		restored := GinkgoT().TempDir()
		runAgent(podCommand(job.Spec.Template), restored)
		for name, want := range localData {
			got, err := os.ReadFile(filepath.Join(restored, "db", name))
			Expect(err).NotTo(HaveOccurred())
			Expect(bytes.Equal(got, want)).To(BeTrue(), "%s differs after the restore", name)
		}
		Eventually(func(g Gomega) {
			g.Expect(getWorkspace(g, "vault").Status.Phase).To(Equal(tenancyv1alpha1.PhaseReady))
		}, readyTimeout, interval).Should(Succeed())
	})
}

func ptrTo(s string) *string { return &s }

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
