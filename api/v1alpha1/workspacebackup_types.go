package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupRunFinalizer keeps a WorkspaceBackup until every snapshot, volume and pod it
// created is gone, so that deleting a run mid-way never strands a snapshot.
const BackupRunFinalizer = "tenancy.workspace-operator.io/backup-run"

// BackupRunLabel names the WorkspaceBackup an object was created for; BackupClaimLabel
// the claim it moves.
const (
	BackupRunLabel   = "tenancy.workspace-operator.io/backup-run"
	BackupClaimLabel = "tenancy.workspace-operator.io/backup-claim"
)

// WorkspaceBackupSpec names the workspace to back up. Everything else (its volumes,
// buckets, keys, retention) is resolved by the operator when the run starts, never taken
// from whoever asked for the run.
type WorkspaceBackupSpec struct {
	// Workspace is the name of the Workspace to back up.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.workspace is immutable"
	Workspace string `json:"workspace"`
}

// BackupRunPhase is where a backup run is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;PartiallyFailed;Failed
type BackupRunPhase string

// Phases of a backup run. A run is finished once every volume is cleaned up.
const (
	BackupRunPending         BackupRunPhase = "Pending"
	BackupRunRunning         BackupRunPhase = "Running"
	BackupRunSucceeded       BackupRunPhase = "Succeeded"
	BackupRunPartiallyFailed BackupRunPhase = "PartiallyFailed"
	BackupRunFailed          BackupRunPhase = "Failed"
)

// VolumeBackupPhase is where the backup of one volume is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type VolumeBackupPhase string

// Phases of one volume's backup: Pending waits for a mover slot.
const (
	VolumeBackupPending   VolumeBackupPhase = "Pending"
	VolumeBackupRunning   VolumeBackupPhase = "Running"
	VolumeBackupSucceeded VolumeBackupPhase = "Succeeded"
	VolumeBackupFailed    VolumeBackupPhase = "Failed"
)

// BackupRunLocation is one place the run writes every volume to.
type BackupRunLocation struct {
	// Region of the bucket and key.
	Region string `json:"region"`
	// Bucket receiving the backups.
	Bucket string `json:"bucket"`
	// KeyAlias is the workspace's KMS key in that region.
	KeyAlias string `json:"keyAlias"`
}

// VolumeBackupStatus is the backup of one PersistentVolumeClaim.
type VolumeBackupStatus struct {
	// Claim is the PersistentVolumeClaim in the workspace's namespace.
	Claim string `json:"claim"`
	// Phase of this volume's backup.
	Phase VolumeBackupPhase `json:"phase"`
	// Step is the last step confirmed, for humans: the operator confirms every step from
	// the live objects, not from this field.
	// +optional
	Step string `json:"step,omitempty"`
	// BackupID is the ID of this volume's backup in every location.
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// Bytes is the size of the uploaded archive.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// StartTime is when the volume got a mover slot and was snapshotted.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the volume's upload succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Message says why the volume failed, or what it waits for.
	// +optional
	Message string `json:"message,omitempty"`
}

// WorkspaceBackupStatus is the progress and outcome of one backup run.
type WorkspaceBackupStatus struct {
	// Phase of the run.
	// +optional
	Phase BackupRunPhase `json:"phase,omitempty"`
	// BackupID identifies the run; each volume's backup ID starts with it.
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// Namespace, StorageClassName, RetentionDays and Locations are the workspace's as
	// resolved when the run started, and kept for the rest of the run.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
	// +optional
	RetentionDays int32 `json:"retentionDays,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=region
	Locations []BackupRunLocation `json:"locations,omitempty"`
	// StartTime is when the run resolved its inputs; CompletionTime when its last volume
	// was cleaned up.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// FilesBucket is the workspace's file bucket, backed up with the volumes when its
	// spec.backup.includeFiles is set.
	// +optional
	FilesBucket string `json:"filesBucket,omitempty"`
	// Files is the backup of FilesBucket (its claim is empty).
	// +optional
	Files *VolumeBackupStatus `json:"files,omitempty"`
	// Volumes are the run's volumes, one per claim the namespace had when it started.
	// +optional
	// +listType=map
	// +listMapKey=claim
	Volumes []VolumeBackupStatus `json:"volumes,omitempty"`
	// Conditions: Complete.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of a WorkspaceBackup.
const (
	ConditionComplete = "Complete"
)

// WorkspaceBackup is one backup run of a workspace: each of its volumes is snapshotted,
// exposed in the operator's mover namespace and uploaded by a mover pod there. It lives
// in the mover namespace, out of the tenant's reach.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wsb,categories=workspace-operator
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.status.backupID`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkspaceBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkspaceBackupSpec `json:"spec"`
	// +optional
	Status WorkspaceBackupStatus `json:"status,omitempty"`
}

// WorkspaceBackupList is a list of WorkspaceBackups.
// +kubebuilder:object:root=true
type WorkspaceBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspaceBackup `json:"items"`
}
