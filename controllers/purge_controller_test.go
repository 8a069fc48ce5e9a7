package controllers

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func getPurge(g Gomega, name string) *tenancyv1alpha1.WorkspacePurge {
	purge := &tenancyv1alpha1.WorkspacePurge{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, purge)).To(Succeed())
	return purge
}

func purgeOf(g Gomega, workspace string) *tenancyv1alpha1.WorkspacePurge {
	var list tenancyv1alpha1.WorkspacePurgeList
	g.Expect(k8sClient.List(ctx, &list, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: workspace})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	return &list.Items[0]
}

// pokePurge makes the purge controller look at a record again, as its RequeueAfter would
// once the real time caught up with the test's clock.
func pokePurge(name string) {
	Eventually(func(g Gomega) {
		purge := getPurge(g, name)
		if purge.Annotations == nil {
			purge.Annotations = map[string]string{}
		}
		purge.Annotations["example.com/poke"] = time.Now().String()
		g.Expect(k8sClient.Update(ctx, purge)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

func putObject(bucket, region, key, body string) error {
	_, err := s3.NewFromConfig(emu.AWSConfig(region), awsemu.UsePathStyle).PutObject(ctx,
		&s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	return err
}

func bucketExists(name string) bool {
	for _, b := range emu.Buckets() {
		if b.Name == name {
			return true
		}
	}
	return false
}

var _ = Describe("Secure deletion and the purge", func() {
	It("keeps every backup until purgeAfter, although they pass their retention meanwhile", func() {
		ws := newWorkspace("hold")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady(ws.Name)
		backups := ws.Status.Backup.Locations[0].Bucket
		backupsS3 := s3.NewFromConfig(emu.AWSConfigAs(primaryRegion, awsemu.BackupAccessKeyID), awsemu.UsePathStyle)
		_, err := backupsS3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(backups), Key: aws.String("backups/20261120T021700Z/db.tar.enc"), Body: strings.NewReader("sealed")})
		Expect(err).NotTo(HaveOccurred())

		By("deleting the workspace when its backup is 5 days old")
		advanceClock(5 * 24 * time.Hour)
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		finalizeNamespace("ws-hold")
		Eventually(func(g Gomega) {
			g.Expect(purgeOf(g, "hold").Status.State).To(Equal(tenancyv1alpha1.PurgePending))
		}, timeout, interval).Should(Succeed())

		By("6 days later, past its 7-day retention, the backup is still there for an undelete")
		advanceClock(6 * 24 * time.Hour)
		// An expired object of a versioned bucket would hide behind a delete marker.
		_, err = backupsS3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(backups), Key: aws.String("backups/20261120T021700Z/db.tar.enc")})
		Expect(err).NotTo(HaveOccurred(), "S3 lifecycle expired a backup inside the purge window")
	})

	It("closes everything on deletion and allows an undelete until purgeAfter", func() {
		ws := newWorkspace("undo")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady(ws.Name)
		filesBucket := ws.Status.Storage.Buckets[0].Name
		Expect(putObject(filesBucket, primaryRegion, "invoice.pdf", "%PDF-1.7")).To(Succeed())
		Expect(k8sClient.Create(ctx, pvc("ws-undo", "db", "ws-undo-encrypted"))).To(Succeed())
		finishBackupJob("ws-undo", "workspace-backup-1", true, `{"backupID":"20261120T021700Z","locations":[]}`)
		Eventually(func(g Gomega) {
			g.Expect(getWorkspace(g, "undo").Status.Backup.LastBackupID).To(Equal("20261120T021700Z"))
		}, timeout, interval).Should(Succeed())

		By("deleting: a purge record, keys pending deletion, buckets closed, the namespace gone")
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		finalizeNamespace("ws-undo")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: "undo"}, &tenancyv1alpha1.Workspace{}))
		}, timeout, interval).Should(BeTrue(), describeDeletion("undo"))
		var purge *tenancyv1alpha1.WorkspacePurge
		Eventually(func(g Gomega) {
			purge = purgeOf(g, "undo")
			g.Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgePending))
			g.Expect(purge.Status.TimeRemaining).NotTo(BeEmpty())
		}, timeout, interval).Should(Succeed())
		Expect(purge.Spec.Keys).To(HaveLen(2))
		Expect(purge.Spec.Buckets).To(HaveLen(4), "files and backups in two regions")
		Expect(purge.Spec.Volumes).To(ConsistOf(tenancyv1alpha1.PurgeVolume{Name: "db", Storage: "1Gi"}))
		Expect(purge.Spec.LastBackupID).To(Equal("20261120T021700Z"))
		Expect(purge.Spec.PurgeAfter.Time).To(BeTemporally("~", purge.Spec.DeletedAt.Add(7*24*time.Hour), time.Minute))
		for _, k := range purge.Spec.Keys {
			Expect(k.DeletionDate).NotTo(BeNil())
			Expect(k.DeletionDate.Time).NotTo(BeTemporally(">", purge.Spec.PurgeAfter.Time), "a key outlives purgeAfter")
			Expect(keysOf(k.Region, "undo")[0].State).To(Equal("PendingDeletion"))
		}
		// The emulator evaluates the closed bucket policy, as S3 does.
		Expect(putObject(filesBucket, primaryRegion, "late-upload.pdf", "x")).To(MatchError(ContainSubstring("AccessDenied")))
		policy, err := s3.NewFromConfig(emu.AWSConfig(primaryRegion), awsemu.UsePathStyle).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(filesBucket)})
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(policy.Policy)).To(ContainSubstring("WorkspaceDeletedDenyWrites"))

		By("refusing to give the name to a new workspace without restoreFrom")
		impostor := newWorkspace("undo")
		Expect(k8sClient.Create(ctx, impostor)).To(Succeed())
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "undo")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Reason).To(Equal("NameInPurgeWindow"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionStalled).Message).To(ContainSubstring("spec.restoreFrom: " + purge.Name))
		}, timeout, interval).Should(Succeed())
		Expect(keysOf(primaryRegion, "undo")[0].State).To(Equal("PendingDeletion"), "the impostor touched the old key")
		Expect(k8sClient.Delete(ctx, impostor)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: "undo"}, &tenancyv1alpha1.Workspace{}))
		}, timeout, interval).Should(BeTrue(), describeDeletion("undo"))

		By("undeleting 6 days later: keys enabled, buckets reopened, volumes restored from the last backup")
		advanceClock(6 * 24 * time.Hour)
		restored := newWorkspace("undo")
		restored.Spec.RestoreFrom = purge.Name
		Expect(k8sClient.Create(ctx, restored)).To(Succeed())
		DeferCleanup(deleteWorkspace, "undo")
		Eventually(func(g Gomega) {
			g.Expect(getPurge(g, purge.Name).Status.State).To(Equal(tenancyv1alpha1.PurgeRestored))
		}, timeout, interval).Should(Succeed())
		// Back to the real time: the restored workspace's own age (from its real creation
		// timestamp) would otherwise read as 6 days and its backups as missed.
		fakeClock.SetTime(time.Now())
		expectReady("undo")
		for _, region := range []string{primaryRegion, replicaRegion} {
			Expect(keysOf(region, "undo")).To(HaveLen(1))
			Expect(keysOf(region, "undo")[0].State).To(Equal("Enabled"))
		}
		out, err := s3.NewFromConfig(emu.AWSConfig(primaryRegion), awsemu.UsePathStyle).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(filesBucket), Key: aws.String("invoice.pdf")})
		Expect(err).NotTo(HaveOccurred(), "the file uploaded before the deletion is readable again")
		Expect(out.Body.Close()).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getPurge(g, purge.Name).Status.State).To(Equal(tenancyv1alpha1.PurgeRestored))
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-undo", Name: "db"}, &corev1.PersistentVolumeClaim{})).To(Succeed())
			job := &batchv1.Job{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-undo", Name: restoreJobName("20261120T021700Z", []string{"db"})}, job)).To(Succeed())
			g.Expect(job.Spec.Template.Spec.Containers[0].Args).To(ContainElements("restore", "20261120T021700Z"))
			g.Expect(job.Spec.Template.Spec.Containers[0].Env).To(Equal(testConfig().Backup.Env))
			g.Expect(condition(getWorkspace(g, "undo"), tenancyv1alpha1.ConditionRestored).Reason).To(Equal("Restoring"))
		}, timeout, interval).Should(Succeed())

		job := &batchv1.Job{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-undo", Name: restoreJobName("20261120T021700Z", []string{"db"})}, job)).To(Succeed())
		now := metav1.Now()
		job.Status.StartTime, job.Status.CompletionTime, job.Status.Succeeded = &now, &now, 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		Expect(k8sClient.Status().Update(ctx, job)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(condition(getWorkspace(g, "undo"), tenancyv1alpha1.ConditionRestored).Status).To(Equal(metav1.ConditionTrue))
		}, timeout, interval).Should(Succeed())
	})

	It("destroys every copy after purgeAfter, keeps the evidence, and refuses a late undelete", func() {
		ws := newWorkspace("gone")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady(ws.Name)
		Expect(putObject(ws.Status.Storage.Buckets[0].Name, primaryRegion, "secret.txt", "customer data")).To(Succeed())
		Expect(putObject(ws.Status.Backup.Locations[1].Bucket, replicaRegion, "backups/gone/1/archive", "backup")).To(Succeed())

		By("leaving in the cluster a data mover copy of a snapshot, a run made by hand and a volume retained by someone else")
		copied := &snapshotv1.VolumeSnapshotContent{
			ObjectMeta: objectMeta(ws, "", "wsb-gone-copy"),
			Spec: snapshotv1.VolumeSnapshotContentSpec{
				VolumeSnapshotRef: corev1.ObjectReference{Namespace: "workspace-operator-mover", Name: "wsb-gone-copy"},
				DeletionPolicy:    snapshotv1.VolumeSnapshotContentRetain,
				Driver:            "ebs.csi.aws.com",
				Source:            snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To("snap-gone")},
			},
		}
		Expect(k8sClient.Create(ctx, copied)).To(Succeed())
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "workspace-operator-mover"}}))).To(Succeed())
		byHand := &tenancyv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Namespace: "workspace-operator-mover", Name: "gone-by-hand"},
			Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: "gone"},
		}
		Expect(k8sClient.Create(ctx, byHand)).To(Succeed())
		retained := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-gone-retained"},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				ClaimRef:                      &corev1.ObjectReference{Namespace: "ws-gone", Name: "db"},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-gone"}},
			},
		}
		Expect(k8sClient.Create(ctx, retained)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, retained))).To(Succeed()) })
		deleteWorkspace("gone")

		var purge *tenancyv1alpha1.WorkspacePurge
		Eventually(func(g Gomega) {
			purge = purgeOf(g, "gone")
			g.Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgePending))
		}, timeout, interval).Should(Succeed())

		By("purging once the window has passed")
		advanceClock(7*24*time.Hour + time.Minute)
		pokePurge(purge.Name)
		Eventually(func(g Gomega) {
			purge = getPurge(g, purge.Name)
			g.Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgePurged))
			g.Expect(condition2(purge.Status.Conditions, tenancyv1alpha1.ConditionPurged).Status).To(Equal(metav1.ConditionTrue))
		}, timeout, interval).Should(Succeed())
		Expect(purge.Status.Evidence).To(HaveLen(8), "4 buckets, 2 keys, the cluster and the retained volume")
		Expect(purge.Status.Evidence[6]).To(Equal("cluster: no VolumeSnapshotContent, PersistentVolume or data mover run of workspace gone left by the operator"))
		Expect(purge.Status.Evidence[7]).To(ContainSubstring("PersistentVolume pv-gone-retained of namespace ws-gone remains"))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(copied), copied))).To(BeTrue(), "the snapshot copy is deleted")
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(byHand), byHand))).To(BeTrue(), "the run made by hand is deleted")
		for _, b := range purge.Spec.Buckets {
			Expect(bucketExists(b.Name)).To(BeFalse(), "bucket %s remains", b.Name)
		}
		for _, region := range []string{primaryRegion, replicaRegion} {
			Expect(keysOf(region, "gone")).To(BeEmpty(), "a key remains in %s", region)
		}

		By("refusing an undelete after purgeAfter")
		late := newWorkspace("gone")
		late.Spec.RestoreFrom = purge.Name
		Expect(k8sClient.Create(ctx, late)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(condition(getWorkspace(g, "gone"), tenancyv1alpha1.ConditionReady).Reason).To(Equal("PurgeWindowPassed"))
		}, timeout, interval).Should(Succeed())
		Expect(k8sClient.Delete(ctx, late)).To(Succeed())

		By("removing the record after the audit period")
		advanceClock(91 * 24 * time.Hour)
		pokePurge(purge.Name)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: purge.Name}, &tenancyv1alpha1.WorkspacePurge{}))
		}, timeout, interval).Should(BeTrue())
	})
})

func condition2(conditions []metav1.Condition, t string) metav1.Condition {
	for _, c := range conditions {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{Type: t}
}

var _ = Describe("Secure deletion under AWS failures", func() {
	It("does not repeat confirmed deletion steps while the namespace terminates", func() {
		ws := newWorkspace("settled")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		expectReady(ws.Name)
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)

		By("reaching the namespace deletion, the one step that waits")
		Eventually(func(g Gomega) {
			ns := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-settled"}, ns)).To(Succeed())
			g.Expect(ns.DeletionTimestamp).NotTo(BeNil())
		}, timeout, interval).Should(Succeed())

		By("waking on each change in the terminating namespace without re-checking keys and buckets")
		time.Sleep(time.Second) // let the reconciles the deletion itself queued run
		emu.ResetCalls()
		reads := wsReads.Load()
		poke("ws-settled")
		Eventually(wsReads.Load, timeout, interval).Should(BeNumerically(">", reads), "the change wakes the workspace")
		Consistently(func() int {
			total := 0
			for _, n := range emu.Calls() {
				total += n
			}
			return total
		}, 2*time.Second, interval).Should(BeZero())
	})

	It("keeps the finalizer while KMS refuses to schedule the key deletion, then finishes", func() {
		ws := newWorkspace("org-policy")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		expectReady(ws.Name)

		// An organisation policy forbidding a 7-day window looks like this to the operator.
		emu.Inject(awsemu.Fault{Service: "kms", Operation: "ScheduleKeyDeletion", Kind: awsemu.AccessDenied})
		DeferCleanup(emu.ClearFaults)
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "org-policy")
			g.Expect(ws.Finalizers).To(ContainElement(tenancyv1alpha1.WorkspaceFinalizer))
			ready := condition(ws, tenancyv1alpha1.ConditionReady)
			g.Expect(ready.Reason).To(Equal("ScheduleKeyDeletionFailed"))
			g.Expect(ready.Message).To(ContainSubstring("AccessDenied"))
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(getWorkspace(g, "org-policy").Finalizers).To(ContainElement(tenancyv1alpha1.WorkspaceFinalizer),
				"the finalizer is released while the data is protected by a live key")
			ns := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-org-policy"}, ns)).To(Succeed())
			g.Expect(ns.DeletionTimestamp).To(BeNil(), "the namespace is deleted before the keys are scheduled")
		}, 2*time.Second, interval).Should(Succeed())

		emu.ClearFaults()
		finalizeNamespace("ws-org-policy")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: "org-policy"}, &tenancyv1alpha1.Workspace{}))
		}, 2*timeout, interval).Should(BeTrue())
		Expect(keysOf(primaryRegion, "org-policy")[0].State).To(Equal("PendingDeletion"))
	})
})

var _ = Describe("Declarative restore", func() {
	It("restores the volumes spec.restore names from a backup, once per request", func() {
		ws := newWorkspace("rewind")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, "rewind")
		expectReady(ws.Name)
		Expect(k8sClient.Create(ctx, pvc("ws-rewind", "db", "ws-rewind-encrypted"))).To(Succeed())

		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "rewind")
			ws.Spec.Restore = &tenancyv1alpha1.RestoreSpec{BackupID: "20261119T021700Z", Volumes: []string{"db"}}
			g.Expect(k8sClient.Update(ctx, ws)).To(Succeed())
		}, timeout, interval).Should(Succeed())
		name := restoreJobName("20261119T021700Z", []string{"db"})
		Eventually(func(g Gomega) {
			job := &batchv1.Job{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-rewind", Name: name}, job)).To(Succeed())
			g.Expect(job.Spec.Template.Spec.Containers[0].Args).To(ContainElements("restore", "--backup", "20261119T021700Z", "--source", "db"))
			g.Expect(job.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Name", "pvc-db")))
			g.Expect(condition(getWorkspace(g, "rewind"), tenancyv1alpha1.ConditionRestored).Reason).To(Equal("Restoring"))
		}, timeout, interval).Should(Succeed())

		job := &batchv1.Job{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-rewind", Name: name}, job)).To(Succeed())
		now := metav1.Now()
		job.Status.StartTime = &now
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "backup 20261119T021700Z not found", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "backup 20261119T021700Z not found", LastTransitionTime: now},
		}
		Expect(k8sClient.Status().Update(ctx, job)).To(Succeed())
		Eventually(func(g Gomega) {
			restored := condition(getWorkspace(g, "rewind"), tenancyv1alpha1.ConditionRestored)
			g.Expect(restored.Reason).To(Equal("RestoreFailed"))
			g.Expect(restored.Message).To(ContainSubstring("backup 20261119T021700Z not found"))
		}, timeout, interval).Should(Succeed())
	})
})
