package controllers

import (
	"context"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// clusterLeftovers looks, from live reads, for what of the workspace the cluster still
// holds once its namespace is gone: snapshot contents (a snapshot the namespace's deletion
// did not take with it, or a data mover copy), volumes, and data mover runs. The operator's
// own are deleted and waited for; anything else is named in the evidence, as data that the
// deletion of the workspace's keys has made unreadable. Runs are the deleted workspace's
// when they were created before its deletion: a later workspace of the same name has its
// own. It reports whether the purge may go on, and the evidence lines.
func (r *WorkspacePurgeReconciler) clusterLeftovers(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge) (bool, []string, error) {
	ours := func(obj client.Object) bool {
		l := obj.GetLabels()
		return l[tenancyv1alpha1.ManagedByLabel] == tenancyv1alpha1.ManagedByValue && l[tenancyv1alpha1.WorkspaceLabel] == purge.Spec.Workspace
	}
	var pending, foreign []string
	deleteOurs := func(obj client.Object, what string) error {
		pending = append(pending, what)
		if obj.GetDeletionTimestamp() != nil {
			return nil
		}
		if err := r.Delete(ctx, obj); err != nil {
			return client.IgnoreNotFound(err)
		}
		r.Recorder.Eventf(purge, nil, corev1.EventTypeNormal, "LeftoverDeleted", "Purge", "deleted %s of workspace %s", what, purge.Spec.Workspace)
		return nil
	}

	var contents snapshotv1.VolumeSnapshotContentList
	if err := r.APIReader.List(ctx, &contents); err != nil && !meta.IsNoMatchError(err) {
		return false, nil, fmt.Errorf("list VolumeSnapshotContents: %w", err)
	}
	for i := range contents.Items {
		c := &contents.Items[i]
		what := "VolumeSnapshotContent " + c.Name
		switch {
		case ours(c):
			if err := deleteOurs(c, what); err != nil {
				return false, nil, err
			}
		case c.Spec.VolumeSnapshotRef.Namespace == purge.Spec.Namespace:
			foreign = append(foreign, what)
		}
	}

	var volumes corev1.PersistentVolumeList
	if err := r.APIReader.List(ctx, &volumes); err != nil {
		return false, nil, fmt.Errorf("list PersistentVolumes: %w", err)
	}
	for _, pv := range volumes.Items {
		if ref := pv.Spec.ClaimRef; (ref != nil && ref.Namespace == purge.Spec.Namespace) || ours(&pv) {
			foreign = append(foreign, "PersistentVolume "+pv.Name)
		}
	}

	var backups tenancyv1alpha1.WorkspaceBackupList
	if err := r.APIReader.List(ctx, &backups); err != nil {
		return false, nil, fmt.Errorf("list WorkspaceBackups: %w", err)
	}
	for i := range backups.Items {
		if b := &backups.Items[i]; b.Spec.Workspace == purge.Spec.Workspace && !b.CreationTimestamp.After(purge.Spec.DeletedAt.Time) {
			if err := deleteOurs(b, "WorkspaceBackup "+b.Namespace+"/"+b.Name); err != nil {
				return false, nil, err
			}
		}
	}
	var restores tenancyv1alpha1.WorkspaceRestoreList
	if err := r.APIReader.List(ctx, &restores); err != nil {
		return false, nil, fmt.Errorf("list WorkspaceRestores: %w", err)
	}
	for i := range restores.Items {
		if rs := &restores.Items[i]; rs.Spec.Workspace == purge.Spec.Workspace && !rs.CreationTimestamp.After(purge.Spec.DeletedAt.Time) {
			if err := deleteOurs(rs, "WorkspaceRestore "+rs.Namespace+"/"+rs.Name); err != nil {
				return false, nil, err
			}
		}
	}

	if len(pending) > 0 {
		setPurgeCondition(purge, metav1.ConditionFalse, "DeletingClusterObjects", fmt.Sprintf("waiting for %d objects of the workspace to be deleted: %v", len(pending), pending))
		return false, nil, nil
	}
	evidence := []string{fmt.Sprintf("cluster: no VolumeSnapshotContent, PersistentVolume or data mover run of workspace %s left by the operator", purge.Spec.Workspace)}
	for _, f := range foreign {
		evidence = append(evidence, fmt.Sprintf("cluster: %s of namespace %s remains, not the operator's to delete; its data is encrypted under the workspace's keys", f, purge.Spec.Namespace))
	}
	return true, evidence, nil
}
