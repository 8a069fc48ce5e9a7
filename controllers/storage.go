package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// KeyService provisions a workspace's KMS keys and schedules their deletion (cloud.Keys
// in production).
type KeyService interface {
	Ensure(ctx context.Context, req cloud.KeyRequest) (cloud.Key, error)
	ScheduleDeletion(ctx context.Context, owner cloud.Owner, region, arn string, window time.Duration) (*time.Time, error)
}

// storageClassName is the workspace's encrypted StorageClass.
func storageClassName(namespace string) string {
	return namespace + "-encrypted"
}

// desiredStorageClass encrypts every volume of the workspace with its own key. Volumes
// are deleted with their claims, so deleting the namespace deletes the data.
func desiredStorageClass(ws *tenancyv1alpha1.Workspace, namespace, keyARN string, cfg StorageConfig) *storagev1.StorageClass {
	parameters := maps.Clone(cfg.Parameters)
	if parameters == nil {
		parameters = map[string]string{}
	}
	parameters["encrypted"] = "true"
	parameters[cfg.KeyParameter] = keyARN
	return &storagev1.StorageClass{
		ObjectMeta:           objectMeta(ws, "", storageClassName(namespace)),
		Provisioner:          cfg.Provisioner,
		Parameters:           parameters,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		AllowVolumeExpansion: ptr.To(true),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// regions lists the regions a workspace's keys and buckets live in, the primary first.
func (c StorageConfig) regions() []string {
	if c.ReplicaRegion == "" {
		return []string{c.Region}
	}
	return []string{c.Region, c.ReplicaRegion}
}

func (c StorageConfig) owner(ws *tenancyv1alpha1.Workspace) cloud.Owner {
	return cloud.Owner{Cluster: c.ClusterName, Workspace: ws.Name}
}

// reconcileEncryption makes sure the workspace's keys exist and are usable in every
// region, then binds its volumes to them through the encrypted StorageClass.
func (r *WorkspaceReconciler) reconcileEncryption(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	if r.Keys == nil {
		return errAWSNotConfigured
	}
	if ws.Status.Encryption == nil {
		ws.Status.Encryption = &tenancyv1alpha1.EncryptionStatus{}
	}
	if awsCheckDue(ctx) {
		// A region marked before this reconcile may hold a key whose CreateKey answer was
		// lost; one this reconcile marks does not, as the mark precedes every CreateKey.
		interrupted := map[string]bool{}
		for _, region := range r.Config.Storage.regions() {
			entry := keyEntry(ws, region)
			interrupted[region] = entry != nil && entry.ARN == ""
		}
		var primary cloud.Key
		for _, region := range r.Config.Storage.regions() {
			key, err := r.ensureKey(ctx, ws, region, interrupted[region])
			if err != nil {
				return err
			}
			if region == r.Config.Storage.Region {
				primary = key
			}
		}
		if err := volumeDriverFailure(primary, r.Config.Storage.VolumeDriverRoleARN); err != nil {
			return err
		}
	}

	primary := findKey(ws, r.Config.Storage.Region)
	if primary == nil {
		return failed("KeyPending", errors.New("the workspace key has not been created yet"))
	}
	class := desiredStorageClass(ws, namespace, primary.ARN, r.Config.Storage)
	if err := r.applyStorageClass(ctx, ws, class); err != nil {
		return failed("StorageClassFailed", fmt.Errorf("apply StorageClass %s: %w", class.Name, err))
	}
	ws.Status.Encryption.StorageClassName = class.Name
	message := fmt.Sprintf("volumes (StorageClass %s) and files are encrypted with KMS key %s, rotated yearly", class.Name, primary.ARN)
	if role := r.Config.Storage.VolumeDriverRoleARN; role != "" {
		// A reconcile without an AWS check follows one that proved it: EncryptionReady
		// was True, or the check would be due.
		message += fmt.Sprintf("; its key policy lets the volume driver's role %s use it", role)
	}
	setCondition(ws, tenancyv1alpha1.ConditionEncryptionReady, metav1.ConditionTrue, "KeysEnabled", message)
	return nil
}

// volumeDriverFailure is the failure of the preflight that the volume driver's role may
// use the workspace's key: nil when no role is configured or the key policy proves it.
func volumeDriverFailure(key cloud.Key, role string) error {
	if role == "" {
		return nil
	}
	const fix = "allow the role these actions in the key policy (the VolumeDriver statements of config/iam/kms-key-policy.json, chart value aws.kmsKeyPolicy)"
	access := key.VolumeDriver
	if len(access.Refused) > 0 {
		return stalled("KeyUnusableByVolumeDriver",
			"the policy of KMS key %s refuses the volume driver's role %s %s: EC2 would accept a volume under the key and then roll it back; %s",
			key.ARN, role, strings.Join(access.Refused, ", "), fix)
	}
	if len(access.Unproven) > 0 {
		return stalled("KeyUnusableByVolumeDriver",
			"the policy of KMS key %s allows the volume driver's role %s %s only through the account (IAM policies, SCPs and permissions boundaries the operator cannot read), so the operator cannot prove the driver can use the key; %s",
			key.ARN, role, strings.Join(access.Unproven, ", "), fix)
	}
	return nil
}

// ensureKey provisions or checks the key in one region and records it in status.
func (r *WorkspaceReconciler) ensureKey(ctx context.Context, ws *tenancyv1alpha1.Workspace, region string, interrupted bool) (cloud.Key, error) {
	var recorded tenancyv1alpha1.KeyStatus
	if entry := findKey(ws, region); entry != nil {
		recorded = *entry
	}
	req := cloud.KeyRequest{
		Owner:         r.Config.Storage.owner(ws),
		Region:        region,
		ARN:           recorded.ARN,
		Alias:         recorded.Alias,
		MayHaveOrphan: interrupted,
		BeforeCreate:  func(ctx context.Context) error { return r.markKeyCreation(ctx, ws) },
	}
	if region == r.Config.Storage.Region {
		// Volumes are created in the primary region only.
		req.VolumeDriverRoleARN = r.Config.Storage.VolumeDriverRoleARN
	}
	key, err := r.Keys.Ensure(ctx, req)
	if err != nil {
		return cloud.Key{}, awsFailure("KMS", fmt.Errorf("key in %s: %w", region, err))
	}
	if len(key.Repaired) > 0 {
		recordAWSRepaired(ctx, "KMS key %s (%s)", key.ARN, strings.Join(key.Repaired, ", "))
	}
	if key.Created {
		recordAWSCreated(ctx, "KMS key %s (%s)", key.ARN, key.Alias)
	}
	status := tenancyv1alpha1.KeyStatus{Region: region, ARN: key.ARN, Alias: key.Alias, State: key.State}
	if existing := keyEntry(ws, region); existing != nil {
		*existing = status
	} else {
		ws.Status.Encryption.Keys = append(ws.Status.Encryption.Keys, status)
	}
	return key, nil
}

// keyCreating is the state of a key entry recorded before CreateKey, when its ARN is not
// known yet.
const keyCreating = "Creating"

// markKeyCreation persists, before the first CreateKey, that a key may exist from now on
// in every region that has none recorded: if an answer is lost, the next attempt looks
// for that key instead of creating a second one. It is the one status write outside the
// end of a reconcile, as it must be durable before the keys are, and it marks all regions
// at once so that a new workspace costs one such write, not one per region.
func (r *WorkspaceReconciler) markKeyCreation(ctx context.Context, ws *tenancyv1alpha1.Workspace) error {
	base := ws.DeepCopy()
	marked := ws.DeepCopy()
	for _, region := range r.Config.Storage.regions() {
		if keyEntry(marked, region) == nil {
			marked.Status.Encryption.Keys = append(marked.Status.Encryption.Keys, tenancyv1alpha1.KeyStatus{Region: region, State: keyCreating})
		}
	}
	if len(marked.Status.Encryption.Keys) == len(base.Status.Encryption.Keys) {
		return nil
	}
	if err := r.Status().Patch(ctx, marked, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("record key creation: %w", err)
	}
	r.ownWrites.record(marked)
	ws.Status.Encryption.Keys = marked.Status.Encryption.Keys
	return nil
}

// keyEntry is the workspace's key entry for a region, created or being created.
func keyEntry(ws *tenancyv1alpha1.Workspace, region string) *tenancyv1alpha1.KeyStatus {
	if ws.Status.Encryption == nil {
		return nil
	}
	for i := range ws.Status.Encryption.Keys {
		if ws.Status.Encryption.Keys[i].Region == region {
			return &ws.Status.Encryption.Keys[i]
		}
	}
	return nil
}

// findKey is the workspace's key in a region, nil until KMS has created it.
func findKey(ws *tenancyv1alpha1.Workspace, region string) *tenancyv1alpha1.KeyStatus {
	if entry := keyEntry(ws, region); entry != nil && entry.ARN != "" {
		return entry
	}
	return nil
}

// applyStorageClass creates the StorageClass or replaces it when its parameters changed:
// they are immutable. Volumes already provisioned keep their key.
func (r *WorkspaceReconciler) applyStorageClass(ctx context.Context, ws *tenancyv1alpha1.Workspace, class *storagev1.StorageClass) error {
	live := &storagev1.StorageClass{}
	err := r.Get(ctx, client.ObjectKeyFromObject(class), live)
	if err == nil && (live.Provisioner != class.Provisioner || !maps.Equal(live.Parameters, class.Parameters) ||
		ptr.Deref(live.ReclaimPolicy, "") != *class.ReclaimPolicy || ptr.Deref(live.VolumeBindingMode, "") != *class.VolumeBindingMode) {
		if err := r.Delete(ctx, live); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return apply(ctx, r, ws, class, func(live *storagev1.StorageClass) {
		mergeLabels(live, class.Labels)
		live.AllowVolumeExpansion = class.AllowVolumeExpansion
	})
}

var errAWSNotConfigured = stalled("AWSNotConfigured",
	"the operator has no AWS region (--aws-region), so the workspace's volumes and files cannot be encrypted with a key of its own")

// awsFailure turns an AWS error into a concern error: terminal when a human must fix IAM
// or configuration (the AWS error code says what), transient otherwise.
func awsFailure(service string, err error) error {
	code := cloud.ErrorCode(err)
	if cloud.IsTerminal(err) {
		return stalled("AWS"+reasonSafe(code), "%s refused the operator (%s): %v; fix the operator's IAM permissions or AWS configuration", service, code, err)
	}
	return failed(service+"Unavailable", err)
}

// reasonSafe keeps the letters and digits of an AWS error code (which may contain dots),
// as condition reasons allow no others.
func reasonSafe(code string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, code)
}
