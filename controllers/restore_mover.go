package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// restoreRunName names a WorkspaceRestore after the workspace and the request, so that a
// repeated request finds its run and a new one starts another.
func restoreRunName(ws *tenancyv1alpha1.Workspace, request string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(string(ws.UID) + "/" + request))
	name := ws.Name
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s-restore-%08x", strings.TrimRight(name, "-."), h.Sum32())
}

// desiredRestoreRun asks the data mover to restore volumes of the workspace. The Workspace
// owns it: it is the history of the workspace's restores and goes with it.
func desiredRestoreRun(ws *tenancyv1alpha1.Workspace, moverNamespace, request string, volumes []tenancyv1alpha1.RestoreVolume) *tenancyv1alpha1.WorkspaceRestore {
	return &tenancyv1alpha1.WorkspaceRestore{
		ObjectMeta: metav1.ObjectMeta{
			Name:      restoreRunName(ws, request),
			Namespace: moverNamespace,
			Labels:    managedLabels(ws),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "Workspace",
				Name: ws.Name, UID: ws.UID, BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: tenancyv1alpha1.WorkspaceRestoreSpec{Workspace: ws.Name, Volumes: volumes},
	}
}

// undeleteVolumes are the volumes a purge record lists, each restored under its own name
// from its own last backup. A record written before the data mover has only the
// workspace's last backup, which held every volume; in a record written with it, a volume
// without a backup of its own was never backed up, and is returned among the skipped.
func undeleteVolumes(purge *tenancyv1alpha1.WorkspacePurge) (volumes []tenancyv1alpha1.RestoreVolume, skipped []string) {
	perVolume := slices.ContainsFunc(purge.Spec.Volumes, func(v tenancyv1alpha1.PurgeVolume) bool { return v.BackupID != "" })
	for _, v := range purge.Spec.Volumes {
		id := v.BackupID
		if !perVolume {
			id = purge.Spec.LastBackupID
		}
		if id == "" {
			skipped = append(skipped, v.Name)
			continue
		}
		size, err := resource.ParseQuantity(v.Storage)
		if err != nil || size.IsZero() {
			size = resource.MustParse("1Gi")
		}
		volumes = append(volumes, tenancyv1alpha1.RestoreVolume{Source: v.Name, Claim: v.Name, BackupID: id, Storage: size})
	}
	return volumes, skipped
}

// requestedVolumes resolves spec.restore into volumes to restore: each into its target
// claim (its own name by default) at the target's size, or the size of the live claim of
// its name. A volume whose size cannot be known stalls, naming the field to set.
func requestedVolumes(restore *tenancyv1alpha1.RestoreSpec, liveSize func(claim string) (resource.Quantity, bool)) ([]tenancyv1alpha1.RestoreVolume, error) {
	var out []tenancyv1alpha1.RestoreVolume
	for _, name := range restore.Volumes {
		v := tenancyv1alpha1.RestoreVolume{Source: name, Claim: name, BackupID: restore.BackupID}
		var size *resource.Quantity
		for _, t := range restore.Targets {
			if t.Volume == name {
				if t.Claim != "" {
					v.Claim = t.Claim
				}
				size = t.Storage
			}
		}
		if size == nil {
			if live, ok := liveSize(name); ok {
				size = &live
			}
		}
		if size == nil || size.IsZero() {
			return nil, stalled("RestoreSizeUnknown",
				"volume %s has no claim to take its size from: set spec.restore.targets[{volume: %s, storage: <size>}]", name, name)
		}
		v.Storage = *size
		out = append(out, v)
	}
	return out, nil
}

// runMoverRestore starts the data mover's restore run for a request and reports its
// progress in the Restored condition.
func (r *WorkspaceReconciler) runMoverRestore(ctx context.Context, ws *tenancyv1alpha1.Workspace, request, origin string, volumes []tenancyv1alpha1.RestoreVolume) error {
	run := desiredRestoreRun(ws, r.Config.Backup.MoverNamespace, request, volumes)
	live := &tenancyv1alpha1.WorkspaceRestore{}
	err := r.Get(ctx, client.ObjectKeyFromObject(run), live)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, run); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create WorkspaceRestore %s: %w", client.ObjectKeyFromObject(run), err)
		}
		r.Recorder.Eventf(ws, nil, corev1.EventTypeNormal, "RestoreStarted", "Restore",
			"WorkspaceRestore %s/%s restores %d volumes (%s)", run.Namespace, run.Name, len(volumes), origin)
		live = run
	case err != nil:
		return fmt.Errorf("read WorkspaceRestore %s: %w", client.ObjectKeyFromObject(run), err)
	}
	describe := fmt.Sprintf("kubectl describe workspacerestore -n %s %s", live.Namespace, live.Name)
	complete := meta.FindStatusCondition(live.Status.Conditions, tenancyv1alpha1.ConditionComplete)
	switch live.Status.Phase {
	case tenancyv1alpha1.RestoreRunSucceeded:
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionTrue, "Restored",
			fmt.Sprintf("%d volumes restored by WorkspaceRestore %s (%s)", len(volumes), live.Name, origin))
	case tenancyv1alpha1.RestoreRunFailed, tenancyv1alpha1.RestoreRunPartiallyFailed:
		message := "no reason given"
		if complete != nil {
			message = complete.Message
		}
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionFalse, "RestoreFailed",
			fmt.Sprintf("WorkspaceRestore %s (%s): %s; %s, then delete it to retry", live.Name, origin, message, describe))
	default:
		message := fmt.Sprintf("WorkspaceRestore %s restores %d volumes (%s); %s", live.Name, len(volumes), origin, describe)
		if complete != nil && complete.Reason == "WorkspaceNotReady" {
			message = complete.Message
		}
		setCondition(ws, tenancyv1alpha1.ConditionRestored, metav1.ConditionFalse, "Restoring", message)
	}
	return nil
}

// liveClaimSize reads the size of a claim of the workspace's namespace, if there is one.
func (r *WorkspaceReconciler) liveClaimSize(ctx context.Context, namespace string) func(string) (resource.Quantity, bool) {
	return func(name string) (resource.Quantity, bool) {
		claim := &corev1.PersistentVolumeClaim{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, claim); err != nil {
			return resource.Quantity{}, false
		}
		size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
		return size, ok
	}
}
