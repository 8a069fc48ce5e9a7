package datamover

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func testRun() *tenancyv1alpha1.WorkspaceBackup {
	return &tenancyv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-20261205", Namespace: "mover", UID: "run-uid"},
		Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: "acme"},
		Status: tenancyv1alpha1.WorkspaceBackupStatus{
			BackupID:         "20261205T020000Z",
			Namespace:        "ws-acme",
			StorageClassName: "ws-acme-encrypted",
			RetentionDays:    7,
			Locations: []tenancyv1alpha1.BackupRunLocation{
				{Region: "eu-west-1", Bucket: "wso-acme-backup-eu-west-1", KeyAlias: "alias/ws-acme"},
				{Region: "eu-central-1", Bucket: "wso-acme-backup-eu-central-1", KeyAlias: "alias/ws-acme"},
			},
		},
	}
}

func TestChildNames(t *testing.T) {
	run := testRun()
	other := testRun()
	other.Name = "acme-20261206"
	long := strings.Repeat("c", 63)
	names := map[string]string{}
	for _, tc := range []struct {
		run   *tenancyv1alpha1.WorkspaceBackup
		claim string
	}{{run, "db"}, {run, "files"}, {other, "db"}, {run, long}} {
		v := newVolumeRef(tc.run, tc.claim)
		if len(v.name) > 63 {
			t.Errorf("name %q of %s/%s is longer than a label value", v.name, tc.run.Name, tc.claim)
		}
		if again := newVolumeRef(tc.run, tc.claim).name; again != v.name {
			t.Errorf("name of %s/%s is not deterministic: %q then %q", tc.run.Name, tc.claim, v.name, again)
		}
		key := tc.run.Name + "/" + tc.claim
		if seen, ok := names[v.name]; ok {
			t.Errorf("%s and %s share the name %q", seen, key, v.name)
		}
		names[v.name] = key
	}
}

func TestBackupID(t *testing.T) {
	run := testRun()
	for _, tc := range []struct {
		claim string
		want  string
	}{
		{"db", "20261205T020000Z-db"},
		{strings.Repeat("c", 47), "20261205T020000Z-" + strings.Repeat("c", 47)},
		{"", "20261205T020000Z_files"}, // the file bucket
	} {
		if got := newVolumeRef(run, tc.claim).backupID(); got != tc.want {
			t.Errorf("backupID(%q) = %q, want %q", tc.claim, got, tc.want)
		}
	}
	// Two long claims that share their first characters keep distinct IDs within the
	// agent's 64 characters.
	a := newVolumeRef(run, strings.Repeat("c", 60)+"-one").backupID()
	b := newVolumeRef(run, strings.Repeat("c", 60)+"-two").backupID()
	if len(a) > maxBackupIDLength || len(b) > maxBackupIDLength || a == b || !strings.HasPrefix(a, "20261205T020000Z-ccc") {
		t.Errorf("long claims give backup IDs %q and %q", a, b)
	}
}

func TestDesiredContentCopy(t *testing.T) {
	v := newVolumeRef(testRun(), "db")
	original := &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: "snapcontent-1"},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			VolumeSnapshotRef:       corev1.ObjectReference{Namespace: "ws-acme", Name: v.name, UID: "vs-uid"},
			DeletionPolicy:          snapshotv1.VolumeSnapshotContentDelete,
			Driver:                  "ebs.csi.aws.com",
			VolumeSnapshotClassName: ptr.To("ws-acme-encrypted"),
			Source:                  snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("vol-1")},
			SourceVolumeMode:        ptr.To(corev1.PersistentVolumeFilesystem),
		},
		Status: &snapshotv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("snap-0abc")},
	}
	got := desiredContentCopy(v, "mover", original)
	want := snapshotv1.VolumeSnapshotContentSpec{
		// Pre-bound by name to the mover-namespace snapshot; no UID, which does not exist yet.
		VolumeSnapshotRef: corev1.ObjectReference{Namespace: "mover", Name: v.name},
		// Retain: only the tenant-side content owns the snapshot.
		DeletionPolicy:          snapshotv1.VolumeSnapshotContentRetain,
		Driver:                  "ebs.csi.aws.com",
		VolumeSnapshotClassName: ptr.To("ws-acme-encrypted"),
		Source:                  snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To("snap-0abc")},
		SourceVolumeMode:        ptr.To(corev1.PersistentVolumeFilesystem),
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("content copy (-want +got):\n%s", diff)
	}
	if got.Namespace != "" || got.Labels[tenancyv1alpha1.BackupRunLabel] != "acme-20261205" || got.Labels[tenancyv1alpha1.BackupClaimLabel] != "db" {
		t.Errorf("content copy metadata: %+v", got.ObjectMeta)
	}
}

func TestDesiredClone(t *testing.T) {
	v := newVolumeRef(testRun(), "db")
	source := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{
		StorageClassName: ptr.To("ws-acme-encrypted"),
		VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
	}}
	for _, tc := range []struct {
		name     string
		snapshot *snapshotv1.VolumeSnapshot
		wantSize string
	}{
		{"restore size reported", &snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{RestoreSize: ptr.To(resource.MustParse("12Gi"))}}, "12Gi"},
		{"no restore size", &snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{}}, "10Gi"},
		{"zero restore size", &snapshotv1.VolumeSnapshot{Status: &snapshotv1.VolumeSnapshotStatus{RestoreSize: ptr.To(resource.MustParse("0"))}}, "10Gi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := desiredClone(v, "mover", source, cloneSize(tc.snapshot, source))
			want := corev1.PersistentVolumeClaimSpec{
				// The mover alone mounts the clone; the source's access mode is the workload's.
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptr.To("ws-acme-encrypted"),
				VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
				DataSourceRef:    &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: v.name},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(tc.wantSize)}},
			}
			if diff := cmp.Diff(want, got.Spec); diff != "" {
				t.Errorf("clone (-want +got):\n%s", diff)
			}
			if got.Namespace != "mover" || len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "run-uid" {
				t.Errorf("clone metadata: %+v", got.ObjectMeta)
			}
		})
	}
}

func TestDesiredMoverPod(t *testing.T) {
	v := newVolumeRef(testRun(), "db")
	zoneA := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: "topology.ebs.csi.aws.com/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-west-1a"}},
	}}}}
	settings := moverSettings{Image: "operator:1", Command: []string{"/manager"}, ServiceAccount: "mover-acme", Timeout: 3600}
	for _, tc := range []struct {
		name         string
		pv           *corev1.PersistentVolume
		env          []corev1.EnvVar
		pathStyle    bool
		wantAffinity *corev1.Affinity
		wantArgsTail []string
	}{
		{
			name:         "pinned to the volume's zone",
			pv:           &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{NodeAffinity: &corev1.VolumeNodeAffinity{Required: zoneA}}},
			wantAffinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: zoneA}},
			wantArgsTail: []string{"--source", "/data/db"},
		},
		{
			name:         "a volume without topology, through the operator's endpoints",
			pv:           &corev1.PersistentVolume{},
			env:          []corev1.EnvVar{{Name: "AWS_ENDPOINT_URL_S3", Value: "http://127.0.0.1:4566"}},
			pathStyle:    true,
			wantArgsTail: []string{"--aws-s3-path-style", "--source", "/data/db"},
		},
		{name: "no volume bound", wantArgsTail: []string{"--source", "/data/db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := settings
			s.Env, s.S3PathStyle = tc.env, tc.pathStyle
			pod := desiredMoverPod(v, "mover", tc.pv, s)
			if diff := cmp.Diff(tc.wantAffinity, pod.Spec.Affinity); diff != "" {
				t.Errorf("affinity (-want +got):\n%s", diff)
			}
			wantArgs := append([]string{
				"backup", "--workspace", "acme", "--backup-id", "20261205T020000Z-db", "--retention-days", "7",
				"--summary-file", "/dev/termination-log", "--log-format", "json",
				"--location", "eu-west-1=wso-acme-backup-eu-west-1,alias/ws-acme",
				"--location", "eu-central-1=wso-acme-backup-eu-central-1,alias/ws-acme",
			}, tc.wantArgsTail...)
			c := pod.Spec.Containers[0]
			if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.env, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			// Root with only the capability to read any file; the clone is mounted read-only.
			if *pod.Spec.SecurityContext.RunAsUser != 0 || *c.SecurityContext.AllowPrivilegeEscalation ||
				!cmp.Equal(c.SecurityContext.Capabilities.Add, []corev1.Capability{"DAC_READ_SEARCH"}) ||
				!cmp.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				!c.VolumeMounts[0].ReadOnly || !pod.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly {
				t.Errorf("security: pod %+v container %+v", pod.Spec.SecurityContext, c.SecurityContext)
			}
			if pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != v.name || pod.Spec.ServiceAccountName != "mover-acme" ||
				*pod.Spec.ActiveDeadlineSeconds != 3600 || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("pod spec: %+v", pod.Spec)
			}
		})
	}
}

func TestDesiredFilesMoverPod(t *testing.T) {
	run := testRun()
	run.Status.FilesBucket = "wso-acme-files"
	pod := desiredMoverPod(newVolumeRef(run, ""), "mover", nil, moverSettings{Image: "operator:1", Command: []string{"/manager"}, ServiceAccount: "mover-acme", Timeout: 3600})
	c := pod.Spec.Containers[0]
	want := []string{
		"backup", "--workspace", "acme", "--backup-id", "20261205T020000Z_files", "--retention-days", "7",
		"--summary-file", "/dev/termination-log", "--log-format", "json",
		"--location", "eu-west-1=wso-acme-backup-eu-west-1,alias/ws-acme",
		"--location", "eu-central-1=wso-acme-backup-eu-central-1,alias/ws-acme",
		"--include-bucket", "wso-acme-files",
	}
	if diff := cmp.Diff(want, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if len(pod.Spec.Volumes) != 0 || len(c.VolumeMounts) != 0 || len(c.SecurityContext.Capabilities.Add) != 0 || pod.Spec.Affinity != nil {
		t.Errorf("the file bucket's mover has a volume, a capability or an affinity: %+v", pod.Spec)
	}
}

func TestSnapshotReady(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      *snapshotv1.VolumeSnapshotStatus
		wantDone    bool
		wantFailure string
	}{
		{name: "no status yet"},
		{name: "ready but not bound", status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}},
		{name: "bound, not ready", status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), BoundVolumeSnapshotContentName: ptr.To("c")}},
		{name: "ready and bound", status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), BoundVolumeSnapshotContentName: ptr.To("c")}, wantDone: true},
		{
			name:        "error",
			status:      &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapshotv1.VolumeSnapshotError{Message: ptr.To("quota exceeded")}},
			wantFailure: "VolumeSnapshot ws-acme/s failed: quota exceeded",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := snapshotReady(&snapshotv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "ws-acme", Name: "s"}, Status: tc.status})
			if err != nil || got.done != tc.wantDone || got.failure != tc.wantFailure {
				t.Errorf("snapshotReady = %+v, %v; want done %v, failure %q", got, err, tc.wantDone, tc.wantFailure)
			}
		})
	}
}

func TestRunInputs(t *testing.T) {
	ready := func() *tenancyv1alpha1.Workspace {
		return &tenancyv1alpha1.Workspace{Status: tenancyv1alpha1.WorkspaceStatus{
			Namespace: "ws-acme",
			Encryption: &tenancyv1alpha1.EncryptionStatus{StorageClassName: "ws-acme-encrypted", Keys: []tenancyv1alpha1.KeyStatus{
				{Region: "eu-west-1", ARN: "arn:1", Alias: "alias/a"},
				{Region: "eu-central-1", ARN: "arn:2", Alias: "alias/b"},
			}},
			Backup: &tenancyv1alpha1.BackupStatus{RetentionDays: 5, Locations: []tenancyv1alpha1.BackupLocationStatus{
				{Region: "eu-west-1", Bucket: "b1"}, {Region: "eu-central-1", Bucket: "b2"},
			}},
		}}
	}
	ws := ready()
	got, missing := runInputs(ws)
	want := tenancyv1alpha1.WorkspaceBackupStatus{
		Namespace: "ws-acme", StorageClassName: "ws-acme-encrypted", RetentionDays: 5,
		Locations: []tenancyv1alpha1.BackupRunLocation{{Region: "eu-west-1", Bucket: "b1", KeyAlias: "alias/a"}, {Region: "eu-central-1", Bucket: "b2", KeyAlias: "alias/b"}},
	}
	if diff := cmp.Diff(want, got); diff != "" || missing != "" {
		t.Errorf("inputs of a ready workspace (-want +got), missing %q:\n%s", missing, diff)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*tenancyv1alpha1.Workspace)
		want   string
	}{
		{"no namespace", func(ws *tenancyv1alpha1.Workspace) { ws.Status.Namespace = "" }, "its namespace is not created yet"},
		{"no class", func(ws *tenancyv1alpha1.Workspace) { ws.Status.Encryption = nil }, "its encrypted StorageClass is not created yet"},
		{"no buckets", func(ws *tenancyv1alpha1.Workspace) { ws.Status.Backup.Locations = nil }, "its backup buckets are not created yet"},
		{"key being created", func(ws *tenancyv1alpha1.Workspace) { ws.Status.Encryption.Keys[1].ARN = "" }, "its key in eu-central-1 is not created yet"},
		{"files asked, no bucket yet", func(ws *tenancyv1alpha1.Workspace) { ws.Spec.Backup.IncludeFiles = true }, "its file bucket, which spec.backup.includeFiles backs up, is not created yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := ready()
			tc.mutate(ws)
			if _, missing := runInputs(ws); missing != tc.want {
				t.Errorf("missing = %q, want %q", missing, tc.want)
			}
		})
	}
}
