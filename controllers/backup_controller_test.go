package controllers

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// finishBackupJob plays the CronJob controller and the kubelet, which envtest does not run:
// it creates the Job the CronJob would, with its pod, and finishes both.
func finishBackupJob(namespace, name string, succeed bool, summary string) {
	finishJobOf(client.ObjectKey{Namespace: namespace, Name: backupCronJobName}, name, succeed, summary)
}

// finishJobOf does the same for the CronJob cronJobKey.
func finishJobOf(cronJobKey client.ObjectKey, name string, succeed bool, summary string) {
	namespace := cronJobKey.Namespace
	cronJob := &batchv1.CronJob{}
	Expect(k8sClient.Get(ctx, cronJobKey, cronJob)).To(Succeed())
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: cronJob.Spec.JobTemplate.Labels},
		Spec:       *cronJob.Spec.JobTemplate.Spec.DeepCopy(),
	}
	job.Spec.Template.Labels = map[string]string{}
	for k, v := range cronJob.Spec.JobTemplate.Spec.Template.Labels {
		job.Spec.Template.Labels[k] = v
	}
	job.Spec.Template.Labels[batchv1.JobNameLabel] = name
	Expect(k8sClient.Create(ctx, job)).To(Succeed())

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-pod", Labels: job.Spec.Template.Labels},
		Spec:       job.Spec.Template.Spec,
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	exitCode := int32(0)
	if !succeed {
		exitCode = 1
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: backupContainerName, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Message: summary, StartedAt: now, FinishedAt: now},
	}}}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())

	job.Status.StartTime = &now
	if succeed {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "S3 outage in eu-central-1", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "S3 outage in eu-central-1", LastTransitionTime: now},
		}
	}
	Expect(k8sClient.Status().Update(ctx, job)).To(Succeed())
}

var _ = Describe("Backups", func() {
	It("schedules daily backups to both regions and reports how they went", func() {
		ws := newWorkspace("backups")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		ws = expectReady(ws.Name)

		By("scheduling the agent with a location per region")
		Expect(ws.Status.Backup.Schedule).To(Equal(defaultBackupSchedule("backups", 2)))
		Expect(ws.Status.Backup.RetentionDays).To(BeEquivalentTo(7))
		Expect(ws.Status.Backup.Locations).To(HaveLen(2))
		Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("FirstBackupScheduled"))
		cronJob := &batchv1.CronJob{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-backups", Name: backupCronJobName}, cronJob)).To(Succeed())
		args := cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args
		for _, l := range ws.Status.Backup.Locations {
			Expect(args).To(ContainElement(fmt.Sprintf("%s=%s,alias/workspace-operator/envtest/backups", l.Region, l.Bucket)))
		}
		Expect(cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env).To(Equal(testConfig().Backup.Env),
			"the agent reaches AWS through the operator's endpoints")

		By("making S3 expire backups after the retention even if no job prunes")
		for _, l := range ws.Status.Backup.Locations {
			lifecycle, err := s3.NewFromConfig(emu.AWSConfig(l.Region), awsemu.UsePathStyle).
				GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(l.Bucket)})
			Expect(err).NotTo(HaveOccurred(), l.Region)
			Expect(aws.ToInt32(lifecycle.Rules[0].Expiration.Days)).To(BeEquivalentTo(7))
		}

		By("mounting a new volume into the next backup")
		Expect(k8sClient.Create(ctx, pvc("ws-backups", "db", "ws-backups-encrypted"))).To(Succeed())
		advanceClock(13 * time.Minute)
		poke("ws-backups")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cronJob), cronJob)).To(Succeed())
			g.Expect(cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args).To(ContainElement("/data/db"))
		}, timeout, interval).Should(Succeed())

		By("recording a successful backup from the agent's summary")
		summary := fmt.Sprintf(`{"backupID":"20261120T021700Z","locations":[{"region":%q,"bucket":%q,"backups":3,"newest":"20261120T021700Z","oldest":"20261118T021700Z"}]}`,
			primaryRegion, ws.Status.Backup.Locations[0].Bucket)
		finishBackupJob("ws-backups", "workspace-backup-1", true, summary)
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "backups")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("BackupsCurrent"))
			g.Expect(ws.Status.Backup.LastBackupID).To(Equal("20261120T021700Z"))
			g.Expect(ws.Status.Backup.LastSuccessfulBackup).NotTo(BeNil())
			g.Expect(ws.Status.Backup.Locations[0].Backups).To(BeEquivalentTo(3))
		}, timeout, interval).Should(Succeed())

		By("turning BackupsHealthy False when a backup fails")
		time.Sleep(1100 * time.Millisecond) // a later finish time than the first Job
		finishBackupJob("ws-backups", "workspace-backup-2", false, "")
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "backups")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("BackupFailed"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionBackupsHealthy).Message).To(ContainSubstring("S3 outage in eu-central-1"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(hasEvent(workspaceEvents(g, "backups"), corev1.EventTypeWarning, "BackupFailed")).To(BeTrue())
		}, timeout, interval).Should(Succeed())

		By("recovering with the next successful backup, then going stale when backups stop")
		time.Sleep(1100 * time.Millisecond)
		finishBackupJob("ws-backups", "workspace-backup-3", true, "")
		expectReady("backups")
		advanceClock(27 * time.Hour)
		poke("ws-backups")
		Eventually(func(g Gomega) {
			g.Expect(condition(getWorkspace(g, "backups"), tenancyv1alpha1.ConditionBackupsHealthy).Reason).To(Equal("BackupMissed"))
		}, timeout, interval).Should(Succeed())
	})
})
