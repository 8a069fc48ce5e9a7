package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestoreRunFinalizer keeps a WorkspaceRestore until every pod and temporary claim it
// created is gone, and no volume it wrote is left retained but unbound.
const RestoreRunFinalizer = "tenancy.workspace-operator.io/restore-run"

// RestoreRunLabel names the WorkspaceRestore an object was created for; RestoreClaimLabel
// which of its volumes (by the name of the mover's claim and pod for it: a claim's own name
// may be too long for a label). The restored PersistentVolume keeps both, so that a restart
// finds it once the mover's claim is gone.
const (
	RestoreRunLabel   = "tenancy.workspace-operator.io/restore-run"
	RestoreClaimLabel = "tenancy.workspace-operator.io/restore-claim"
)

// WorkspaceRestoreSpec says which volumes of a workspace to restore, from which backups,
// into which new claims. The operator creates it for spec.restore and for an undelete.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a WorkspaceRestore's spec is immutable: create another run"
type WorkspaceRestoreSpec struct {
	// Workspace is the name of the Workspace whose volumes are restored.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Workspace string `json:"workspace"`

	// Volumes to restore, each into a claim that must not exist yet.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=claim
	Volumes []RestoreVolume `json:"volumes"`
}

// RestoreVolume is one volume to restore.
type RestoreVolume struct {
	// Source is the claim the volume was backed up from: the source's name in the backup.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`
	// Claim is the PersistentVolumeClaim to restore into, in the workspace's namespace.
	// The operator creates it; it binds only once the restored data is in.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Claim string `json:"claim"`
	// BackupID is the backup to restore: a backup run's ID (the volume's backup of that
	// run), a volume's own backup ID, or latest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	BackupID string `json:"backupID"`
	// Storage is the size of the new volume.
	Storage resource.Quantity `json:"storage"`
}

// RestoreRunPhase is where a restore run is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;PartiallyFailed;Failed
type RestoreRunPhase string

// Phases of a restore run. A run is finished once every volume is bound or cleaned up.
const (
	RestoreRunPending         RestoreRunPhase = "Pending"
	RestoreRunRunning         RestoreRunPhase = "Running"
	RestoreRunSucceeded       RestoreRunPhase = "Succeeded"
	RestoreRunPartiallyFailed RestoreRunPhase = "PartiallyFailed"
	RestoreRunFailed          RestoreRunPhase = "Failed"
)

// VolumeRestoreStatus is the restore of one volume.
type VolumeRestoreStatus struct {
	// Claim is the PersistentVolumeClaim restored into.
	Claim string `json:"claim"`
	// Phase of this volume's restore (the phases of a volume's backup).
	Phase VolumeBackupPhase `json:"phase"`
	// Step is the last step confirmed, for humans.
	// +optional
	Step string `json:"step,omitempty"`
	// VolumeName is the PersistentVolume the data was restored into.
	// +optional
	VolumeName string `json:"volumeName,omitempty"`
	// StartTime is when the volume's restore started; CompletionTime when its claim bound
	// or it failed.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Message says why the volume failed, or what it waits for.
	// +optional
	Message string `json:"message,omitempty"`
}

// WorkspaceRestoreStatus is the progress and outcome of one restore run.
type WorkspaceRestoreStatus struct {
	// Phase of the run.
	// +optional
	Phase RestoreRunPhase `json:"phase,omitempty"`
	// Namespace, StorageClassName and Locations are the workspace's as resolved when the
	// run started, and kept for the rest of the run.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=region
	Locations []BackupRunLocation `json:"locations,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Volumes are the run's volumes, in the order of the spec.
	// +optional
	// +listType=map
	// +listMapKey=claim
	Volumes []VolumeRestoreStatus `json:"volumes,omitempty"`
	// Conditions: Complete.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WorkspaceRestore is one restore run of a workspace: each volume is restored by a mover
// pod into a new volume in the operator's mover namespace, and that volume is then bound
// to a new claim in the workspace's namespace, so that no workload sees it half-written.
// It lives in the mover namespace, out of the tenant's reach.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wsr,categories=workspace-operator
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkspaceRestore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkspaceRestoreSpec `json:"spec"`
	// +optional
	Status WorkspaceRestoreStatus `json:"status,omitempty"`
}

// WorkspaceRestoreList is a list of WorkspaceRestores.
// +kubebuilder:object:root=true
type WorkspaceRestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspaceRestore `json:"items"`
}
