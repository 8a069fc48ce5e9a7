package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// KMS answers deletion dates in milliseconds and the record holds whole seconds: the
// recorded date must never be before the moment the key is really gone.
func TestRecordedDeletionDateRoundsUp(t *testing.T) {
	base := time.Date(2026, 12, 12, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in, want time.Time
	}{
		{base, base},
		{base.Add(400 * time.Millisecond), base.Add(time.Second)},
		{base.Add(999 * time.Millisecond), base.Add(time.Second)},
		{base.Add(time.Nanosecond), base.Add(time.Second)},
	} {
		got := recordedDeletionDate(tc.in).Time
		if !got.Equal(tc.want) {
			t.Errorf("recordedDeletionDate(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if got.Before(tc.in) {
			t.Errorf("recordedDeletionDate(%v) = %v is before KMS's date", tc.in, got)
		}
	}
}

// Without AWS clients the purge cannot destroy what the record lists, so it must not say
// it did.
func TestPurgeWithoutAWSDoesNotCertifyDestruction(t *testing.T) {
	recorder := events.NewFakeRecorder(10)
	r := &WorkspacePurgeReconciler{Recorder: recorder, Clock: clocktesting.NewFakeClock(time.Now()), AuditPeriod: time.Hour}
	purge := &tenancyv1alpha1.WorkspacePurge{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-12345678"},
		Spec: tenancyv1alpha1.WorkspacePurgeSpec{
			Workspace: "acme",
			Keys:      []tenancyv1alpha1.PurgeKey{{Region: "eu-west-1", ARN: "arn:aws:kms:eu-west-1:000000000000:key/k"}},
			Buckets:   []tenancyv1alpha1.PurgeBucket{{Region: "eu-west-1", Name: "wso-acme-x", Kind: filesBucketKind}},
		},
		Status: tenancyv1alpha1.WorkspacePurgeStatus{State: tenancyv1alpha1.PurgePurging},
	}
	result, err := r.purge(context.Background(), purge)
	if err != nil {
		t.Fatal(err)
	}
	if purge.Status.State == tenancyv1alpha1.PurgePurged || len(purge.Status.Evidence) != 0 || purge.Status.PurgedAt != nil {
		t.Errorf("record marked %s with evidence %v although nothing was destroyed", purge.Status.State, purge.Status.Evidence)
	}
	if c := condition2(purge.Status.Conditions, tenancyv1alpha1.ConditionPurged); c.Reason != "AWSNotConfigured" || c.Status != metav1.ConditionFalse {
		t.Errorf("Purged condition = %+v, want False AWSNotConfigured", c)
	}
	if result.RequeueAfter == 0 {
		t.Error("not retried")
	}
	select {
	case e := <-recorder.Events:
		if !strings.Contains(e, "Warning") || !strings.Contains(e, "AWSNotConfigured") {
			t.Errorf("event %q", e)
		}
	default:
		t.Error("no event")
	}

	// A record of a workspace that never had AWS resources is purged as before.
	empty := &tenancyv1alpha1.WorkspacePurge{Spec: tenancyv1alpha1.WorkspacePurgeSpec{Workspace: "acme"},
		Status: tenancyv1alpha1.WorkspacePurgeStatus{State: tenancyv1alpha1.PurgePurging}}
	if _, err := r.purge(context.Background(), empty); err != nil || empty.Status.State != tenancyv1alpha1.PurgePurged {
		t.Errorf("empty record: state %s, %v", empty.Status.State, err)
	}
}

// An operator killed between creating the record and setting its state leaves a record
// without a state. Whoever finds it next must move it on, never read it as "still
// deleting" forever.
func TestAPurgeRecordWithoutAStateIsHandedOver(t *testing.T) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: types.UID("12345678-aaaa")}}
	stateless := func() *tenancyv1alpha1.WorkspacePurge {
		return &tenancyv1alpha1.WorkspacePurge{
			ObjectMeta: metav1.ObjectMeta{Name: purgeName(ws), Labels: map[string]string{tenancyv1alpha1.WorkspaceLabel: ws.Name}},
			Spec: tenancyv1alpha1.WorkspacePurgeSpec{Workspace: ws.Name, WorkspaceUID: string(ws.UID),
				PurgeAfter: metav1.NewTime(time.Now().Add(time.Hour))},
		}
	}
	ctx := context.Background()

	t.Run("the workspace's deletion hands it over", func(t *testing.T) {
		purge := stateless()
		c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(purge).WithStatusSubresource(purge).Build()
		r := &WorkspaceReconciler{Client: c, APIReader: c}
		if done, err := r.handOverToPurge(ctx, ws, purge); err != nil || !done {
			t.Fatalf("hand over: %v, %v", done, err)
		}
		if purge.Status.State != tenancyv1alpha1.PurgePending {
			t.Errorf("state %q, want Pending", purge.Status.State)
		}
	})
	t.Run("the workspace's restart marks it Deleting", func(t *testing.T) {
		purge := stateless()
		c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(purge).WithStatusSubresource(purge).Build()
		r := &WorkspaceReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10)}
		ws := ws.DeepCopy()
		ws.Status.Namespace = "ws-acme"
		if done, err := r.recordPurge(ctx, ws); err != nil || !done {
			t.Fatalf("record: %v, %v", done, err)
		}
		live := purge.DeepCopy()
		if err := c.Get(ctx, types.NamespacedName{Name: purge.Name}, live); err != nil {
			t.Fatal(err)
		}
		if live.Status.State != tenancyv1alpha1.PurgeDeleting {
			t.Errorf("state %q, want Deleting", live.Status.State)
		}
	})
	t.Run("the purge controller takes over once the workspace is gone", func(t *testing.T) {
		purge := stateless()
		c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(purge).WithStatusSubresource(purge).Build()
		r := &WorkspacePurgeReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10), Clock: clocktesting.NewFakeClock(time.Now())}
		if _, err := r.reconcile(ctx, purge); err != nil {
			t.Fatal(err)
		}
		if purge.Status.State != tenancyv1alpha1.PurgePending {
			t.Errorf("state %q, want Pending", purge.Status.State)
		}
	})
}
