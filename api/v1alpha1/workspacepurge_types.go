package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PurgeFinalizer keeps a WorkspacePurge, and with it the promise to destroy the data it
// lists, until that data has been destroyed.
const PurgeFinalizer = "tenancy.workspace-operator.io/purge"

// WorkspacePurgeSpec records what a deleted workspace left behind and when it must be
// destroyed. The operator writes it when the workspace is deleted; nobody edits it.
// +kubebuilder:validation:XValidation:rule="self == oldSelf || oldSelf.purgeAfter == self.purgeAfter || self.purgeAfter > oldSelf.purgeAfter",message="spec.purgeAfter can only move later"
type WorkspacePurgeSpec struct {
	// Workspace is the name of the deleted Workspace.
	Workspace string `json:"workspace"`
	// WorkspaceUID is the UID of the deleted Workspace.
	WorkspaceUID string `json:"workspaceUID"`
	// Namespace the workspace's data lived in.
	Namespace string `json:"namespace"`
	// DeletedAt is when the Workspace was deleted.
	DeletedAt metav1.Time `json:"deletedAt"`
	// PurgeAfter is when every remaining copy of the data is destroyed: the deletion time
	// plus the purge window, or the latest key deletion date if that is later.
	PurgeAfter metav1.Time `json:"purgeAfter"`
	// Keys are the workspace's KMS keys, scheduled for deletion.
	// +optional
	// +listType=atomic
	Keys []PurgeKey `json:"keys,omitempty"`
	// Buckets are the workspace's file and backup buckets, closed to writes until purged.
	// +optional
	// +listType=atomic
	Buckets []PurgeBucket `json:"buckets,omitempty"`
	// Volumes are the workspace's PersistentVolumeClaims at deletion, so that an undelete
	// can recreate them before restoring their data.
	// +optional
	// +listType=atomic
	Volumes []PurgeVolume `json:"volumes,omitempty"`
	// LastBackupID is the last successful backup, which an undelete restores.
	// +optional
	LastBackupID string `json:"lastBackupID,omitempty"`
}

// PurgeKey is a workspace key and when KMS deletes it.
type PurgeKey struct {
	Region string `json:"region"`
	ARN    string `json:"arn"`
	Alias  string `json:"alias"`
	// DeletionDate is when KMS deletes the key, once scheduled.
	// +optional
	DeletionDate *metav1.Time `json:"deletionDate,omitempty"`
}

// PurgeBucket is a workspace bucket.
type PurgeBucket struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	// Kind is Files or Backups.
	Kind string `json:"kind"`
}

// PurgeVolume is a workspace volume at deletion.
type PurgeVolume struct {
	Name    string `json:"name"`
	Storage string `json:"storage"`
	// BackupID is the volume's last successful backup by the data mover, which an
	// undelete restores it from; without it, LastBackupID.
	// +optional
	BackupID string `json:"backupID,omitempty"`
}

// PurgeState is where a WorkspacePurge stands.
// +kubebuilder:validation:Enum=Deleting;Pending;Purging;Purged;Restored
type PurgeState string

// The states of a WorkspacePurge.
const (
	// PurgeDeleting: the workspace is being deleted; the record lists what it had.
	PurgeDeleting PurgeState = "Deleting"
	// PurgePending: deleted; the data is recoverable until purgeAfter.
	PurgePending PurgeState = "Pending"
	// PurgePurging: purgeAfter has passed and the data is being destroyed.
	PurgePurging PurgeState = "Purging"
	// PurgePurged: every copy is destroyed; the record is kept for audit.
	PurgePurged PurgeState = "Purged"
	// PurgeRestored: the workspace was undeleted before purgeAfter.
	PurgeRestored PurgeState = "Restored"
)

// Condition types of a WorkspacePurge.
const (
	ConditionPurged = "Purged"
)

// WorkspacePurgeStatus is the progress of a purge, with the evidence of it.
type WorkspacePurgeStatus struct {
	// State of the purge.
	// +optional
	State PurgeState `json:"state,omitempty"`
	// TimeRemaining until purgeAfter, refreshed hourly, for kubectl get.
	// +optional
	TimeRemaining string `json:"timeRemaining,omitempty"`
	// PurgedAt is when the purge was confirmed.
	// +optional
	PurgedAt *metav1.Time `json:"purgedAt,omitempty"`
	// RestoredBy names the Workspace that undeleted the data.
	// +optional
	RestoredBy string `json:"restoredBy,omitempty"`
	// Evidence lists what the purge confirmed, one line per key and bucket.
	// +optional
	// +listType=atomic
	Evidence []string `json:"evidence,omitempty"`
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Purged.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WorkspacePurge is the record of a deleted workspace: what it left, when it is destroyed,
// and the evidence that it was.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=wsp,categories=workspace-operator
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Purge After",type=string,JSONPath=`.spec.purgeAfter`
// +kubebuilder:printcolumn:name="Remaining",type=string,JSONPath=`.status.timeRemaining`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkspacePurge struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkspacePurgeSpec `json:"spec"`
	// +kubebuilder:default={observedGeneration: 0}
	Status WorkspacePurgeStatus `json:"status,omitempty"`
}

// WorkspacePurgeList is a list of WorkspacePurges.
// +kubebuilder:object:root=true
type WorkspacePurgeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspacePurge `json:"items"`
}
