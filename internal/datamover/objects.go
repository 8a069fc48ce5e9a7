// Package datamover backs up a workspace's volumes from CSI snapshots, outside the
// tenant's namespace: each volume is snapshotted where it lives, the snapshot is exposed
// in the operator's mover namespace as a statically bound copy, a volume is restored from
// that copy there, and a mover pod pinned to the volume's zone uploads it with the backup
// agent. A run is a WorkspaceBackup; see docs/design/data-mover.md.
package datamover

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Names inside a mover pod.
const (
	moverContainerName = "mover"
	dataDir            = "/data"
	// maxBackupIDLength is the agent's limit on a backup ID.
	maxBackupIDLength = 64
)

// volumeRef is one volume of a run: the run, the claim it moves and the names of every
// object created for it. The names are derived, never stored, so a restarted operator
// finds the objects of a run it had started.
type volumeRef struct {
	run   *tenancyv1alpha1.WorkspaceBackup
	claim string
	// name is the tenant snapshot's, the content copy's, the mover-namespace snapshot's,
	// PVC's and pod's: one name for all, as Velero names them after the DataUpload.
	name string
}

func newVolumeRef(run *tenancyv1alpha1.WorkspaceBackup, claim string) volumeRef {
	return volumeRef{run: run, claim: claim, name: childName(run, claim)}
}

// childName is unique per run and claim across the cluster (the content copy is
// cluster-scoped) and short enough for every kind's name and for a label value.
func childName(run *tenancyv1alpha1.WorkspaceBackup, claim string) string {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s/%s/%s", run.Namespace, run.Name, claim)
	return "wsb-" + strconv.FormatUint(h.Sum64(), 36)
}

// labels mark every object of a volume: managed by the operator (so the label-scoped cache
// holds it), the workspace, the run and the claim.
func (v volumeRef) labels() map[string]string {
	return map[string]string{
		tenancyv1alpha1.ManagedByLabel:   tenancyv1alpha1.ManagedByValue,
		tenancyv1alpha1.WorkspaceLabel:   v.run.Spec.Workspace,
		tenancyv1alpha1.BackupRunLabel:   v.run.Name,
		tenancyv1alpha1.BackupClaimLabel: v.claim,
	}
}

// ownedByRun makes the run the controller of a mover-namespace object, so that its events
// wake the run and the garbage collector removes it if the run is ever deleted without
// its finalizer.
func (v volumeRef) ownedByRun() []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion:         tenancyv1alpha1.GroupVersion.String(),
		Kind:               "WorkspaceBackup",
		Name:               v.run.Name,
		UID:                v.run.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}}
}

// backupID is the volume's ID in the backup locations: the run's ID, then the claim, so
// that a volume's backups sort by time and the volumes of one run group together. A claim
// too long for the agent's 64 characters is cut and made unique with the name's hash.
func (v volumeRef) backupID() string {
	if v.claim == "" {
		// '_' is in no claim's name: the file bucket's ID never takes a volume's.
		return v.run.Status.BackupID + "_files"
	}
	id := v.run.Status.BackupID + "-" + v.claim
	if len(id) <= maxBackupIDLength {
		return id
	}
	suffix := "-" + v.name[len("wsb-"):]
	return id[:maxBackupIDLength-len(suffix)] + suffix
}

// snapshotClassName is the workspace's VolumeSnapshotClass: named like its StorageClass.
func snapshotClassName(run *tenancyv1alpha1.WorkspaceBackup) string {
	return run.Status.StorageClassName
}

// desiredSnapshotClass snapshots the workspace's encrypted volumes. Delete: the snapshot
// belongs to the tenant-side content, and deleting the tenant VolumeSnapshot (the last
// cleanup step, or the namespace with it) deletes it. EBS snapshots of an encrypted volume
// are encrypted with the volume's key, so the class needs no key of its own.
func desiredSnapshotClass(run *tenancyv1alpha1.WorkspaceBackup, driver string) *snapshotv1.VolumeSnapshotClass {
	return &snapshotv1.VolumeSnapshotClass{
		ObjectMeta: metav1.ObjectMeta{
			Name: snapshotClassName(run),
			Labels: map[string]string{
				tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
				tenancyv1alpha1.WorkspaceLabel: run.Spec.Workspace,
			},
		},
		Driver:         driver,
		DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
	}
}

// desiredSnapshot is the point-in-time snapshot of the claim, in the tenant's namespace:
// the only object a backup puts there.
func desiredSnapshot(v volumeRef) *snapshotv1.VolumeSnapshot {
	return &snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: v.run.Status.Namespace, Labels: v.labels()},
		Spec: snapshotv1.VolumeSnapshotSpec{
			Source:                  snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(v.claim)},
			VolumeSnapshotClassName: ptr.To(snapshotClassName(v.run)),
		},
	}
}

// desiredContentCopy exposes the tenant's snapshot in the mover namespace: a statically
// provisioned content with the same handle, pre-bound to the mover-namespace snapshot.
// Retain: deleting the copy must never delete the snapshot it shares with the tenant's
// content, which alone owns it.
func desiredContentCopy(v volumeRef, moverNamespace string, original *snapshotv1.VolumeSnapshotContent) *snapshotv1.VolumeSnapshotContent {
	return &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Labels: v.labels()},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			VolumeSnapshotRef:       corev1.ObjectReference{Namespace: moverNamespace, Name: v.name},
			DeletionPolicy:          snapshotv1.VolumeSnapshotContentRetain,
			Driver:                  original.Spec.Driver,
			VolumeSnapshotClassName: original.Spec.VolumeSnapshotClassName,
			Source:                  snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: original.Status.SnapshotHandle},
			SourceVolumeMode:        original.Spec.SourceVolumeMode,
		},
	}
}

// desiredSnapshotCopy is the mover-namespace side of the static binding.
func desiredSnapshotCopy(v volumeRef, moverNamespace string) *snapshotv1.VolumeSnapshot {
	return &snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: moverNamespace, Labels: v.labels(), OwnerReferences: v.ownedByRun()},
		Spec: snapshotv1.VolumeSnapshotSpec{
			Source:                  snapshotv1.VolumeSnapshotSource{VolumeSnapshotContentName: ptr.To(v.name)},
			VolumeSnapshotClassName: ptr.To(snapshotClassName(v.run)),
		},
	}
}

// desiredClone is the volume the mover reads: restored from the snapshot copy, on the
// workspace's encrypted class, at least as large as the snapshot. With the class's
// WaitForFirstConsumer binding it is created where the mover pod is scheduled.
func desiredClone(v volumeRef, moverNamespace string, source *corev1.PersistentVolumeClaim, size resource.Quantity) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: moverNamespace, Labels: v.labels(), OwnerReferences: v.ownedByRun()},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: source.Spec.StorageClassName,
			VolumeMode:       source.Spec.VolumeMode,
			DataSourceRef: &corev1.TypedObjectReference{
				APIGroup: ptr.To(snapshotv1.GroupName),
				Kind:     "VolumeSnapshot",
				Name:     v.name,
			},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// cloneSize is the snapshot's restore size when the snapshot-controller reports one, the
// source claim's request otherwise (a driver may report none).
func cloneSize(snapshot *snapshotv1.VolumeSnapshot, source *corev1.PersistentVolumeClaim) resource.Quantity {
	if snapshot.Status != nil && snapshot.Status.RestoreSize != nil && !snapshot.Status.RestoreSize.IsZero() {
		return *snapshot.Status.RestoreSize
	}
	return source.Spec.Resources.Requests[corev1.ResourceStorage]
}

// moverSettings are the operator-wide settings of a mover pod.
type moverSettings struct {
	Image          string
	Command        []string
	Env            []corev1.EnvVar
	S3PathStyle    bool
	ServiceAccount string
	Timeout        int64 // seconds
}

// desiredMoverPod runs the backup agent on the cloned volume, as root so that it reads
// every file whatever its owner and mode, with only the capability to read (no write, no
// chown: the clone is mounted read-only). It is pinned to the source volume's topology:
// the clone is provisioned where the pod lands, and that must be where the snapshot can be
// restored.
func desiredMoverPod(v volumeRef, moverNamespace string, sourcePV *corev1.PersistentVolume, s moverSettings) *corev1.Pod {
	mount := dataDir + "/" + v.claim
	args := []string{
		"backup", "--workspace", v.run.Spec.Workspace, "--backup-id", v.backupID(),
		"--retention-days", strconv.Itoa(int(v.run.Status.RetentionDays)),
		"--summary-file", "/dev/termination-log", "--log-format", "json",
	}
	for _, l := range v.run.Status.Locations {
		args = append(args, "--location", fmt.Sprintf("%s=%s,%s", l.Region, l.Bucket, l.KeyAlias))
	}
	if s.S3PathStyle {
		args = append(args, "--aws-s3-path-style")
	}
	if v.claim == "" {
		args = append(args, "--include-bucket", v.run.Status.FilesBucket)
	} else {
		args = append(args, "--source", mount)
	}

	var affinity *corev1.Affinity
	if sourcePV != nil && sourcePV.Spec.NodeAffinity != nil && sourcePV.Spec.NodeAffinity.Required != nil {
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: sourcePV.Spec.NodeAffinity.Required.DeepCopy(),
		}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: moverNamespace, Labels: v.labels(), OwnerReferences: v.ownedByRun()},
		Spec: corev1.PodSpec{
			ServiceAccountName:            s.ServiceAccount,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(s.Timeout),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Affinity:                      affinity,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:      ptr.To[int64](0),
				RunAsGroup:     ptr.To[int64](0),
				RunAsNonRoot:   ptr.To(false),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:    moverContainerName,
				Image:   s.Image,
				Command: s.Command,
				Args:    args,
				Env:     slices.Clone(s.Env),
				VolumeMounts: []corev1.VolumeMount{{
					Name: "data", MountPath: mount, ReadOnly: true,
				}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities: &corev1.Capabilities{
						Drop: []corev1.Capability{"ALL"},
						Add:  []corev1.Capability{"DAC_READ_SEARCH"},
					},
				},
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
			Volumes: []corev1.Volume{{
				Name: "data",
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: v.name, ReadOnly: true,
				}},
			}},
		},
	}
	if v.claim == "" {
		// The file bucket's mover reads S3 only: no volume, no capability.
		c := &pod.Spec.Containers[0]
		c.VolumeMounts, c.SecurityContext.Capabilities.Add, pod.Spec.Volumes = nil, nil, nil
	}
	return pod
}

// roleARNAnnotation gives a ServiceAccount its IAM role (IRSA).
const roleARNAnnotation = "eks.amazonaws.com/role-arn"

// moverServiceAccountName is the identity of a workspace's movers in the mover namespace.
func moverServiceAccountName(workspace string) string {
	return "mover-" + workspace
}

// desiredServiceAccount is a workspace's mover identity, with the IAM role that reaches
// only that workspace's backup buckets and keys (see the design's credentials section).
func desiredServiceAccount(workspace, moverNamespace, roleARN string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Name:      moverServiceAccountName(workspace),
			Namespace: moverNamespace,
			Labels: map[string]string{
				tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
				tenancyv1alpha1.WorkspaceLabel: workspace,
			},
		},
		AutomountServiceAccountToken: ptr.To(false),
	}
	if roleARN != "" {
		sa.Annotations = map[string]string{roleARNAnnotation: roleARN}
	}
	return sa
}
