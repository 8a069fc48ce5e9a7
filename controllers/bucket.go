package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// BucketService provisions a workspace's S3 buckets (cloud.Buckets in production).
type BucketService interface {
	Ensure(ctx context.Context, req cloud.BucketRequest) (cloud.Bucket, error)
	Name(owner cloud.Owner, region string) string
	BackupName(owner cloud.Owner, region string) string
	Close(ctx context.Context, region, name string) error
	HoldBackups(ctx context.Context, region, name string, days int32) error
}

// Bucket roles in status.
const (
	primaryBucket = "Primary"
	replicaBucket = "Replica"
)

// workloadServiceAccountName is the ServiceAccount whose pods may use the workspace's
// buckets and keys.
const workloadServiceAccountName = "workspace-data"

// roleARNAnnotation tells EKS (IRSA) which IAM role the ServiceAccount's pods assume.
const roleARNAnnotation = "eks.amazonaws.com/role-arn"

// roleTemplateData are the fields WorkloadRoleARNTemplate may use.
type roleTemplateData struct {
	Workspace, Namespace, Cluster string
}

func parseRoleTemplate(text string) (*template.Template, error) {
	if text == "" {
		return nil, nil
	}
	t, err := template.New("workload-role").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("workload role ARN template: %w", err)
	}
	return t, nil
}

// renderRoleARN renders an IAM role ARN template for a workspace, "" when the operator is
// not configured with a template.
func renderRoleARN(text string, ws *tenancyv1alpha1.Workspace, namespace, cluster string) (string, error) {
	t, err := parseRoleTemplate(text)
	if err != nil || t == nil {
		return "", err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, roleTemplateData{Workspace: ws.Name, Namespace: namespace, Cluster: cluster}); err != nil {
		return "", fmt.Errorf("render role ARN: %w", err)
	}
	return out.String(), nil
}

// desiredServiceAccount is an identity for pods of the workspace; the IAM role behind it
// (IRSA) is scoped to the workspace's own buckets and keys.
func desiredServiceAccount(ws *tenancyv1alpha1.Workspace, namespace, name, roleARN string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: objectMeta(ws, namespace, name)}
	if roleARN != "" {
		sa.Annotations = map[string]string{roleARNAnnotation: roleARN}
	}
	return sa
}

// applyServiceAccount creates or updates sa, keeping annotations others added.
func (r *WorkspaceReconciler) applyServiceAccount(ctx context.Context, ws *tenancyv1alpha1.Workspace, sa *corev1.ServiceAccount) error {
	roleARN := sa.Annotations[roleARNAnnotation]
	return apply(ctx, r, ws, sa, func(live *corev1.ServiceAccount) {
		mergeLabels(live, sa.Labels)
		if roleARN == "" {
			delete(live.Annotations, roleARNAnnotation)
			return
		}
		if live.Annotations == nil {
			live.Annotations = map[string]string{}
		}
		live.Annotations[roleARNAnnotation] = roleARN
	})
}

// reconcileBuckets makes sure the workspace's buckets exist with every security setting,
// replicated to the second region when one is configured, and gives its pods an identity
// to reach them.
func (r *WorkspaceReconciler) reconcileBuckets(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	if r.Buckets == nil {
		return errAWSNotConfigured
	}
	cfg := r.Config.Storage
	primaryKey := findKey(ws, cfg.Region)
	if primaryKey == nil {
		return failed("KeyPending", errors.New("waiting for the workspace key, which encrypts the bucket"))
	}
	if awsCheckDue(ctx) || ws.Status.Storage == nil {
		buckets, err := r.ensureBuckets(ctx, ws, primaryKey.ARN)
		if err != nil {
			return err
		}
		ws.Status.Storage = &tenancyv1alpha1.StorageStatus{Buckets: buckets}
	}

	roleARN, err := renderRoleARN(cfg.WorkloadRoleARNTemplate, ws, namespace, cfg.ClusterName)
	if err != nil {
		return stalled("InvalidRoleTemplate", "%v; fix --workload-role-arn-template", err)
	}
	sa := desiredServiceAccount(ws, namespace, workloadServiceAccountName, roleARN)
	if err := r.applyServiceAccount(ctx, ws, sa); err != nil {
		return failed("ServiceAccountFailed", fmt.Errorf("apply ServiceAccount %s: %w", objectRef(sa), err))
	}
	ws.Status.Storage.ServiceAccountName = sa.Name
	ws.Status.Storage.RoleARN = roleARN

	message := fmt.Sprintf("files are stored in bucket %s (%s), encrypted with the workspace key, public access blocked, HTTPS only",
		ws.Status.Storage.Buckets[0].Name, cfg.Region)
	if len(ws.Status.Storage.Buckets) > 1 {
		message += fmt.Sprintf(", replicated to %s (%s)", ws.Status.Storage.Buckets[1].Name, cfg.ReplicaRegion)
	}
	setCondition(ws, tenancyv1alpha1.ConditionBucketReady, metav1.ConditionTrue, "BucketSecured", message)
	return nil
}

// ensureBuckets provisions the replica first, so that the primary's replication rule
// always points at a bucket that exists.
func (r *WorkspaceReconciler) ensureBuckets(ctx context.Context, ws *tenancyv1alpha1.Workspace, primaryKeyARN string) ([]tenancyv1alpha1.BucketStatus, error) {
	cfg := r.Config.Storage
	owner := cfg.owner(ws)
	var replication *cloud.Replication
	var replica *tenancyv1alpha1.BucketStatus
	if cfg.ReplicaRegion != "" {
		replicaKey := findKey(ws, cfg.ReplicaRegion)
		if replicaKey == nil {
			return nil, failed("KeyPending", fmt.Errorf("waiting for the workspace key in %s, which encrypts the replica", cfg.ReplicaRegion))
		}
		bucket, err := r.ensureBucket(ctx, cloud.BucketRequest{
			Owner: owner, Name: r.Buckets.Name(owner, cfg.ReplicaRegion), Region: cfg.ReplicaRegion, KeyARN: replicaKey.ARN,
		})
		if err != nil {
			return nil, err
		}
		replica = &tenancyv1alpha1.BucketStatus{Name: bucket.Name, Region: bucket.Region, Role: replicaBucket}
		replication = &cloud.Replication{RoleARN: cfg.ReplicationRoleARN, DestinationBucket: bucket.Name, DestinationKeyARN: replicaKey.ARN}
	}
	bucket, err := r.ensureBucket(ctx, cloud.BucketRequest{
		Owner: owner, Name: r.Buckets.Name(owner, cfg.Region), Region: cfg.Region, KeyARN: primaryKeyARN, Replication: replication,
	})
	if err != nil {
		return nil, err
	}
	buckets := []tenancyv1alpha1.BucketStatus{{Name: bucket.Name, Region: bucket.Region, Role: primaryBucket}}
	if replica != nil {
		buckets = append(buckets, *replica)
	}
	return buckets, nil
}

func (r *WorkspaceReconciler) ensureBucket(ctx context.Context, req cloud.BucketRequest) (cloud.Bucket, error) {
	bucket, err := r.Buckets.Ensure(ctx, req)
	if err != nil {
		return cloud.Bucket{}, awsFailure("S3", fmt.Errorf("bucket in %s: %w", req.Region, err))
	}
	if bucket.Created {
		recordAWSCreated(ctx, "bucket %s in %s", bucket.Name, bucket.Region)
	}
	if len(bucket.Repaired) > 0 {
		recordAWSRepaired(ctx, "bucket %s (%s)", bucket.Name, strings.Join(bucket.Repaired, ", "))
	}
	return bucket, nil
}
