package datamover

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	volumesFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "workspace_operator_backup_volumes_total",
		Help: "Volumes the data mover finished backing up, by outcome (succeeded or failed).",
	}, []string{"outcome"})
	volumeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "workspace_operator_backup_volume_duration_seconds",
		Help: "Time from a volume's snapshot to the end of its upload, by outcome.",
		// From a small volume in a minute to the six-hour default deadline.
		Buckets: []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600},
	}, []string{"outcome"})
	volumeBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "workspace_operator_backup_volume_bytes_total",
		Help: "Bytes of the archives the data mover uploaded (once per location).",
	})
	volumesRestored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "workspace_operator_restore_volumes_total",
		Help: "Volumes the data mover finished restoring, by outcome (succeeded or failed).",
	}, []string{"outcome"})
)

func init() {
	metrics.Registry.MustRegister(volumesFinished, volumeDuration, volumeBytes, volumesRestored)
}
