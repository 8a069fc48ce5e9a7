package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

var reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "workspace_operator_reconcile_errors_total",
	Help: "Failed reconciles of a workspace concern, by the condition that reports it.",
}, []string{"condition"})

var backupJobs = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "workspace_operator_backup_jobs_total",
	Help: "Finished backup Jobs by outcome (succeeded or failed).",
}, []string{"outcome"})

var purgesCompleted = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "workspace_operator_purges_completed_total",
	Help: "Deleted workspaces whose data was destroyed after the purge window.",
})

var (
	purgesDesc = prometheus.NewDesc("workspace_operator_purges",
		"Purge records by state; an Overdue state counts Pending records past purgeAfter.", []string{"state"}, nil)
	lastBackupDesc = prometheus.NewDesc("workspace_operator_backup_last_success_timestamp_seconds",
		"Unix time of each workspace's last successful backup.", []string{"workspace"}, nil)
	workspacesDesc = prometheus.NewDesc("workspace_operator_workspaces",
		"Workspaces by phase.", []string{"phase"}, nil)
	conditionsDesc = prometheus.NewDesc("workspace_operator_workspace_conditions",
		"Workspaces by condition type and status.", []string{"condition", "status"}, nil)
)

var phases = []tenancyv1alpha1.WorkspacePhase{
	tenancyv1alpha1.PhasePending, tenancyv1alpha1.PhaseProvisioning, tenancyv1alpha1.PhaseReady,
	tenancyv1alpha1.PhaseDegraded, tenancyv1alpha1.PhaseFailed, tenancyv1alpha1.PhaseSuspended, tenancyv1alpha1.PhaseDeleting,
}

// workspaceCollector counts Workspaces by phase and condition at scrape time, from the
// cache, so the figures can never drift from what the API server holds.
type workspaceCollector struct {
	reader client.Reader
	// clock says which records are overdue: the one the purges run on.
	clock clock.PassiveClock
}

func (c workspaceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workspacesDesc
	ch <- conditionsDesc
	ch <- lastBackupDesc
	ch <- purgesDesc
}

func (c workspaceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list tenancyv1alpha1.WorkspaceList
	if err := c.reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(workspacesDesc, err)
		return
	}
	byPhase := make(map[tenancyv1alpha1.WorkspacePhase]int, len(phases))
	type key struct{ condition, status string }
	byCondition := map[key]int{}
	for i := range list.Items {
		ws := &list.Items[i]
		phase := ws.Status.Phase
		if phase == "" {
			phase = tenancyv1alpha1.PhasePending
		}
		byPhase[phase]++
		if b := ws.Status.Backup; b != nil && b.LastSuccessfulBackup != nil {
			ch <- prometheus.MustNewConstMetric(lastBackupDesc, prometheus.GaugeValue, float64(b.LastSuccessfulBackup.Unix()), ws.Name)
		}
		for _, t := range append([]string{tenancyv1alpha1.ConditionReady}, concernConditions...) {
			status := "Unknown"
			if c := meta.FindStatusCondition(ws.Status.Conditions, t); c != nil {
				status = string(c.Status)
			}
			byCondition[key{t, status}]++
		}
	}
	c.collectPurges(ctx, ch)
	for _, phase := range phases {
		ch <- prometheus.MustNewConstMetric(workspacesDesc, prometheus.GaugeValue, float64(byPhase[phase]), string(phase))
	}
	for k, n := range byCondition {
		ch <- prometheus.MustNewConstMetric(conditionsDesc, prometheus.GaugeValue, float64(n), k.condition, k.status)
	}
}

func (c workspaceCollector) collectPurges(ctx context.Context, ch chan<- prometheus.Metric) {
	var purges tenancyv1alpha1.WorkspacePurgeList
	if err := c.reader.List(ctx, &purges); err != nil {
		ch <- prometheus.NewInvalidMetric(purgesDesc, err)
		return
	}
	byState := map[string]int{}
	for _, p := range purges.Items {
		state := string(p.Status.State)
		if p.Status.State == tenancyv1alpha1.PurgePending && c.clock.Now().After(p.Spec.PurgeAfter.Time) {
			state = "Overdue"
		}
		byState[state]++
	}
	for _, state := range []string{"Deleting", "Pending", "Overdue", "Purging", "Purged", "Restored"} {
		ch <- prometheus.MustNewConstMetric(purgesDesc, prometheus.GaugeValue, float64(byState[state]), state)
	}
}

// RegisterMetrics adds the operator's metrics to the registry the manager serves; clk is
// the controllers' clock.
func RegisterMetrics(reader client.Reader, clk clock.PassiveClock) {
	metrics.Registry.MustRegister(reconcileErrors, backupJobs, purgesCompleted, workspaceCollector{reader: reader, clock: clk})
}
