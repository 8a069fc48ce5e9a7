package datamover

import (
	"os"
	"path/filepath"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

var _ = Describe("A backup run", func() {
	It("snapshots each volume, exposes it in the mover namespace, moves it from its own zone and cleans up", func() {
		cluster.set("db", podOutcome{hold: true})
		cluster.set("files", podOutcome{hold: true})
		newTenant("acme", map[string]string{"db": "zone-a", "files": "zone-b"})
		run := newRun("acme-1", "acme")

		By("taking a snapshot in the tenant namespace and exposing it in the mover namespace")
		var db volumeRef
		Eventually(func(g Gomega) {
			run = getRun(g, "acme-1")
			g.Expect(run.Status.BackupID).NotTo(BeEmpty())
			db = newVolumeRef(run, "db")
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: db.name}, &corev1.Pod{})).To(Succeed())
		}, timeout, interval).Should(Succeed())
		Expect(run.Status.Namespace).To(Equal("ws-acme"))
		Expect(run.Status.Locations).To(Equal([]tenancyv1alpha1.BackupRunLocation{
			{Region: "eu-west-1", Bucket: "wso-acme-backup-eu-west-1", KeyAlias: "alias/ws-acme"},
			{Region: "eu-central-1", Bucket: "wso-acme-backup-eu-central-1", KeyAlias: "alias/ws-acme"},
		}))

		class := &snapshotv1.VolumeSnapshotClass{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-acme-encrypted"}, class)).To(Succeed())
		Expect(class.Driver).To(Equal(driver))
		Expect(class.DeletionPolicy).To(Equal(snapshotv1.VolumeSnapshotContentDelete))

		tenantSnapshot := &snapshotv1.VolumeSnapshot{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-acme", Name: db.name}, tenantSnapshot)).To(Succeed())
		Expect(*tenantSnapshot.Spec.Source.PersistentVolumeClaimName).To(Equal("db"))
		original := &snapshotv1.VolumeSnapshotContent{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: *tenantSnapshot.Status.BoundVolumeSnapshotContentName}, original)).To(Succeed())

		copied := &snapshotv1.VolumeSnapshotContent{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: db.name}, copied)).To(Succeed())
		Expect(copied.Spec.Source.SnapshotHandle).To(Equal(original.Status.SnapshotHandle))
		Expect(copied.Spec.DeletionPolicy).To(Equal(snapshotv1.VolumeSnapshotContentRetain))
		Expect(copied.Spec.VolumeSnapshotRef.Namespace).To(Equal(moverNamespace))
		Expect(copied.Spec.VolumeSnapshotRef.Name).To(Equal(db.name))

		clone := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: db.name}, clone)).To(Succeed())
		Expect(clone.Spec.DataSourceRef.Kind).To(Equal("VolumeSnapshot"))
		Expect(clone.Spec.DataSourceRef.Name).To(Equal(db.name))
		Expect(*clone.Spec.StorageClassName).To(Equal("ws-acme-encrypted"))
		Expect(clone.Spec.Resources.Requests[corev1.ResourceStorage]).To(Equal(resource.MustParse("2Gi")), "the snapshot's restore size")

		By("running the mover in the source volume's zone, as the workspace's mover identity")
		pod := &corev1.Pod{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: db.name}, pod)).To(Succeed())
		zones := pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
		Expect(zones.Key).To(Equal(zoneKey))
		Expect(zones.Values).To(Equal([]string{"zone-a"}))
		Expect(pod.Spec.ServiceAccountName).To(Equal("mover-acme"))
		Expect(*pod.Spec.SecurityContext.RunAsUser).To(BeZero())
		Expect(pod.Spec.Containers[0].Args).To(ContainElements("--source", "/data/db", "--backup-id", run.Status.BackupID+"-db", "--aws-s3-path-style"))
		Expect(pod.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: "http://127.0.0.1:4566"}), "the operator's endpoints")
		sa := &corev1.ServiceAccount{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: "mover-acme"}, sa)).To(Succeed())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::000000000000:role/mover-acme"))

		Eventually(func(g Gomega) {
			files := newVolumeRef(getRun(g, "acme-1"), "files")
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: files.name}, pod)).To(Succeed())
		}, timeout, interval).Should(Succeed())
		Expect(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values).To(Equal([]string{"zone-b"}))
		Expect(getRun(Default, "acme-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunRunning))

		By("recording each volume's backup and leaving nothing behind")
		cluster.set("db", podOutcome{})
		cluster.set("files", podOutcome{})
		Eventually(func(g Gomega) {
			run = getRun(g, "acme-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded), "%+v", run.Status)
		}, timeout, interval).Should(Succeed())
		for _, claim := range []string{"db", "files"} {
			v := volumeStatus(run, claim)
			Expect(v.Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded))
			Expect(v.Step).To(Equal(StepDone))
			Expect(v.BackupID).To(Equal(run.Status.BackupID + "-" + claim))
			Expect(v.Bytes).To(BeEquivalentTo(12345))
			Expect(v.StartTime).NotTo(BeNil())
			Expect(v.CompletionTime).NotTo(BeNil())
		}
		Expect(runObjects(Default, "acme-1")).To(BeEmpty())
	})

	It("reports a volume that fails without failing the others, and cleans it up", func() {
		cluster.set("broken", podOutcome{fail: "upload to eu-west-1: AccessDenied"})
		cluster.set("unsnapshottable", podOutcome{snapErr: "driver refused: volume is being resized"})
		newTenant("globex", map[string]string{"broken": "zone-a", "ok": "zone-a", "unsnapshottable": "zone-b"})
		failedBefore := testutil.ToFloat64(volumesFinished.WithLabelValues("failed"))
		newRun("globex-1", "globex")

		var run *tenancyv1alpha1.WorkspaceBackup
		Eventually(func(g Gomega) {
			run = getRun(g, "globex-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunPartiallyFailed), "%+v", run.Status)
		}, timeout, interval).Should(Succeed())
		Expect(volumeStatus(run, "ok").Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded))
		broken := volumeStatus(run, "broken")
		Expect(broken.Phase).To(Equal(tenancyv1alpha1.VolumeBackupFailed))
		Expect(broken.Message).To(ContainSubstring("AccessDenied"))
		unsnapshottable := volumeStatus(run, "unsnapshottable")
		Expect(unsnapshottable.Phase).To(Equal(tenancyv1alpha1.VolumeBackupFailed))
		Expect(unsnapshottable.Message).To(ContainSubstring("volume is being resized"))
		complete := findCondition(run, tenancyv1alpha1.ConditionComplete)
		Expect(complete.Reason).To(Equal("PartiallyFailed"))
		Expect(complete.Message).To(ContainSubstring("broken, unsnapshottable"))
		Expect(runObjects(Default, "globex-1")).To(BeEmpty())
		Expect(testutil.ToFloat64(volumesFinished.WithLabelValues("failed")) - failedBefore).To(BeEquivalentTo(2))
	})

	It("never has more volumes in flight than the limit", func() {
		claims := map[string]string{"a": "zone-a", "b": "zone-a", "c": "zone-a"}
		for claim := range claims {
			cluster.set(claim, podOutcome{hold: true})
		}
		newTenant("initech", claims)
		newRun("initech-1", "initech")

		Eventually(func(g Gomega) {
			run := getRun(g, "initech-1")
			g.Expect(runObjects(g, "initech-1")["Pod"]).To(Equal(concurrency))
			g.Expect(volumeStatus(run, "c").Phase).To(Equal(tenancyv1alpha1.VolumeBackupPending))
			g.Expect(volumeStatus(run, "c").Message).To(ContainSubstring("waiting for a mover slot"))
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			var snapshots snapshotv1.VolumeSnapshotList
			g.Expect(k8sClient.List(ctx, &snapshots, client.InNamespace("ws-initech"))).To(Succeed())
			g.Expect(len(snapshots.Items)).To(BeNumerically("<=", concurrency))
		}, time.Second, interval).Should(Succeed())

		for claim := range claims {
			cluster.set(claim, podOutcome{})
		}
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "initech-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
		}, timeout, interval).Should(Succeed())
	})

	It("resumes where it was after the operator restarts mid-run", func() {
		cluster.set("data", podOutcome{hold: true})
		newTenant("umbrella", map[string]string{"data": "zone-c"})
		newRun("umbrella-1", "umbrella")

		var before *tenancyv1alpha1.WorkspaceBackup
		var pod corev1.Pod
		Eventually(func(g Gomega) {
			before = getRun(g, "umbrella-1")
			g.Expect(before.Status.BackupID).NotTo(BeEmpty())
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: newVolumeRef(before, "data").name}, &pod)).To(Succeed())
		}, timeout, interval).Should(Succeed())

		restartManager()
		cluster.set("data", podOutcome{})
		Eventually(func(g Gomega) {
			run := getRun(g, "umbrella-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
			g.Expect(run.Status.BackupID).To(Equal(before.Status.BackupID), "the run keeps its ID")
			g.Expect(volumeStatus(run, "data").BackupID).To(Equal(before.Status.BackupID + "-data"))
		}, timeout, interval).Should(Succeed())
		Expect(runObjects(Default, "umbrella-1")).To(BeEmpty())
	})

	It("lets a volume whose snapshot exists keep its slot when the status that admitted it was lost", func() {
		// Fill every slot with another workspace's held volumes.
		cluster.set("hold-1", podOutcome{hold: true})
		cluster.set("hold-2", podOutcome{hold: true})
		newTenant("busy", map[string]string{"hold-1": "zone-a", "hold-2": "zone-a"})
		newRun("busy-1", "busy")
		Eventually(func(g Gomega) {
			g.Expect(runObjects(g, "busy-1")["Pod"]).To(Equal(concurrency))
		}, timeout, interval).Should(Succeed())

		// A run whose volume took a slot and created its snapshot, and whose status write
		// saying so was lost in a crash: the status still reads Pending.
		newTenant("lost", map[string]string{"data": "zone-a"})
		run := &tenancyv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: "lost-1", Namespace: moverNamespace, Finalizers: []string{tenancyv1alpha1.BackupRunFinalizer}},
			Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: "lost"},
		}
		Expect(k8sClient.Create(ctx, run)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "lost-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunRunning))
		}, timeout, interval).Should(Succeed())
		restartManager() // the run is held by the limit; start afresh with it Pending
		Expect(volumeStatus(getRun(Default, "lost-1"), "data").Phase).To(Equal(tenancyv1alpha1.VolumeBackupPending))
		v := newVolumeRef(getRun(Default, "lost-1"), "data")
		Expect(k8sClient.Create(ctx, desiredSnapshot(v))).To(Succeed())

		Eventually(func(g Gomega) {
			run := getRun(g, "lost-1")
			g.Expect(volumeStatus(run, "data").Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded), "%+v", run.Status)
		}, timeout, interval).Should(Succeed())
		Expect(volumeStatus(getRun(Default, "busy-1"), "hold-1").Phase).To(Equal(tenancyv1alpha1.VolumeBackupRunning), "the others still hold their slots")

		cluster.set("hold-1", podOutcome{})
		cluster.set("hold-2", podOutcome{})
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "busy-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
			g.Expect(getRun(g, "lost-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
		}, timeout, interval).Should(Succeed())
	})

	It("fails a volume that outlives its deadline and cleans it up", func() {
		cluster.set("stuck", podOutcome{hold: true})
		newTenant("hooli", map[string]string{"stuck": "zone-a"})
		newRun("hooli-1", "hooli")
		Eventually(func(g Gomega) {
			g.Expect(runObjects(g, "hooli-1")["Pod"]).To(Equal(1))
		}, timeout, interval).Should(Succeed())

		fakeClock.Step(volumeTimeout + time.Minute)
		DeferCleanup(func() { fakeClock.SetTime(time.Now()) })
		// The reconciler would look again at the deadline in real time; an edit wakes it now.
		// The reconciler may write the run at the same time: retry on conflict.
		Eventually(func(g Gomega) {
			run := getRun(g, "hooli-1")
			run.Annotations = map[string]string{"test/nudge": "1"}
			g.Expect(k8sClient.Update(ctx, run)).To(Succeed())
		}, timeout, interval).Should(Succeed())

		Eventually(func(g Gomega) {
			run := getRun(g, "hooli-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunFailed), "%+v", run.Status)
		}, timeout, interval).Should(Succeed())
		Expect(volumeStatus(getRun(Default, "hooli-1"), "stuck").Message).To(ContainSubstring("timed out after 1h0m0s waiting for step Move"))
		Expect(runObjects(Default, "hooli-1")).To(BeEmpty())
	})

	It("cleans up everything when a run is deleted mid-way", func() {
		cluster.set("scratch", podOutcome{hold: true})
		newTenant("vandelay", map[string]string{"scratch": "zone-a"})
		run := newRun("vandelay-1", "vandelay")
		Eventually(func(g Gomega) {
			g.Expect(runObjects(g, "vandelay-1")["Pod"]).To(Equal(1))
		}, timeout, interval).Should(Succeed())

		Expect(k8sClient.Delete(ctx, run)).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(run), run)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the run is gone once its objects are")
			g.Expect(runObjects(g, "vandelay-1")).To(BeEmpty())
		}, timeout, interval).Should(Succeed())
	})

	It("backs up the file bucket with the volumes when the workspace asks for it", func() {
		cluster.set("", podOutcome{hold: true}) // the file bucket's mover has no claim
		newTenant("files", map[string]string{"data": "zone-a"})
		ws := &tenancyv1alpha1.Workspace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "files"}, ws)).To(Succeed())
		ws.Spec.Backup.IncludeFiles = true
		Expect(k8sClient.Update(ctx, ws)).To(Succeed())
		ws.Status.Storage = &tenancyv1alpha1.StorageStatus{Buckets: []tenancyv1alpha1.BucketStatus{{Region: "eu-west-1", Name: "wso-files-files"}}}
		Expect(k8sClient.Status().Update(ctx, ws)).To(Succeed())
		newRun("files-1", "files")

		var pod corev1.Pod
		Eventually(func(g Gomega) {
			files := newVolumeRef(getRun(g, "files-1"), "")
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: files.name}, &pod)).To(Succeed())
		}, timeout, interval).Should(Succeed())
		Expect(pod.Spec.Containers[0].Args).To(ContainElements("--include-bucket", "wso-files-files"))
		Expect(pod.Spec.Volumes).To(BeEmpty())

		cluster.set("", podOutcome{})
		Eventually(func(g Gomega) {
			run := getRun(g, "files-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded), "%+v", run.Status)
			g.Expect(run.Status.Files.Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded))
			g.Expect(run.Status.Files.BackupID).To(Equal(run.Status.BackupID + "_files"))
			g.Expect(volumeStatus(run, "data").Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded))
		}, timeout, interval).Should(Succeed())
		Expect(runObjects(Default, "files-1")).To(BeEmpty())
	})

	It("fails at once for a workspace that does not exist", func() {
		newRun("nobody-1", "nobody")
		Eventually(func(g Gomega) {
			run := getRun(g, "nobody-1")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunFailed))
			g.Expect(findCondition(run, tenancyv1alpha1.ConditionComplete).Reason).To(Equal("WorkspaceNotFound"))
		}, timeout, interval).Should(Succeed())
	})
})

func findCondition(run *tenancyv1alpha1.WorkspaceBackup, t string) metav1.Condition {
	for _, c := range run.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{Type: t}
}

var _ = Describe("request-backup", func() {
	newClient := func() (client.Client, error) { return k8sClient, nil }

	It("creates the run, waits for it and writes its summary; asking again waits for the same run", func() {
		newTenant("wayne", map[string]string{"vault": "zone-a"})
		summary := filepath.Join(GinkgoT().TempDir(), "summary.json")
		args := []string{"--workspace", "wayne", "--namespace", moverNamespace, "--run", "wayne-job-1", "--poll-interval", "100ms", "--summary-file", summary}
		Expect(RequestMain(ctx, args, newClient, GinkgoWriter)).To(Succeed())

		run := getRun(Default, "wayne-job-1")
		Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
		Expect(run.Labels).To(HaveKeyWithValue(tenancyv1alpha1.WorkspaceLabel, "wayne"))
		written, err := os.ReadFile(summary)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(written)).To(MatchJSON(`{"backupID": "` + run.Status.BackupID + `", "phase": "Succeeded"}`))

		Expect(RequestMain(ctx, args, newClient, GinkgoWriter)).To(Succeed(), "a retried pod finds the finished run")
		Expect(getRun(Default, "wayne-job-1").Status.BackupID).To(Equal(run.Status.BackupID))
	})

	It("makes the run belong to the Job that asked for it", func() {
		newTenant("bruce", map[string]string{"cave": "zone-b"})
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "bruce-job-1", Namespace: moverNamespace},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "backup", Image: "workspace-operator:test"}},
			}}},
		}
		Expect(k8sClient.Create(ctx, job)).To(Succeed())
		args := []string{"--workspace", "bruce", "--namespace", moverNamespace, "--run", job.Name, "--job-uid", string(job.UID), "--poll-interval", "100ms", "--summary-file", ""}
		Expect(RequestMain(ctx, args, newClient, GinkgoWriter)).To(Succeed())
		owners := getRun(Default, job.Name).OwnerReferences
		Expect(owners).To(HaveLen(1))
		Expect(owners[0].Kind).To(Equal("Job"))
		Expect(owners[0].UID).To(Equal(job.UID))
	})

	It("fails unless every volume was backed up", func() {
		cluster.set("ledger", podOutcome{fail: "KMS key disabled"})
		newTenant("stark", map[string]string{"ledger": "zone-a", "notes": "zone-a"})
		err := RequestMain(ctx, []string{"--workspace", "stark", "--namespace", moverNamespace, "--run", "stark-job-1", "--poll-interval", "100ms", "--summary-file", ""}, newClient, GinkgoWriter)
		Expect(err).To(MatchError(ContainSubstring("PartiallyFailed")))
		Expect(err).To(MatchError(ContainSubstring("ledger")))
	})

	It("refuses a run name already used for another workspace", func() {
		newRun("shared-name", "nobody")
		err := RequestMain(ctx, []string{"--workspace", "wayne", "--namespace", moverNamespace, "--run", "shared-name", "--poll-interval", "100ms", "--summary-file", ""}, newClient, GinkgoWriter)
		Expect(err).To(MatchError(ContainSubstring("backs up workspace nobody, not wayne")))
	})
})
