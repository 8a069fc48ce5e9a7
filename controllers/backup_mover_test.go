package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestMoverCronJobName(t *testing.T) {
	for _, tc := range []struct{ workspace, want string }{
		{"acme", "backup-acme"},
		{strings.Repeat("a", 45), "backup-" + strings.Repeat("a", 45)},
	} {
		if got := moverCronJobName(&tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: tc.workspace}}); got != tc.want {
			t.Errorf("moverCronJobName(%q) = %q, want %q", tc.workspace, got, tc.want)
		}
	}
	// The longest workspace names are cut, and stay distinct.
	a := moverCronJobName(&tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 59) + "1"}})
	b := moverCronJobName(&tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 59) + "2"}})
	if len(a) > maxCronJobName || len(b) > maxCronJobName || a == b {
		t.Errorf("long names give %q and %q", a, b)
	}
}

func TestRequestedBackupJob(t *testing.T) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 60)}}
	cfg := DefaultConfig().Backup
	cfg.MoverNamespace = "movers"
	cronJob := desiredMoverCronJob(ws, "7 2 * * *", cfg)
	first := requestedBackupJob(cronJob, "2026-12-05T10:00:00Z")
	again := requestedBackupJob(cronJob, "2026-12-05T10:00:00Z")
	other := requestedBackupJob(cronJob, "2026-12-05T11:00:00Z")
	if len(first.Name) > 63 || first.Name != again.Name || first.Name == other.Name {
		t.Errorf("Job names %q, %q, %q: want at most 63 characters, one per request", first.Name, again.Name, other.Name)
	}
	if diff := cmp.Diff(cronJob.Spec.JobTemplate.Spec, first.Spec); diff != "" || first.Namespace != "movers" ||
		first.Labels[tenancyv1alpha1.WorkspaceLabel] != ws.Name {
		t.Errorf("the Job is not the CronJob's template (-want +got):\n%s", diff)
	}
}

func TestDesiredMoverCronJob(t *testing.T) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	cfg := DefaultConfig().Backup
	cfg.MoverNamespace = "movers"
	cronJob := desiredMoverCronJob(ws, "7 2 * * *", cfg)
	if cronJob.Namespace != "movers" || cronJob.Name != "backup-acme" || cronJob.Spec.Schedule != "7 2 * * *" ||
		cronJob.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob %s/%s schedule %q policy %s", cronJob.Namespace, cronJob.Name, cronJob.Spec.Schedule, cronJob.Spec.ConcurrencyPolicy)
	}
	if rules := cronJob.Spec.JobTemplate.Spec.PodFailurePolicy.Rules; len(rules) != 1 || rules[0].Action != batchv1.PodFailurePolicyActionFailJob {
		t.Errorf("a failed run must fail the Job without retries: %+v", rules)
	}
	pod := cronJob.Spec.JobTemplate.Spec.Template.Spec
	// No volume, no AWS identity: the Job only asks the operator for a run.
	if len(pod.Volumes) != 0 || pod.ServiceAccountName != BackupRequesterServiceAccount || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod spec: %+v", pod)
	}
	c := pod.Containers[0]
	if diff := cmp.Diff([]string{"request-backup", "--workspace", "acme"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	wantEnv := []corev1.EnvVar{
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "JOB_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['batch.kubernetes.io/job-name']"}}},
		{Name: "JOB_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['batch.kubernetes.io/controller-uid']"}}},
	}
	if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

var _ = Describe("Backups through the data mover", func() {
	const moverNamespace = "workspace-operator-mover"

	It("schedule the run requests in the mover namespace, move the old path out of the tenant's namespace and report the runs' Jobs", func() {
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moverNamespace}}))).To(Succeed())
		// A Workspace that exists only here: the operator under test never sees it, so this
		// reconciler, configured for the mover, is the only one acting for it.
		ws := &tenancyv1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: "migrating", CreationTimestamp: metav1.Now()},
			Status:     tenancyv1alpha1.WorkspaceStatus{Backup: &tenancyv1alpha1.BackupStatus{Schedule: "7 2 * * *", RetentionDays: 7}},
		}
		tenant := "ws-migrating"
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}})).To(Succeed())
		config := testConfig()
		legacy := desiredBackupCronJob(ws, tenant, "7 2 * * *", 7, []string{"data"}, nil, "", config.Backup)
		Expect(k8sClient.Create(ctx, legacy)).To(Succeed())
		Expect(k8sClient.Create(ctx, desiredServiceAccount(ws, tenant, backupServiceAccountName, ""))).To(Succeed())

		config.Backup.MoverNamespace = moverNamespace
		recorder := events.NewFakeRecorder(10)
		r := &WorkspaceReconciler{Client: k8sClient, APIReader: k8sClient, Recorder: recorder, Config: config, Clock: fakeClock}
		Expect(r.reconcileMoverBackups(ctx, ws, tenant, "7 2 * * *")).To(Succeed())

		cronJob := &batchv1.CronJob{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: "backup-migrating"}, cronJob)).To(Succeed())
		Expect(cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args).To(Equal([]string{"request-backup", "--workspace", "migrating"}))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(legacy), &batchv1.CronJob{}))).To(BeTrue(), "the tenant-namespace CronJob is gone")
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: tenant, Name: backupServiceAccountName}, &corev1.ServiceAccount{}))).To(BeTrue(), "and its identity")
		var moved []string
		for len(recorder.Events) > 0 {
			if e := <-recorder.Events; strings.Contains(e, "BackupsMoved") {
				moved = append(moved, e)
			}
		}
		Expect(moved).To(HaveLen(2), "one event per object moved out")

		By("reporting the outcome of a run request's Job")
		fakeClock.SetTime(time.Now())
		finishJobOf(client.ObjectKeyFromObject(cronJob), "backup-migrating-29000001", true, `{"backupID": "20261205T020700Z", "phase": "Succeeded"}`)
		Expect(r.reconcileMoverBackups(ctx, ws, tenant, "7 2 * * *")).To(Succeed())
		Expect(ws.Status.Backup.LastJob).To(Equal("backup-migrating-29000001"))
		Expect(ws.Status.Backup.LastBackupID).To(Equal("20261205T020700Z"))
		Expect(ws.Status.Backup.Volumes).To(BeEmpty(), "no run has finished")

		By("showing each volume's last backup from the newest finished run")
		finishedRun := &tenancyv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: "backup-migrating-29000001", Namespace: moverNamespace, Labels: map[string]string{tenancyv1alpha1.WorkspaceLabel: "migrating"}},
			Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: "migrating"},
		}
		Expect(k8sClient.Create(ctx, finishedRun)).To(Succeed())
		started, completed := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second)), metav1.NewTime(time.Now().Truncate(time.Second))
		finishedRun.Status = tenancyv1alpha1.WorkspaceBackupStatus{
			Phase: tenancyv1alpha1.BackupRunSucceeded, BackupID: "20261205T020700Z", CompletionTime: &completed,
			Volumes: []tenancyv1alpha1.VolumeBackupStatus{{Claim: "data", Phase: tenancyv1alpha1.VolumeBackupSucceeded, Step: "Done",
				BackupID: "20261205T020700Z-data", Bytes: 4096, StartTime: &started, CompletionTime: &completed}},
		}
		Expect(k8sClient.Status().Update(ctx, finishedRun)).To(Succeed())
		Expect(r.reconcileMoverBackups(ctx, ws, tenant, "7 2 * * *")).To(Succeed())
		Expect(ws.Status.Backup.Volumes).To(Equal([]tenancyv1alpha1.VolumeLastBackup{{
			Claim: "data", BackupID: "20261205T020700Z-data", Time: &completed, Bytes: 4096, Duration: &metav1.Duration{Duration: time.Minute},
		}}))
		Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("BackupsCurrent"))

		// Job times are kept to the second: the next run finishes in a later one.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		finishJobOf(client.ObjectKeyFromObject(cronJob), "backup-migrating-29000002", false, `{"backupID": "20261206T020700Z", "phase": "PartiallyFailed"}`)
		Expect(r.reconcileMoverBackups(ctx, ws, tenant, "7 2 * * *")).To(Succeed())
		Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("BackupFailed"))

		By("starting a backup for each new spec.backup.requestedAt, once")
		ws.Spec.Backup.RequestedAt = "2026-12-06T09:30:00Z"
		for range 2 {
			Expect(r.reconcileMoverBackups(ctx, ws, tenant, "7 2 * * *")).To(Succeed())
		}
		Expect(ws.Status.Backup.LastHandledRequest).To(Equal("2026-12-06T09:30:00Z"))
		var jobs batchv1.JobList
		Expect(k8sClient.List(ctx, &jobs, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "migrating"})).To(Succeed())
		var requested []string
		for _, j := range jobs.Items {
			if j.Annotations["cronjob.kubernetes.io/instantiate"] == "manual" {
				requested = append(requested, j.Name)
			}
		}
		Expect(requested).To(ConsistOf(requestedBackupJob(cronJob, "2026-12-06T09:30:00Z").Name))

		By("stopping them when the workspace is deleted")
		running := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Namespace: moverNamespace, Name: "backup-migrating-29000003", Labels: cronJob.Spec.JobTemplate.Labels},
			Spec:       *cronJob.Spec.JobTemplate.Spec.DeepCopy(),
		}
		Expect(k8sClient.Create(ctx, running)).To(Succeed())
		Expect(r.stopBackups(ctx, ws)).To(BeTrue())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(cronJob), &batchv1.CronJob{}))).To(BeTrue(), "the CronJob is gone")
		Eventually(func(g Gomega) {
			job := &batchv1.Job{}
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(running), job)
			g.Expect(apierrors.IsNotFound(err) || job.DeletionTimestamp != nil).To(BeTrue(), "the unfinished Job is being deleted")
		}, timeout, interval).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: "backup-migrating-29000001"}, &batchv1.Job{})).To(Succeed(), "finished Jobs stay as history")
	})

	It("delete the workspace's VolumeSnapshotClass only once no snapshot content refers to it", func() {
		ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "leaving"}}
		config := testConfig()
		config.Backup.MoverNamespace = moverNamespace
		r := &WorkspaceReconciler{Client: k8sClient, APIReader: k8sClient, Recorder: events.NewFakeRecorder(10), Config: config, Clock: fakeClock}
		class := &snapshotv1.VolumeSnapshotClass{
			ObjectMeta:     objectMeta(ws, "", "ws-leaving-encrypted"),
			Driver:         "ebs.csi.aws.com",
			DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
		}
		Expect(k8sClient.Create(ctx, class)).To(Succeed())
		content := &snapshotv1.VolumeSnapshotContent{
			ObjectMeta: metav1.ObjectMeta{Name: "snapcontent-leaving"},
			Spec: snapshotv1.VolumeSnapshotContentSpec{
				VolumeSnapshotRef:       corev1.ObjectReference{Namespace: "ws-leaving", Name: "wsb-1"},
				DeletionPolicy:          snapshotv1.VolumeSnapshotContentDelete,
				Driver:                  "ebs.csi.aws.com",
				VolumeSnapshotClassName: ptr.To("ws-leaving-encrypted"),
				Source:                  snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To("snap-1")},
			},
		}
		Expect(k8sClient.Create(ctx, content)).To(Succeed())

		Expect(r.deleteSnapshotClass(ctx, ws)).To(BeFalse(), "a snapshot of the workspace is still being deleted")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(class), class)).To(Succeed())
		Expect(condition(ws, tenancyv1alpha1.ConditionReady).Message).To(ContainSubstring("snapcontent-leaving"))

		Expect(k8sClient.Delete(ctx, content)).To(Succeed())
		Expect(r.deleteSnapshotClass(ctx, ws)).To(BeTrue())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(class), class))).To(BeTrue())

		By("leaving a class of the same name that is not the workspace's")
		foreign := &snapshotv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "ws-leaving-encrypted"}, Driver: "ebs.csi.aws.com", DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(r.deleteSnapshotClass(ctx, ws)).To(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
	})
})

func TestVolumeBackups(t *testing.T) {
	at := func(h int) *metav1.Time { return &metav1.Time{Time: time.Date(2026, 12, 5, h, 0, 0, 0, time.UTC)} }
	run := func(name string, completed *metav1.Time, volumes ...tenancyv1alpha1.VolumeBackupStatus) tenancyv1alpha1.WorkspaceBackup {
		return tenancyv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status:     tenancyv1alpha1.WorkspaceBackupStatus{CompletionTime: completed, Volumes: volumes},
		}
	}
	ok := func(claim, id string) tenancyv1alpha1.VolumeBackupStatus {
		return tenancyv1alpha1.VolumeBackupStatus{Claim: claim, Phase: tenancyv1alpha1.VolumeBackupSucceeded, BackupID: id, Bytes: 10, StartTime: at(2), CompletionTime: at(3)}
	}
	failedVolume := func(claim, message string) tenancyv1alpha1.VolumeBackupStatus {
		return tenancyv1alpha1.VolumeBackupStatus{Claim: claim, Phase: tenancyv1alpha1.VolumeBackupFailed, Message: message, StartTime: at(2), CompletionTime: at(3)}
	}
	last := func(claim, id string) tenancyv1alpha1.VolumeLastBackup {
		return tenancyv1alpha1.VolumeLastBackup{Claim: claim, BackupID: id, Time: at(3), Bytes: 10, Duration: &metav1.Duration{Duration: time.Hour}}
	}
	previous := []tenancyv1alpha1.VolumeLastBackup{last("db", "old-db"), last("gone", "old-gone")}
	for _, tc := range []struct {
		name string
		runs []tenancyv1alpha1.WorkspaceBackup
		want []tenancyv1alpha1.VolumeLastBackup
	}{
		{name: "no finished run", runs: []tenancyv1alpha1.WorkspaceBackup{run("running", nil, ok("db", "new-db"))}, want: previous},
		{
			name: "the newest finished run wins; a claim it no longer had is dropped",
			runs: []tenancyv1alpha1.WorkspaceBackup{run("newer", at(5), ok("db", "newer-db"), ok("files", "newer-files")), run("older", at(4), ok("db", "older-db"))},
			want: []tenancyv1alpha1.VolumeLastBackup{last("db", "newer-db"), last("files", "newer-files")},
		},
		{
			name: "a failed volume keeps its last success and says why",
			runs: []tenancyv1alpha1.WorkspaceBackup{run("newer", at(5), failedVolume("db", "AccessDenied"), failedVolume("new", "no snapshot"))},
			want: []tenancyv1alpha1.VolumeLastBackup{
				{Claim: "db", BackupID: "old-db", Time: at(3), Bytes: 10, Duration: &metav1.Duration{Duration: time.Hour}, LastFailure: "AccessDenied"},
				{Claim: "new", LastFailure: "no snapshot"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, volumeBackups(previous, tc.runs)); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
		})
	}
}

var _ = Describe("A requested backup", func() {
	It("starts a Job from the workspace's backup CronJob once per spec.backup.requestedAt", func() {
		ws := newWorkspace("on-demand")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		ws = expectReady(ws.Name)

		ws.Spec.Backup.RequestedAt = "2026-12-05T13:00:00Z"
		Expect(k8sClient.Update(ctx, ws)).To(Succeed())
		cronJob := &batchv1.CronJob{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-on-demand", Name: backupCronJobName}, cronJob)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getWorkspace(g, ws.Name).Status.Backup.LastHandledRequest).To(Equal("2026-12-05T13:00:00Z"))
			job := &batchv1.Job{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-on-demand", Name: requestedBackupJob(cronJob, "2026-12-05T13:00:00Z").Name}, job)).To(Succeed())
			g.Expect(job.Spec.Template.Spec.Containers[0].Args).To(Equal(cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args))
		}, timeout, interval).Should(Succeed())
	})
})
