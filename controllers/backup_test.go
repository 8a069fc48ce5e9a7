package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestDefaultBackupScheduleIsDailyAndSpread(t *testing.T) {
	minutes := map[string]bool{}
	for _, name := range []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"} {
		schedule := defaultBackupSchedule(name, 2)
		fields := strings.Fields(schedule)
		if len(fields) != 5 || fields[1] != "2" || fields[2] != "*" || fields[3] != "*" || fields[4] != "*" {
			t.Errorf("%s: schedule %q is not daily at 02:xx", name, schedule)
		}
		minutes[fields[0]] = true
		if again := defaultBackupSchedule(name, 2); again != schedule {
			t.Errorf("%s: schedule not deterministic: %q then %q", name, schedule, again)
		}
	}
	if len(minutes) < 5 {
		t.Errorf("8 workspaces share only %d minutes: %v", len(minutes), minutes)
	}
}

func TestBackupPolicy(t *testing.T) {
	cfg := DefaultConfig().Backup
	tests := []struct {
		name          string
		spec          tenancyv1alpha1.BackupSpec
		wantSchedule  string
		wantRetention int32
		wantReason    string
	}{
		{name: "defaults", wantSchedule: defaultBackupSchedule("acme", 2), wantRetention: 7},
		{name: "lower retention", spec: tenancyv1alpha1.BackupSpec{RetentionDays: 3, Schedule: "@daily"}, wantSchedule: "@daily", wantRetention: 3},
		{name: "retention above the policy", spec: tenancyv1alpha1.BackupSpec{RetentionDays: 8}, wantReason: "RetentionAboveLimit"},
		{name: "unparseable schedule", spec: tenancyv1alpha1.BackupSpec{Schedule: "61 2 * * *"}, wantReason: "InvalidSchedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Backup = tt.spec
			schedule, retention, err := backupPolicy(ws, cfg)
			if tt.wantReason != "" {
				if !isTerminal(err) {
					t.Fatalf("err = %v, want terminal %s", err, tt.wantReason)
				}
				var ce *concernError
				if !errors.As(err, &ce) || ce.reason != tt.wantReason {
					t.Errorf("err = %v, want reason %s", err, tt.wantReason)
				}
				return
			}
			if err != nil || schedule != tt.wantSchedule || retention != tt.wantRetention {
				t.Errorf("got %q, %d, %v; want %q, %d", schedule, retention, err, tt.wantSchedule, tt.wantRetention)
			}
		})
	}
}

func TestDesiredBackupCronJob(t *testing.T) {
	ws := newTestWorkspace("acme")
	ws.Spec.Backup = tenancyv1alpha1.BackupSpec{IncludeFiles: true, PreBackupHook: &tenancyv1alpha1.BackupHook{Image: "postgres:17", Command: []string{"sh", "-c", "pg_dump > /data/hook/db.sql"}}}
	cfg := DefaultConfig().Backup
	cfg.S3PathStyle = true
	cfg.Env = []corev1.EnvVar{{Name: "AWS_ENDPOINT_URL_KMS", Value: "http://127.0.0.1:4566"}, {Name: "AWS_ENDPOINT_URL_S3", Value: "http://127.0.0.1:4567"}}
	locations := []backupLocation{
		{Region: "eu-west-1", Bucket: "wso-acme-bk-1", KeyAlias: "alias/workspace-operator/acme"},
		{Region: "eu-central-1", Bucket: "wso-acme-bk-2", KeyAlias: "alias/workspace-operator/acme"},
	}
	job := desiredBackupCronJob(ws, "ws-acme", "17 2 * * *", 7, []string{"db", "uploads"}, locations, "wso-acme-files", cfg)

	if job.Spec.Schedule != "17 2 * * *" || job.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || *job.Spec.TimeZone != "Etc/UTC" {
		t.Errorf("schedule %q policy %s zone %s", job.Spec.Schedule, job.Spec.ConcurrencyPolicy, *job.Spec.TimeZone)
	}
	if job.Spec.JobTemplate.Spec.ActiveDeadlineSeconds == nil || job.Spec.StartingDeadlineSeconds == nil {
		t.Error("no deadlines")
	}
	pod := job.Spec.JobTemplate.Spec.Template.Spec
	if pod.ServiceAccountName != backupServiceAccountName || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod identity: sa %s, nonroot %v", pod.ServiceAccountName, pod.SecurityContext.RunAsNonRoot)
	}
	container := pod.Containers[0]
	wantArgs := []string{
		"backup", "--workspace", "acme", "--retention-days", "7", "--summary-file", "/dev/termination-log",
		"--location", "eu-west-1=wso-acme-bk-1,alias/workspace-operator/acme",
		"--location", "eu-central-1=wso-acme-bk-2,alias/workspace-operator/acme",
		"--aws-s3-path-style",
		"--include-bucket", "wso-acme-files",
		"--source", "/data/db", "--source", "/data/uploads", "--source", "/data/hook",
	}
	if diff := cmp.Diff(wantArgs, container.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if container.Image != cfg.Image || !cmp.Equal(container.Command, cfg.Command) {
		t.Errorf("runs %s %v, want the operator's own image and binary", container.Image, container.Command)
	}
	if diff := cmp.Diff(cfg.Env, container.Env); diff != "" {
		t.Errorf("the agent does not get the operator's AWS endpoint settings (-want +got):\n%s", diff)
	}
	for _, m := range container.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("backup container mounts %s writable", m.Name)
		}
	}
	sc := container.SecurityContext
	if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v", sc)
	}
	if len(pod.InitContainers) != 1 || pod.InitContainers[0].Image != "postgres:17" {
		t.Fatalf("hook = %+v", pod.InitContainers)
	}
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && !v.PersistentVolumeClaim.ReadOnly {
			t.Errorf("claim %s mounted writable", v.PersistentVolumeClaim.ClaimName)
		}
	}
	if job.Spec.JobTemplate.Labels[tenancyv1alpha1.WorkspaceLabel] != "acme" || job.Spec.JobTemplate.Spec.Template.Labels[tenancyv1alpha1.WorkspaceLabel] != "acme" {
		t.Error("Jobs and pods are not labelled for the workspace, so the operator would not see them")
	}
}

// The restore Job runs the same agent as the backups, so it must reach AWS the same way.
func TestDesiredRestoreJobReachesAWSLikeTheBackups(t *testing.T) {
	cfg := DefaultConfig().Backup
	cfg.S3PathStyle = true
	cfg.Env = []corev1.EnvVar{{Name: "AWS_ENDPOINT_URL_S3", Value: "https://bucket.vpce-0a1b.s3.eu-west-1.vpce.amazonaws.com"}}
	locations := []backupLocation{{Region: "eu-west-1", Bucket: "wso-acme-bk-1", KeyAlias: "alias/workspace-operator/acme"}}
	job := desiredRestoreJob(newTestWorkspace("acme"), "ws-acme", "20261120T021700Z", []string{"db"}, locations, cfg)

	container := job.Spec.Template.Spec.Containers[0]
	wantArgs := []string{
		"restore", "--workspace", "acme", "--backup", "20261120T021700Z", "--target", "/data",
		"--location", "eu-west-1=wso-acme-bk-1,alias/workspace-operator/acme",
		"--aws-s3-path-style",
		"--source", "db",
	}
	if diff := cmp.Diff(wantArgs, container.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(cfg.Env, container.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestSyncBackupCronJob(t *testing.T) {
	kms := corev1.EnvVar{Name: "AWS_ENDPOINT_URL_KMS", Value: "https://vpce-0a.kms.eu-west-1.vpce.amazonaws.com"}
	s3 := corev1.EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: "https://bucket.vpce-0b.s3.eu-west-1.vpce.amazonaws.com"}
	cronJob := func(env ...corev1.EnvVar) *batchv1.CronJob {
		cfg := DefaultConfig().Backup
		cfg.Env = env
		locations := []backupLocation{{Region: "eu-west-1", Bucket: "wso-acme-bk-1", KeyAlias: "alias/workspace-operator/acme"}}
		return desiredBackupCronJob(newTestWorkspace("acme"), "ws-acme", "17 2 * * *", 7, []string{"db"}, locations, "", cfg)
	}
	// stored is a CronJob as the API server returns it, with the defaults it fills in.
	stored := func(env ...corev1.EnvVar) *batchv1.CronJob {
		cj := cronJob(env...)
		pod := &cj.Spec.JobTemplate.Spec.Template.Spec
		pod.DNSPolicy, pod.SchedulerName = corev1.DNSClusterFirst, corev1.DefaultSchedulerName
		pod.Containers[0].TerminationMessagePath = corev1.TerminationMessagePathDefault
		pod.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
		return cj
	}
	tests := []struct {
		name          string
		live, desired *batchv1.CronJob
		want          *batchv1.CronJob
	}{
		{"the API server's defaults are no change", stored(kms, s3), cronJob(kms, s3), stored(kms, s3)},
		{"a changed endpoint", stored(kms), cronJob(corev1.EnvVar{Name: kms.Name, Value: "https://kms.example"}), cronJob(corev1.EnvVar{Name: kms.Name, Value: "https://kms.example"})},
		{"an endpoint added", stored(kms), cronJob(kms, s3), cronJob(kms, s3)},
		{"an endpoint the operator no longer has", stored(kms, s3), cronJob(kms), cronJob(kms)},
		{"no endpoint any more", stored(kms, s3), cronJob(), cronJob()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			syncBackupCronJob(tt.live, tt.desired)
			if diff := cmp.Diff(tt.want.Spec, tt.live.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAWSEndpointEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []corev1.EnvVar
	}{{
		name:    "none",
		environ: []string{"PATH=/usr/bin", "AWS_REGION=eu-west-1", "HOME=/"},
	}, {
		name: "per service and global, sorted",
		environ: []string{
			"AWS_ENDPOINT_URL_S3=https://bucket.vpce-1.s3.eu-west-1.vpce.amazonaws.com",
			"PATH=/usr/bin",
			"AWS_ENDPOINT_URL=http://127.0.0.1:4566",
			"AWS_ENDPOINT_URL_KMS=https://vpce-2.kms.eu-west-1.vpce.amazonaws.com",
			"AWS_ENDPOINT_URL_STS=https://vpce-3.sts.eu-west-1.vpce.amazonaws.com",
		},
		want: []corev1.EnvVar{
			{Name: "AWS_ENDPOINT_URL", Value: "http://127.0.0.1:4566"},
			{Name: "AWS_ENDPOINT_URL_KMS", Value: "https://vpce-2.kms.eu-west-1.vpce.amazonaws.com"},
			{Name: "AWS_ENDPOINT_URL_S3", Value: "https://bucket.vpce-1.s3.eu-west-1.vpce.amazonaws.com"},
			{Name: "AWS_ENDPOINT_URL_STS", Value: "https://vpce-3.sts.eu-west-1.vpce.amazonaws.com"},
		},
	}, {
		name:    "the switch that turns configured endpoints off travels with them",
		environ: []string{"AWS_ENDPOINT_URL_KMS=https://kms.example", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true"},
		want: []corev1.EnvVar{
			{Name: "AWS_ENDPOINT_URL_KMS", Value: "https://kms.example"},
			{Name: "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", Value: "true"},
		},
	}, {
		name:    "empty values and look-alikes are left out",
		environ: []string{"AWS_ENDPOINT_URL_S3=", "AWS_ENDPOINT_URLS=x", "MY_AWS_ENDPOINT_URL=x", "AWS_ENDPOINT_URL"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, AWSEndpointEnv(tt.environ)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackupHealth(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-ago)} }
	stale := 26 * time.Hour
	tests := []struct {
		name       string
		status     tenancyv1alpha1.BackupStatus
		createdAgo time.Duration
		want       metav1.ConditionStatus
		wantReason string
	}{
		{name: "recent success", status: tenancyv1alpha1.BackupStatus{LastSuccessfulBackup: at(3 * time.Hour), LastBackupID: "b1"}, createdAgo: 72 * time.Hour, want: metav1.ConditionTrue, wantReason: "BackupsCurrent"},
		{name: "new workspace", createdAgo: time.Hour, want: metav1.ConditionTrue, wantReason: "FirstBackupScheduled"},
		{name: "never backed up", createdAgo: 30 * time.Hour, want: metav1.ConditionFalse, wantReason: "BackupMissed"},
		{name: "missed a day", status: tenancyv1alpha1.BackupStatus{LastSuccessfulBackup: at(27 * time.Hour)}, createdAgo: 72 * time.Hour, want: metav1.ConditionFalse, wantReason: "BackupMissed"},
		{name: "undeleted with an old backup", status: tenancyv1alpha1.BackupStatus{LastSuccessfulBackup: at(6 * 24 * time.Hour)}, createdAgo: time.Hour, want: metav1.ConditionTrue, wantReason: "BackupsCurrent"},
		{name: "last run failed", status: tenancyv1alpha1.BackupStatus{LastSuccessfulBackup: at(3 * time.Hour), LastFailure: "BackoffLimitExceeded: S3 outage in eu-central-1"}, createdAgo: 72 * time.Hour, want: metav1.ConditionFalse, wantReason: "BackupFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, reason, message := backupHealth(&tt.status, now.Add(-tt.createdAgo), now, stale)
			if status != tt.want || reason != tt.wantReason || message == "" {
				t.Errorf("got %s/%s %q, want %s/%s", status, reason, message, tt.want, tt.wantReason)
			}
		})
	}
}

func TestBackupHoldDays(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		retention int32
		window    time.Duration
		want      int32
	}{
		{7, 7 * day, 15},
		{7, 30 * day, 38},
		{1, 7 * day, 9},
		// A window of whole days is what admission allows; a partial day still counts whole.
		{7, 7*day + time.Hour, 16},
	} {
		if got := backupHoldDays(tc.retention, tc.window); got != tc.want {
			t.Errorf("backupHoldDays(%d, %s) = %d, want %d", tc.retention, tc.window, got, tc.want)
		}
	}
}

// The Job informer can deliver a Job's completion before the pod informer delivers the
// pod's termination message; the summary is read once per Job, so it must not come from
// the cache (this flaked the envtest suite under CI load).
func TestBackupSummaryOfAFinishedJobIsReadLive(t *testing.T) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	ws.Status.Backup = &tenancyv1alpha1.BackupStatus{}
	now := metav1.Now()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ws-acme", Name: "workspace-backup-1", Labels: managedLabels(ws)},
		Status: batchv1.JobStatus{CompletionTime: &now, Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}},
	}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ws-acme", Name: "workspace-backup-1-x", Labels: map[string]string{batchv1.JobNameLabel: job.Name},
	}}
	terminated := running.DeepCopy()
	terminated.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: backupContainerName, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: `{"backupID":"20261120T021700Z"}`},
	}}}
	lagging := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(job, running).Build()
	live := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(job, terminated).Build()
	r := &WorkspaceReconciler{Client: lagging, APIReader: live, Recorder: events.NewFakeRecorder(10)}

	if err := r.observeBackupJobs(context.Background(), ws, "ws-acme"); err != nil {
		t.Fatal(err)
	}
	if got := ws.Status.Backup.LastBackupID; got != "20261120T021700Z" {
		t.Errorf("lastBackupID %q, want the ID in the pod's termination message", got)
	}
}
