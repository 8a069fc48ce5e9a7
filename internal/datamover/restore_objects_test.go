package datamover

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func testRestore() *tenancyv1alpha1.WorkspaceRestore {
	backup := testRun()
	return &tenancyv1alpha1.WorkspaceRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-restore-1", Namespace: "mover", UID: "restore-uid"},
		Spec: tenancyv1alpha1.WorkspaceRestoreSpec{Workspace: "acme", Volumes: []tenancyv1alpha1.RestoreVolume{
			{Source: "db", Claim: "db-restored", BackupID: "20261205T020000Z", Storage: resource.MustParse("5Gi")},
		}},
		Status: tenancyv1alpha1.WorkspaceRestoreStatus{
			Namespace: backup.Status.Namespace, StorageClassName: backup.Status.StorageClassName, Locations: backup.Status.Locations,
		},
	}
}

func TestRestoreNames(t *testing.T) {
	run := testRestore()
	other := testRestore()
	other.Name = "acme-restore-2"
	a := newRestoreRef(run, run.Spec.Volumes[0])
	if b := newRestoreRef(run, run.Spec.Volumes[0]); a.name != b.name {
		t.Errorf("names are not deterministic: %q, %q", a.name, b.name)
	}
	if b := newRestoreRef(other, run.Spec.Volumes[0]); a.name == b.name {
		t.Errorf("two runs share the name %q", a.name)
	}
	otherClaim := run.Spec.Volumes[0]
	otherClaim.Claim = "other"
	if b := newRestoreRef(run, otherClaim); a.name == b.name {
		t.Errorf("two claims share the name %q", a.name)
	}
	if len(a.name) > 63 {
		t.Errorf("name %q is longer than a label value", a.name)
	}
}

func TestDesiredWorkspaceClaim(t *testing.T) {
	run := testRestore()
	v := newRestoreRef(run, run.Spec.Volumes[0])
	claim := desiredWorkspaceClaim(v)
	if claim.Namespace != "ws-acme" || claim.Name != "db-restored" {
		t.Errorf("claim %s/%s, want ws-acme/db-restored", claim.Namespace, claim.Name)
	}
	// A claim with a selector is never provisioned dynamically: it can only bind to the
	// restored volume, which alone will carry the label.
	if diff := cmp.Diff(map[string]string{RestoredVolumeLabel: v.name}, claim.Spec.Selector.MatchLabels); diff != "" {
		t.Errorf("selector (-want +got):\n%s", diff)
	}
	if got := claim.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "5Gi" {
		t.Errorf("size %s, want 5Gi", got.String())
	}
	if *claim.Spec.StorageClassName != "ws-acme-encrypted" {
		t.Errorf("class %s, want the workspace's encrypted class", *claim.Spec.StorageClassName)
	}
	if claim.Labels[tenancyv1alpha1.RestoreClaimLabel] != v.name || claim.Labels[tenancyv1alpha1.RestoreRunLabel] != run.Name {
		t.Errorf("labels %v do not name the run and volume", claim.Labels)
	}
	if len(claim.OwnerReferences) != 0 {
		t.Errorf("the workspace's claim must not be owned by the run (deleting the run would delete the data): %v", claim.OwnerReferences)
	}
}

func TestDesiredRestorePod(t *testing.T) {
	run := testRestore()
	v := newRestoreRef(run, run.Spec.Volumes[0])
	pod := desiredRestorePod(v, "mover", moverSettings{Image: "op:1", Command: []string{"/manager"}, ServiceAccount: "mover-acme", Timeout: 60, S3PathStyle: true})
	c := pod.Spec.Containers[0]
	wantArgs := []string{
		"restore", "--workspace", "acme", "--backup", "20261205T020000Z", "--source", "db", "--target", "/data", "--log-format", "json",
		"--location", "eu-west-1=wso-acme-backup-eu-west-1,alias/ws-acme",
		"--location", "eu-central-1=wso-acme-backup-eu-central-1,alias/ws-acme",
		"--aws-s3-path-style",
	}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	// The volume is mounted where the agent restores the source, whatever the new claim's name.
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/data/db" || c.VolumeMounts[0].ReadOnly {
		t.Errorf("mounts %+v, want /data/db read-write", c.VolumeMounts)
	}
	if pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != v.name {
		t.Errorf("pod mounts %s, want the mover's claim %s", pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, v.name)
	}
	if !slices.Equal(c.SecurityContext.Capabilities.Add, []corev1.Capability{"CHOWN", "FOWNER", "FSETID", "DAC_OVERRIDE", "SETFCAP"}) ||
		!slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v, want only what restoring owners, modes and xattrs takes", c.SecurityContext.Capabilities)
	}
	if *pod.Spec.SecurityContext.RunAsUser != 0 || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v %+v", pod.Spec.SecurityContext, c.SecurityContext)
	}
	if pod.OwnerReferences[0].UID != run.UID || pod.Spec.ServiceAccountName != "mover-acme" {
		t.Errorf("owner %v, service account %s", pod.OwnerReferences, pod.Spec.ServiceAccountName)
	}
}

func TestVolumeHandover(t *testing.T) {
	run := testRestore()
	v := newRestoreRef(run, run.Spec.Volumes[0])
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			ClaimRef:                      &corev1.ObjectReference{Namespace: "mover", Name: v.name, UID: "mover-claim"},
		},
	}

	held := retained(pv)
	if held.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || held.Annotations[ReclaimPolicyAnnotation] != "Delete" {
		t.Fatalf("retained: policy %s, annotations %v", held.Spec.PersistentVolumeReclaimPolicy, held.Annotations)
	}
	if again := retained(held); again.Annotations[ReclaimPolicyAnnotation] != "Delete" {
		t.Errorf("retaining twice lost the volume's own policy: %v", again.Annotations)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Error("retained changed its argument")
	}

	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ws-acme", Name: "db-restored", UID: "tenant-claim", ResourceVersion: "42"}}
	handed := handedOver(held, v, claim)
	want := &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: "ws-acme", Name: "db-restored", UID: "tenant-claim", ResourceVersion: "42"}
	if diff := cmp.Diff(want, handed.Spec.ClaimRef); diff != "" {
		t.Errorf("claimRef (-want +got):\n%s", diff)
	}
	if handed.Labels[RestoredVolumeLabel] != v.name {
		t.Errorf("labels %v: the claim's selector would not match", handed.Labels)
	}

	back := reclaimRestored(handed)
	if back.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("policy %s after the handover, want the volume's own Delete", back.Spec.PersistentVolumeReclaimPolicy)
	}
	if _, kept := back.Annotations[ReclaimPolicyAnnotation]; kept {
		t.Error("the annotation outlived the handover")
	}
	if unchanged := reclaimRestored(pv); unchanged.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Error("a volume never retained changed policy")
	}
}
