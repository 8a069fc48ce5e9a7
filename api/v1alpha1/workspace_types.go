package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkspaceFinalizer holds a Workspace until its namespace, and with it the tenant's data,
// is confirmed gone.
const WorkspaceFinalizer = "tenancy.workspace-operator.io/finalizer"

// Labels the operator puts on every object it manages. The cache and the watches select on
// them, so objects without them are invisible to the operator.
const (
	// ManagedByLabel marks an object as managed by workspace-operator.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel.
	ManagedByValue = "workspace-operator"
	// WorkspaceLabel names the Workspace an object belongs to.
	WorkspaceLabel = "tenancy.workspace-operator.io/workspace"
)

// ReconcileRequestAnnotation asks for a full reconcile now, AWS read-back included, when
// its value changes: Flux's convention, which `flux reconcile` and Argo CD users set with
// `kubectl annotate --overwrite workspace/<name> reconcile.fluxcd.io/requestedAt="$(date +%s)"`.
// The value handled last is recorded in status.lastHandledReconcileAt.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// AdoptAnnotation on a namespace that exists before its Workspace (Argo CD's
// CreateNamespace=true, helm --create-namespace) names the Workspace allowed to take it
// over. Without it the operator refuses the namespace with NamespaceConflict.
const AdoptAnnotation = "tenancy.workspace-operator.io/adopt"

// WorkspaceSpec is the desired state of a customer's workspace.
// +kubebuilder:validation:XValidation:rule="has(self.__namespace__) == has(oldSelf.__namespace__)",message="spec.namespace is immutable: the tenant's data lives there; create a new Workspace to move it"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.restoreFrom) || !has(self.restoreFrom)",message="spec.restoreFrom can only be set when the Workspace is created: it undeletes a deleted workspace under its old name; to restore volumes of a live workspace use spec.restore"
type WorkspaceSpec struct {
	// Suspend tells the operator to leave the workspace alone: no drift repair, no AWS
	// calls, no change to its backup schedule (backups already scheduled keep running).
	// Deleting a suspended Workspace still deletes it and starts the purge of its data.
	// Set it back to false (or remove it) to resume.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Namespace is the namespace that holds the workspace's workloads and data.
	// Defaults to the operator's prefix (ws-) followed by the Workspace name. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.namespace is immutable: the tenant's data lives there; create a new Workspace to move it"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.namespace must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="!(self in ['default', 'kube-system', 'kube-public', 'kube-node-lease']) && !self.startsWith('kube-')",message="spec.namespace must not be a Kubernetes system namespace"
	Namespace string `json:"namespace,omitempty"`

	// Owners administer the workspace: they may run workloads in its namespace but cannot
	// change the firewall, quotas or access bindings the operator manages.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Owners []Owner `json:"owners"`

	// Quota caps the compute and storage the workspace may use.
	// +optional
	// +kubebuilder:default={tier: small}
	Quota QuotaSpec `json:"quota,omitempty"`

	// Network opens the workspace's firewall beyond its default-deny policy.
	// +optional
	Network NetworkSpec `json:"network,omitempty"`

	// TLS requests an HTTPS certificate from cert-manager for the workspace's hosts.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// Backup schedules the workspace's daily encrypted backups.
	// +optional
	Backup BackupSpec `json:"backup,omitempty"`

	// DeletionProtection makes the API server refuse to delete the Workspace. Unset, the
	// operator's default applies (the workspace-operator-policy ConfigMap).
	// +optional
	DeletionProtection *bool `json:"deletionProtection,omitempty"`

	// RestoreFrom undeletes a workspace: it names the WorkspacePurge record its deletion
	// left, and must be set to reuse the name of a workspace whose data is still pending
	// purge. The keys are re-enabled, the buckets reopened and the volumes restored from the
	// last backup. Refused once the record's purgeAfter has passed. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.restoreFrom is immutable"
	RestoreFrom string `json:"restoreFrom,omitempty"`

	// Restore restores volumes of this workspace from one of its backups, once per distinct
	// request. With the operator's data mover, each volume is restored into a new claim
	// (of its own name, which must not exist, or another one named in targets) that binds
	// only once its data is in. Without it, the volumes are overwritten in place: stop the
	// workloads using them first.
	// +optional
	Restore *RestoreSpec `json:"restore,omitempty"`
}

// RestoreSpec names a backup and the volumes to restore from it.
// +kubebuilder:validation:XValidation:rule="!has(self.targets) || self.targets.all(t, t.volume in self.volumes)",message="spec.restore.targets may only name volumes listed in spec.restore.volumes"
type RestoreSpec struct {
	// BackupID is the backup to restore (status.backup.lastBackupID, or one listed by
	// workspace-operator restore --list).
	// +kubebuilder:validation:Pattern=`^[0-9]{8}T[0-9]{6}Z$`
	BackupID string `json:"backupID"`

	// Volumes are the PersistentVolumeClaims to restore, by name.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	Volumes []string `json:"volumes"`

	// Targets restore volumes under another claim name or at a given size (with the data
	// mover only): to restore a volume beside the live one, or one whose claim was deleted.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=volume
	Targets []RestoreTarget `json:"targets,omitempty"`
}

// RestoreTarget is where one volume of spec.restore.volumes is restored to.
type RestoreTarget struct {
	// Volume is the backed-up claim, as listed in spec.restore.volumes.
	// +kubebuilder:validation:MaxLength=253
	Volume string `json:"volume"`
	// Claim is the new claim to restore into; defaults to the volume's own name. It must
	// not exist.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Claim string `json:"claim,omitempty"`
	// Storage is the size of the new volume; defaults to the size of the live claim named
	// like the volume, and is required when there is none.
	// +optional
	Storage *resource.Quantity `json:"storage,omitempty"`
}

// BackupSpec schedules a workspace's backups: its volumes (and optionally its uploaded
// files) archived, encrypted with the workspace keys and stored in every region.
type BackupSpec struct {
	// Schedule is a cron schedule in UTC. Defaults to daily, at a minute spread by the
	// workspace's name so that workspaces do not all start at once.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(?i:[[:space:]]*(([*?]|0*([0-9]|[1-5][0-9])(-0*([0-9]|[1-5][0-9]))?)(/0*[1-9][0-9]*)?(,([*?]|0*([0-9]|[1-5][0-9])(-0*([0-9]|[1-5][0-9]))?)(/0*[1-9][0-9]*)?)*)[[:space:]]+(([*?]|0*([0-9]|1[0-9]|2[0-3])(-0*([0-9]|1[0-9]|2[0-3]))?)(/0*[1-9][0-9]*)?(,([*?]|0*([0-9]|1[0-9]|2[0-3])(-0*([0-9]|1[0-9]|2[0-3]))?)(/0*[1-9][0-9]*)?)*)[[:space:]]+(([*?]|0*([1-9]|[12][0-9]|3[01])(-0*([1-9]|[12][0-9]|3[01]))?)(/0*[1-9][0-9]*)?(,([*?]|0*([1-9]|[12][0-9]|3[01])(-0*([1-9]|[12][0-9]|3[01]))?)(/0*[1-9][0-9]*)?)*)[[:space:]]+(([*?]|(0*([1-9]|1[0-2])|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0*([1-9]|1[0-2])|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/0*[1-9][0-9]*)?(,([*?]|(0*([1-9]|1[0-2])|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)(-(0*([1-9]|1[0-2])|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))?)(/0*[1-9][0-9]*)?)*)[[:space:]]+(([*?]|(0*[0-6]|sun|mon|tue|wed|thu|fri|sat)(-(0*[0-6]|sun|mon|tue|wed|thu|fri|sat))?)(/0*[1-9][0-9]*)?(,([*?]|(0*[0-6]|sun|mon|tue|wed|thu|fri|sat)(-(0*[0-6]|sun|mon|tue|wed|thu|fri|sat))?)(/0*[1-9][0-9]*)?)*)[[:space:]]*)$|^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$|^@every ([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="spec.backup.schedule must be a cron schedule of five fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-6 or sun-sat), such as '30 2 * * *', or @yearly, @monthly, @weekly, @daily, @hourly or '@every <duration>'"
	// +kubebuilder:validation:XValidation:rule="self.findAll('[0-9]+-[0-9]+').all(r, int(r.split('-')[0]) <= int(r.split('-')[1]))",message="spec.backup.schedule has a range whose start is after its end, such as 5-1; write the smaller number first"
	Schedule string `json:"schedule,omitempty"`

	// RetentionDays is how long backups are kept. It may lower, never raise, the
	// operator's policy maximum (7 days).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=30
	RetentionDays int32 `json:"retentionDays,omitempty"`

	// IncludeFiles also archives the workspace's uploaded files from its bucket.
	// +optional
	IncludeFiles bool `json:"includeFiles,omitempty"`

	// PreBackupHook runs before each backup with the workspace's volumes mounted, e.g. to
	// dump a database into /data/hook, which is backed up too. Not with the operator's data
	// mover, which snapshots each volume: there, an application pod asks for a command to
	// run in it before its volumes' snapshots with the pre.hook.backup.tenancy.workspace-operator.io/*
	// annotations.
	// +optional
	PreBackupHook *BackupHook `json:"preBackupHook,omitempty"`

	// RequestedAt asks for a backup now, besides the schedule: any new value (a time, by
	// convention) starts one, once. status.backup.lastHandledRequest says it was handled.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RequestedAt string `json:"requestedAt,omitempty"`
}

// BackupHook is a container run before a backup.
type BackupHook struct {
	// Image of the hook container.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`

	// Command run in the image.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Command []string `json:"command"`
}

// OwnerKind is the kind of subject an Owner is.
// +kubebuilder:validation:Enum=User;Group;ServiceAccount
type OwnerKind string

// The kinds of Owner, as in rbacv1.Subject.
const (
	UserOwner           OwnerKind = "User"
	GroupOwner          OwnerKind = "Group"
	ServiceAccountOwner OwnerKind = "ServiceAccount"
)

// Owner is a user, group or service account that administers a workspace.
// +kubebuilder:validation:XValidation:rule="self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)",message="owners[].namespace is required for a ServiceAccount and not allowed for a User or Group"
type Owner struct {
	// Kind of the subject.
	Kind OwnerKind `json:"kind"`

	// Name of the user, group or service account, as the API server authenticates it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of a ServiceAccount owner.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// QuotaTier names a built-in set of limits.
// +kubebuilder:validation:Enum=small;medium;large
type QuotaTier string

// The built-in quota tiers.
const (
	SmallTier  QuotaTier = "small"
	MediumTier QuotaTier = "medium"
	LargeTier  QuotaTier = "large"
)

// QuotaSpec selects a named tier or explicit limits, never both; neither is the small tier.
// (Go clients send an empty quota object for a Workspace that sets none, which the CRD's
// default does not replace, so empty must be valid.)
// +kubebuilder:validation:XValidation:rule="!(has(self.tier) && has(self.limits))",message="set only one of spec.quota.tier or spec.quota.limits"
type QuotaSpec struct {
	// Tier is a named set of limits: small, medium or large.
	// +optional
	Tier QuotaTier `json:"tier,omitempty"`

	// Limits are explicit limits, for workspaces that fit no tier.
	// +optional
	Limits *QuotaLimits `json:"limits,omitempty"`
}

// QuotaLimits are the totals a workspace's namespace may request.
type QuotaLimits struct {
	// CPU is the total CPU the workspace's pods may request and be limited to.
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('0'))",message="spec.quota.limits.cpu must be greater than zero"
	CPU resource.Quantity `json:"cpu"`

	// Memory is the total memory the workspace's pods may request and be limited to.
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('0'))",message="spec.quota.limits.memory must be greater than zero"
	Memory resource.Quantity `json:"memory"`

	// Storage is the total size of the workspace's persistent volume claims.
	Storage resource.Quantity `json:"storage"`

	// Pods is the most pods the workspace may run at once.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Pods int32 `json:"pods"`
}

// NetworkSpec opens the workspace's firewall. Everything not allowed here, or by the
// operator's fixed rules (traffic inside the namespace and DNS), is denied.
type NetworkSpec struct {
	// IngressFromNamespaces may send traffic into the workspace. Defaults to the ingress
	// controller's namespace from the operator's configuration.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	IngressFromNamespaces []string `json:"ingressFromNamespaces,omitempty"`

	// Egress allows traffic out of the workspace to these networks. The cloud metadata
	// service is excluded from every rule.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Egress []EgressRule `json:"egress,omitempty"`
}

// EgressRule allows traffic to a network on some ports.
type EgressRule struct {
	// CIDR is the destination network, e.g. 10.20.0.0/16 or 2001:db8::/32.
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="spec.network.egress[].cidr must be a CIDR such as 10.0.0.0/16"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || !(cidr(self).ip() == ip('169.254.169.254') && cidr(self).prefixLength() == 32) && !(cidr(self).ip() == ip('fd00:ec2::254') && cidr(self).prefixLength() == 128)",message="spec.network.egress[].cidr must not be the cloud metadata address: workloads never get the node's cloud credentials"
	CIDR string `json:"cidr"`

	// Ports allowed to that network. Empty means every port.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Ports []EgressPort `json:"ports,omitempty"`
}

// Protocol is a transport protocol a NetworkPolicy can match.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP
type Protocol string

// EgressPort is a destination port.
type EgressPort struct {
	// Port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// Protocol of the port.
	// +optional
	// +kubebuilder:default=TCP
	Protocol Protocol `json:"protocol,omitempty"`
}

// TLSSpec requests a certificate for the workspace's public hosts.
type TLSSpec struct {
	// Hosts are the DNS names the certificate covers. A leading '*.' makes a wildcard.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^(\\\\*\\\\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')",message="spec.tls.hosts[] must be a lower-case fully qualified DNS name such as app.example.com or *.example.com"
	Hosts []string `json:"hosts"`

	// IssuerRef is the cert-manager issuer that signs the certificate. Defaults to the
	// operator's configured issuer.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerKind is the kind of a cert-manager issuer.
// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
type IssuerKind string

// IssuerReference names a cert-manager Issuer (in the workspace namespace) or ClusterIssuer.
type IssuerReference struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Kind of the issuer.
	// +optional
	// +kubebuilder:default=ClusterIssuer
	Kind IssuerKind `json:"kind,omitempty"`

	// Group of the issuer, for external issuers.
	// +optional
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
}

// WorkspacePhase summarises a Workspace's lifecycle for humans; tools should read the
// conditions.
// +kubebuilder:validation:Enum=Pending;Provisioning;Ready;Degraded;Failed;Suspended;Deleting
type WorkspacePhase string

// The phases of a Workspace.
const (
	// PhasePending: the operator has not acted on the Workspace yet.
	PhasePending WorkspacePhase = "Pending"
	// PhaseProvisioning: some concern is still converging and none has failed.
	PhaseProvisioning WorkspacePhase = "Provisioning"
	// PhaseReady: every concern is satisfied.
	PhaseReady WorkspacePhase = "Ready"
	// PhaseDegraded: a concern that was satisfied no longer is, and the operator is retrying.
	PhaseDegraded WorkspacePhase = "Degraded"
	// PhaseFailed: the operator cannot make progress until someone fixes the spec or the cluster.
	PhaseFailed WorkspacePhase = "Failed"
	// PhaseSuspended: spec.suspend is set and the operator leaves the workspace alone.
	PhaseSuspended WorkspacePhase = "Suspended"
	// PhaseDeleting: the Workspace is being deleted.
	PhaseDeleting WorkspacePhase = "Deleting"
)

// Condition types. Ready summarises the others; Reconciling and Stalled follow kstatus so
// that Flux and Argo CD read health correctly.
const (
	ConditionReady            = "Ready"
	ConditionReconciling      = "Reconciling"
	ConditionStalled          = "Stalled"
	ConditionNamespaceReady   = "NamespaceReady"
	ConditionNetworkIsolated  = "NetworkIsolated"
	ConditionQuotaApplied     = "QuotaApplied"
	ConditionAccessGranted    = "AccessGranted"
	ConditionCertificateReady = "CertificateReady"
	ConditionEncryptionReady  = "EncryptionReady"
	ConditionBucketReady      = "BucketReady"
	ConditionBackupsHealthy   = "BackupsHealthy"
	ConditionRestored         = "Restored"
	// ConditionSuspended is present, True, only while spec.suspend holds the operator back.
	ConditionSuspended = "Suspended"
)

// StorageClassLabel on a workspace namespace names the only StorageClass its
// PersistentVolumeClaims may use; the workspace-storage-class ValidatingAdmissionPolicy
// enforces it.
const StorageClassLabel = "tenancy.workspace-operator.io/storage-class"

// WorkspaceStatus is the observed state of a Workspace.
type WorkspaceStatus struct {
	// Phase is a one-word summary of the conditions, for humans.
	// +optional
	Phase WorkspacePhase `json:"phase,omitempty"`

	// Namespace the workspace's workloads and data live in.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// LastHandledReconcileAt is the value of the reconcile.fluxcd.io/requestedAt annotation
	// the operator last acted on with a full reconcile, AWS read-back included.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// Conditions: Ready, Reconciling, Stalled and one per concern.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Network lists the NetworkPolicies that make up the workspace's firewall.
	// +optional
	Network *NetworkStatus `json:"network,omitempty"`

	// Quota is the ResourceQuota in force.
	// +optional
	Quota *QuotaStatus `json:"quota,omitempty"`

	// Certificate is the workspace's HTTPS certificate.
	// +optional
	Certificate *CertificateStatus `json:"certificate,omitempty"`

	// Encryption describes the workspace's KMS keys and encrypted StorageClass.
	// +optional
	Encryption *EncryptionStatus `json:"encryption,omitempty"`

	// Storage describes the workspace's S3 buckets and workload identity.
	// +optional
	Storage *StorageStatus `json:"storage,omitempty"`

	// Backup describes the workspace's backups.
	// +optional
	Backup *BackupStatus `json:"backup,omitempty"`
}

// BackupStatus describes a workspace's backups.
type BackupStatus struct {
	// Schedule in force, in UTC.
	Schedule string `json:"schedule"`

	// RetentionDays in force.
	RetentionDays int32 `json:"retentionDays"`

	// LastSuccessfulBackup is when the last backup completed in every location.
	// +optional
	LastSuccessfulBackup *metav1.Time `json:"lastSuccessfulBackup,omitempty"`

	// LastBackupID identifies the last successful backup, for restores.
	// +optional
	LastBackupID string `json:"lastBackupID,omitempty"`

	// LastJob is the most recent backup Job the operator has seen finish.
	// +optional
	LastJob string `json:"lastJob,omitempty"`

	// LastFailure explains the most recent failed backup, until one succeeds.
	// +optional
	LastFailure string `json:"lastFailure,omitempty"`

	// LastHandledRequest is the spec.backup.requestedAt for which a backup Job was started.
	// +optional
	LastHandledRequest string `json:"lastHandledRequest,omitempty"`

	// Locations are the backup buckets and what each held after the last backup.
	// +optional
	// +listType=map
	// +listMapKey=region
	Locations []BackupLocationStatus `json:"locations,omitempty"`

	// Volumes are the volumes of the last backup run of the data mover, each with its last
	// successful backup.
	// +optional
	// +listType=map
	// +listMapKey=claim
	Volumes []VolumeLastBackup `json:"volumes,omitempty"`
}

// VolumeLastBackup is one volume's last successful backup by the data mover, and why the
// last run failed for it if it did.
type VolumeLastBackup struct {
	// Claim is the PersistentVolumeClaim.
	Claim string `json:"claim"`
	// BackupID of the volume's last successful backup, to restore it from.
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// Time the last successful backup completed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// Bytes uploaded by it, per location.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// Duration of it, from the snapshot to the end of the upload.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
	// LastFailure says why the last run failed for this volume, until one succeeds.
	// +optional
	LastFailure string `json:"lastFailure,omitempty"`
}

// BackupLocationStatus is one backup location.
type BackupLocationStatus struct {
	// Region of the bucket.
	Region string `json:"region"`
	// Bucket holding the backups.
	Bucket string `json:"bucket"`
	// Backups is how many complete backups the location held after the last backup.
	// +optional
	Backups int32 `json:"backups,omitempty"`
	// Newest and Oldest are the IDs of the newest and oldest complete backups there.
	// +optional
	Newest string `json:"newest,omitempty"`
	// +optional
	Oldest string `json:"oldest,omitempty"`
}

// EncryptionStatus describes the keys that encrypt a workspace's data at rest.
type EncryptionStatus struct {
	// Keys are the workspace's customer-managed KMS keys, the primary region's first.
	// +optional
	// +listType=map
	// +listMapKey=region
	Keys []KeyStatus `json:"keys,omitempty"`

	// StorageClassName is the only StorageClass the workspace's volumes may use; it
	// encrypts them with the primary key.
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
}

// KeyStatus is one workspace key. An entry without an ARN records that the operator asked
// KMS for the key and has not had the answer yet: an interrupted creation is then found and
// adopted rather than repeated.
type KeyStatus struct {
	// Region of the key.
	Region string `json:"region"`
	// ARN of the key; empty while it is being created.
	ARN string `json:"arn"`
	// Alias of the key.
	Alias string `json:"alias"`
	// State of the key in KMS, e.g. Enabled, or Creating until KMS answers.
	State string `json:"state"`
}

// StorageStatus describes where a workspace's uploaded files live.
type StorageStatus struct {
	// Buckets are the workspace's S3 buckets, the primary first, then its replica.
	// +optional
	// +listType=map
	// +listMapKey=region
	Buckets []BucketStatus `json:"buckets,omitempty"`

	// ServiceAccountName is the ServiceAccount whose pods may use the buckets and keys.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// RoleARN is the IAM role that ServiceAccount assumes (IRSA / EKS Pod Identity).
	// +optional
	RoleARN string `json:"roleARN,omitempty"`
}

// BucketStatus is one workspace bucket.
type BucketStatus struct {
	// Name of the bucket.
	Name string `json:"name"`
	// Region of the bucket.
	Region string `json:"region"`
	// Role is Primary or Replica.
	Role string `json:"role"`
}

// NetworkStatus describes the workspace's firewall.
type NetworkStatus struct {
	// Policies are the names of the NetworkPolicies in the workspace namespace.
	// +optional
	// +listType=atomic
	Policies []string `json:"policies,omitempty"`
}

// QuotaStatus describes the quota in force.
type QuotaStatus struct {
	// Tier is the named tier, or "custom" for explicit limits.
	Tier string `json:"tier"`

	// Hard are the ResourceQuota's hard limits.
	// +optional
	Hard map[string]resource.Quantity `json:"hard,omitempty"`
}

// CertificateStatus describes the workspace's cert-manager Certificate.
type CertificateStatus struct {
	// Name of the Certificate in the workspace namespace.
	Name string `json:"name"`

	// SecretName is the Secret that holds the issued key pair.
	SecretName string `json:"secretName"`

	// NotAfter is when the issued certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}

// Workspace is a customer's isolated workspace: a namespace behind a default-deny
// firewall, with quotas, owner access and an HTTPS certificate; its volumes and files
// encrypted with keys of its own; backed up daily to two regions; and, once deleted,
// destroyed after the purge window.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ws,categories=workspace-operator
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`,priority=1
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.namespace`
// +kubebuilder:printcolumn:name="Encrypted",type=string,JSONPath=`.status.conditions[?(@.type=="EncryptionReady")].status`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.backup.lastSuccessfulBackup`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.encryption.keys[0].state`,priority=1
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.status.storage.buckets[0].name`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lower-case letters, digits and '-'): it names the workspace's namespace"
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 60",message="metadata.name must be at most 60 characters so that the ws- namespace prefix fits a 63-character label"
type Workspace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkspaceSpec `json:"spec"`
	// The default makes a Workspace the operator has not seen yet read as in progress
	// (observedGeneration behind generation) to kstatus, Flux and Argo CD, instead of current.
	// +kubebuilder:default={observedGeneration: 0}
	Status WorkspaceStatus `json:"status,omitempty"`
}

// WorkspaceList is a list of Workspaces.
// +kubebuilder:object:root=true
type WorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workspace `json:"items"`
}
