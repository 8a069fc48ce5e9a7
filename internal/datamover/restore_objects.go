package datamover

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// RestoredVolumeLabel marks a restored PersistentVolume, and is what the claim it is
// restored for selects: with a selector, no provisioner ever gives the claim a volume of its
// own, so it stays Pending until the restored one, complete, is handed to it.
const RestoredVolumeLabel = "tenancy.workspace-operator.io/restored-volume"

// ReclaimPolicyAnnotation keeps a restored volume's own reclaim policy while the restore
// holds it at Retain between the mover's claim and the workspace's.
const ReclaimPolicyAnnotation = "tenancy.workspace-operator.io/reclaim-policy"

// restoreRef is one volume of a restore run, and the names of what is created for it.
type restoreRef struct {
	run    *tenancyv1alpha1.WorkspaceRestore
	volume tenancyv1alpha1.RestoreVolume
	// name is the mover-namespace claim's and pod's, and the restored volume's label value.
	name string
}

func newRestoreRef(run *tenancyv1alpha1.WorkspaceRestore, volume tenancyv1alpha1.RestoreVolume) restoreRef {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s/%s/%s", run.Namespace, run.Name, volume.Claim)
	return restoreRef{run: run, volume: volume, name: "wsr-" + strconv.FormatUint(h.Sum64(), 36)}
}

// labels mark every object of a restored volume: managed by the operator, the workspace,
// the run, and which of its volumes (by name: a claim's name may be too long for a label).
func (v restoreRef) labels() map[string]string {
	return map[string]string{
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
		tenancyv1alpha1.WorkspaceLabel:    v.run.Spec.Workspace,
		tenancyv1alpha1.RestoreRunLabel:   v.run.Name,
		tenancyv1alpha1.RestoreClaimLabel: v.name,
	}
}

func (v restoreRef) ownedByRun() []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion:         tenancyv1alpha1.GroupVersion.String(),
		Kind:               "WorkspaceRestore",
		Name:               v.run.Name,
		UID:                v.run.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}}
}

// desiredWorkspaceClaim is the claim the workload will use, created at once so that
// nothing else takes its name, but selecting the restored volume by label so that it binds
// to nothing else, and only once the data is in.
func desiredWorkspaceClaim(v restoreRef) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: v.volume.Claim, Namespace: v.run.Status.Namespace, Labels: v.labels()},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(v.run.Status.StorageClassName),
			Selector:         &metav1.LabelSelector{MatchLabels: map[string]string{RestoredVolumeLabel: v.name}},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: v.volume.Storage}},
		},
	}
}

// desiredRestoreClaim is the new volume the mover writes, on the workspace's encrypted
// class; with the class's WaitForFirstConsumer binding it is created where the mover pod
// is scheduled, and the workload later follows it there.
func desiredRestoreClaim(v restoreRef, moverNamespace string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: moverNamespace, Labels: v.labels(), OwnerReferences: v.ownedByRun()},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(v.run.Status.StorageClassName),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: v.volume.Storage}},
		},
	}
}

// desiredRestorePod runs the agent's restore into the new volume, as root with what it
// takes to give every file back its owner, mode and extended attributes, and nothing to
// read other files (the volume is new and empty).
func desiredRestorePod(v restoreRef, moverNamespace string, s moverSettings) *corev1.Pod {
	args := []string{
		"restore", "--workspace", v.run.Spec.Workspace, "--backup", v.volume.BackupID,
		"--source", v.volume.Source, "--target", dataDir, "--log-format", "json",
	}
	for _, l := range v.run.Status.Locations {
		args = append(args, "--location", fmt.Sprintf("%s=%s,%s", l.Region, l.Bucket, l.KeyAlias))
	}
	if s.S3PathStyle {
		args = append(args, "--aws-s3-path-style")
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: moverNamespace, Labels: v.labels(), OwnerReferences: v.ownedByRun()},
		Spec: corev1.PodSpec{
			ServiceAccountName:            s.ServiceAccount,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(s.Timeout),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
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
					Name: "data", MountPath: dataDir + "/" + v.volume.Source,
				}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities: &corev1.Capabilities{
						Drop: []corev1.Capability{"ALL"},
						// Owners, modes (of files it no longer owns; FSETID keeps setgid
						// bits chmod would clear) and security.capability xattrs.
						Add: []corev1.Capability{"CHOWN", "FOWNER", "FSETID", "DAC_OVERRIDE", "SETFCAP"},
					},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{{
				Name: "data",
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: v.name,
				}},
			}},
		},
	}
}

// retained is the restored volume held at Retain, its own policy kept in an annotation, so
// that deleting the mover's claim releases the volume instead of deleting it.
func retained(pv *corev1.PersistentVolume) *corev1.PersistentVolume {
	out := pv.DeepCopy()
	if out.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRetain {
		return out
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[ReclaimPolicyAnnotation] = string(out.Spec.PersistentVolumeReclaimPolicy)
	out.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	return out
}

// handedOver is the released volume pre-bound to the workspace's claim, labelled as the
// claim selects, as Velero rebinds a restored volume.
func handedOver(pv *corev1.PersistentVolume, v restoreRef, claim *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	out := pv.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[RestoredVolumeLabel] = v.name
	out.Spec.ClaimRef = &corev1.ObjectReference{
		Kind:            "PersistentVolumeClaim",
		APIVersion:      "v1",
		Namespace:       claim.Namespace,
		Name:            claim.Name,
		UID:             claim.UID,
		ResourceVersion: claim.ResourceVersion,
	}
	return out
}

// reclaimRestored gives the volume back its own reclaim policy, so that it is deleted with
// its claim like any other volume of the workspace.
func reclaimRestored(pv *corev1.PersistentVolume) *corev1.PersistentVolume {
	out := pv.DeepCopy()
	policy, ok := out.Annotations[ReclaimPolicyAnnotation]
	if !ok {
		return out
	}
	out.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimPolicy(policy)
	delete(out.Annotations, ReclaimPolicyAnnotation)
	return out
}
