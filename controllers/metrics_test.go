package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// A record is overdue by the operator's clock, the one its purge runs on, not by the
// machine's.
func TestPurgesOverdueByTheInjectedClock(t *testing.T) {
	now := time.Now()
	record := func(name string, purgeAfter time.Time) *tenancyv1alpha1.WorkspacePurge {
		return &tenancyv1alpha1.WorkspacePurge{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       tenancyv1alpha1.WorkspacePurgeSpec{PurgeAfter: metav1.NewTime(purgeAfter)},
			Status:     tenancyv1alpha1.WorkspacePurgeStatus{State: tenancyv1alpha1.PurgePending},
		}
	}
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(
		record("due-yesterday", now.Add(-24*time.Hour)),
		record("due-in-a-day", now.Add(24*time.Hour)),
		record("due-in-a-week", now.Add(7*24*time.Hour)),
	).Build()
	collector := workspaceCollector{reader: c, clock: clocktesting.NewFakePassiveClock(now.Add(2 * 24 * time.Hour))}

	ch := make(chan prometheus.Metric, 16)
	collector.collectPurges(context.Background(), ch)
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		got[out.GetLabel()[0].GetValue()] = out.GetGauge().GetValue()
	}
	if got["Overdue"] != 2 || got["Pending"] != 1 {
		t.Errorf("Overdue %v, Pending %v; want 2 and 1", got["Overdue"], got["Pending"])
	}
}
