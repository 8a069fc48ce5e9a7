package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
)

// PurgeKeys is what the purge needs of KMS (cloud.Keys in production).
type PurgeKeys interface {
	Describe(ctx context.Context, region, arn string) (cloud.KeyState, error)
}

// PurgeBuckets is what the purge needs of S3 (cloud.Buckets in production).
type PurgeBuckets interface {
	Purge(ctx context.Context, region, name string) (int, error)
	Exists(ctx context.Context, region, name string) (bool, error)
}

// countdownRefresh is how often a pending purge's time remaining is rewritten.
const countdownRefresh = time.Hour

// WorkspacePurgeReconciler destroys a deleted workspace's remaining data once its purge
// window has passed, records the evidence, and removes the record after the audit period.
type WorkspacePurgeReconciler struct {
	client.Client
	APIReader   client.Reader
	Recorder    events.EventRecorder
	Keys        PurgeKeys
	Buckets     PurgeBuckets
	Clock       clock.PassiveClock
	AuditPeriod time.Duration
}

// Reconcile moves a purge record along: Pending until purgeAfter, then Purging until every
// bucket is gone and every key is deleted or pending deletion no later than purgeAfter,
// then Purged with the evidence, and gone after the audit period.
func (r *WorkspacePurgeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	purge := &tenancyv1alpha1.WorkspacePurge{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, purge); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !purge.DeletionTimestamp.IsZero() {
		// Deleting the WorkspacePurge CRD (an uninstall) must not shred anything, nor hang:
		// the keys are already pending deletion in KMS, which deletes them on its own.
		uninstalling, err := crdBeingDeleted(ctx, r.APIReader, workspacePurgeCRDName)
		if err != nil {
			return ctrl.Result{}, err
		}
		if uninstalling {
			return ctrl.Result{}, releasePurgeFinalizer(ctx, r.Client, purge)
		}
	}
	before := purge.DeepCopy()
	result, err := r.reconcile(ctx, purge)
	purge.Status.ObservedGeneration = purge.Generation
	if !equality.Semantic.DeepEqual(before.Status, purge.Status) {
		if patchErr := r.Status().Patch(ctx, purge, client.MergeFrom(before)); client.IgnoreNotFound(patchErr) != nil {
			err = errors.Join(err, fmt.Errorf("patch status: %w", patchErr))
		}
	}
	return result, err
}

func (r *WorkspacePurgeReconciler) reconcile(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge) (ctrl.Result, error) {
	now := r.Clock.Now()
	switch purge.Status.State {
	case tenancyv1alpha1.PurgeDeleting, "":
		// The Workspace controller is still deleting; it hands over by setting Pending.
		// A record whose workspace is gone was never handed over (an operator killed
		// between the record's creation and its state): nobody else will move it on.
		gone, err := r.workspaceGone(ctx, purge)
		if err != nil || !gone {
			return ctrl.Result{RequeueAfter: time.Minute}, err
		}
		purge.Status.State = tenancyv1alpha1.PurgePending
		r.Recorder.Eventf(purge, nil, corev1.EventTypeWarning, "TakenOver", "Purge",
			"workspace %s is gone without handing this record over; the purge controller takes it over", purge.Spec.Workspace)
		return r.reconcile(ctx, purge)
	case tenancyv1alpha1.PurgePending:
		if remaining := purge.Spec.PurgeAfter.Sub(now); remaining > 0 {
			purge.Status.TimeRemaining = duration.HumanDuration(remaining.Round(countdownRefresh))
			setPurgeCondition(purge, metav1.ConditionFalse, "AwaitingPurge",
				fmt.Sprintf("the data is recoverable (spec.restoreFrom on a new Workspace %s) until %s", purge.Spec.Workspace, purge.Spec.PurgeAfter.UTC().Format(time.RFC3339)))
			// Woken at purgeAfter, from the injected clock, not by polling KMS.
			return ctrl.Result{RequeueAfter: min(remaining, countdownRefresh)}, nil
		}
		purge.Status.State = tenancyv1alpha1.PurgePurging
		purge.Status.TimeRemaining = "0s"
		r.Recorder.Eventf(purge, nil, corev1.EventTypeNormal, "PurgeStarted", "Purge", "purgeAfter %s has passed; destroying every copy of the data", purge.Spec.PurgeAfter.UTC().Format(time.RFC3339))
		fallthrough
	case tenancyv1alpha1.PurgePurging:
		return r.purge(ctx, purge)
	case tenancyv1alpha1.PurgePurged, tenancyv1alpha1.PurgeRestored:
		return r.expire(ctx, purge)
	}
	return ctrl.Result{}, nil
}

// purge empties and deletes every bucket and checks every key, collecting the evidence.
func (r *WorkspacePurgeReconciler) purge(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge) (ctrl.Result, error) {
	if r.Keys == nil || r.Buckets == nil {
		if len(purge.Spec.Buckets) == 0 && len(purge.Spec.Keys) == 0 {
			return r.markPurged(purge, []string{"no AWS resources: the workspace never had any"}), nil
		}
		// Nothing is destroyed without AWS clients; saying it was would be false evidence.
		message := fmt.Sprintf("the record lists %d buckets and %d keys, but the operator has no AWS configuration (--aws-region): nothing can be destroyed; configure AWS, and the purge resumes",
			len(purge.Spec.Buckets), len(purge.Spec.Keys))
		if c := meta.FindStatusCondition(purge.Status.Conditions, tenancyv1alpha1.ConditionPurged); c == nil || c.Reason != "AWSNotConfigured" {
			r.Recorder.Eventf(purge, nil, corev1.EventTypeWarning, "AWSNotConfigured", "Purge", "%s", message)
		}
		setPurgeCondition(purge, metav1.ConditionFalse, "AWSNotConfigured", message)
		return ctrl.Result{RequeueAfter: time.Hour}, nil
	}
	var evidence []string
	for _, b := range purge.Spec.Buckets {
		deleted, err := r.Buckets.Purge(ctx, b.Region, b.Name)
		if err != nil {
			setPurgeCondition(purge, metav1.ConditionFalse, "BucketPurgeFailed", err.Error())
			return ctrl.Result{}, err
		}
		exists, err := r.Buckets.Exists(ctx, b.Region, b.Name)
		if err != nil || exists {
			err = errors.Join(err, fmt.Errorf("bucket %s still exists after its purge", b.Name))
			setPurgeCondition(purge, metav1.ConditionFalse, "BucketPurgeFailed", err.Error())
			return ctrl.Result{}, err
		}
		evidence = append(evidence, fmt.Sprintf("%s bucket %s (%s): %d object versions deleted, bucket deleted", b.Kind, b.Name, b.Region, deleted))
	}

	var wait time.Duration
	for _, k := range purge.Spec.Keys {
		state, err := r.Keys.Describe(ctx, k.Region, k.ARN)
		if err != nil {
			setPurgeCondition(purge, metav1.ConditionFalse, "KeyCheckFailed", err.Error())
			return ctrl.Result{}, err
		}
		switch {
		case state.State == "Deleted":
			evidence = append(evidence, fmt.Sprintf("key %s (%s): deleted by KMS", k.ARN, k.Region))
		case state.State == "PendingDeletion" && state.DeletionDate != nil && !state.DeletionDate.After(purge.Spec.PurgeAfter.Time):
			// KMS deletes it by its date; every ciphertext it protected is already gone.
			evidence = append(evidence, fmt.Sprintf("key %s (%s): pending deletion at %s", k.ARN, k.Region, state.DeletionDate.UTC().Format(time.RFC3339)))
		case state.State == "PendingDeletion" && state.DeletionDate != nil:
			wait = max(wait, state.DeletionDate.Sub(r.Clock.Now()))
		default:
			err := fmt.Errorf("key %s in %s is %s, not pending deletion: someone cancelled its deletion; schedule it again (aws kms schedule-key-deletion) or undelete the workspace", k.ARN, k.Region, state.State)
			setPurgeCondition(purge, metav1.ConditionFalse, "KeyNotPendingDeletion", err.Error())
			r.Recorder.Eventf(purge, nil, corev1.EventTypeWarning, "KeyNotPendingDeletion", "Purge", "%v", err)
			return ctrl.Result{RequeueAfter: time.Hour}, nil
		}
	}
	if wait > 0 {
		setPurgeCondition(purge, metav1.ConditionFalse, "AwaitingKeyDeletion", "a key's deletion date is after purgeAfter; waiting for KMS to delete it")
		return ctrl.Result{RequeueAfter: wait + time.Second}, nil
	}
	cleared, clusterEvidence, err := r.clusterLeftovers(ctx, purge)
	if err != nil || !cleared {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, err
	}
	return r.markPurged(purge, append(evidence, clusterEvidence...)), nil
}

func (r *WorkspacePurgeReconciler) markPurged(purge *tenancyv1alpha1.WorkspacePurge, evidence []string) ctrl.Result {
	now := metav1.NewTime(r.Clock.Now())
	purge.Status.State = tenancyv1alpha1.PurgePurged
	purge.Status.PurgedAt = &now
	purge.Status.Evidence = evidence
	setPurgeCondition(purge, metav1.ConditionTrue, "Purged",
		fmt.Sprintf("every copy of workspace %s's data is destroyed; record kept until %s", purge.Spec.Workspace, now.Add(r.AuditPeriod).UTC().Format(time.RFC3339)))
	r.Recorder.Eventf(purge, nil, corev1.EventTypeNormal, "Purged", "Purge", "workspace %s's data is irrecoverable: %d buckets and %d keys destroyed", purge.Spec.Workspace, len(purge.Spec.Buckets), len(purge.Spec.Keys))
	purgesCompleted.Inc()
	return ctrl.Result{RequeueAfter: r.AuditPeriod}
}

// expire removes a finished record after the audit period.
func (r *WorkspacePurgeReconciler) expire(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge) (ctrl.Result, error) {
	finished := purge.CreationTimestamp.Time
	if purge.Status.PurgedAt != nil {
		finished = purge.Status.PurgedAt.Time
	}
	if remaining := finished.Add(r.AuditPeriod).Sub(r.Clock.Now()); remaining > 0 {
		return ctrl.Result{RequeueAfter: remaining}, nil
	}
	if err := releasePurgeFinalizer(ctx, r.Client, purge); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Delete(ctx, purge); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("delete WorkspacePurge %s after its audit period: %w", purge.Name, err)
	}
	logf.FromContext(ctx).Info("audit period over; purge record removed", "workspacePurge", purge.Name)
	return ctrl.Result{}, nil
}

// workspaceGone reports, from a live read, whether the workspace that left purge no
// longer exists (a Workspace of the same name with another UID is a new one).
func (r *WorkspacePurgeReconciler) workspaceGone(ctx context.Context, purge *tenancyv1alpha1.WorkspacePurge) (bool, error) {
	ws := &tenancyv1alpha1.Workspace{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: purge.Spec.Workspace}, ws)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read Workspace %s: %w", purge.Spec.Workspace, err)
	}
	return string(ws.UID) != purge.Spec.WorkspaceUID, nil
}

func releasePurgeFinalizer(ctx context.Context, c client.Client, purge *tenancyv1alpha1.WorkspacePurge) error {
	base := purge.DeepCopy()
	if !controllerutil.RemoveFinalizer(purge, tenancyv1alpha1.PurgeFinalizer) {
		return nil
	}
	if err := c.Patch(ctx, purge, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("release WorkspacePurge %s: %w", purge.Name, err)
	}
	return nil
}

func setPurgeCondition(purge *tenancyv1alpha1.WorkspacePurge, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&purge.Status.Conditions, metav1.Condition{
		Type: tenancyv1alpha1.ConditionPurged, Status: status, Reason: reason, Message: message, ObservedGeneration: purge.Generation,
	})
}

// SetupWithManager watches purge records. A record deleted by hand before its purge stays
// (its finalizer is released only after the audit period), so the data is destroyed anyway.
func (r *WorkspacePurgeReconciler) SetupWithManager(mgr ctrl.Manager, options controller.Options) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.Client = client.WithFieldOwner(keepServerManagedFields{r.Client}, FieldOwner)
	return ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.WorkspacePurge{}).
		WithOptions(options).
		Complete(r)
}
