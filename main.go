// Command workspace-operator runs the controller that turns Workspace resources into
// isolated, encrypted, backed-up tenant namespaces.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/controllers"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workspace-operator:", err)
		os.Exit(1)
	}
}

// options are the operator's command-line settings.
type options struct {
	metricsAddr             string
	secureMetrics           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	maxConcurrentReconciles int
	qps                     float64
	burst                   int
	defaultIssuer           string
	ingressNamespaces       string
	dnsPodLabels            string
	config                  controllers.Config
	zap                     zap.Options
}

func parseFlags(args []string) (*options, error) {
	defaults := controllers.DefaultConfig()
	o := &options{config: defaults}
	fs := flag.NewFlagSet("workspace-operator", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 disables it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized by the API server.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that several replicas can run with one active.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's namespace.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 8, "Workspaces reconciled in parallel.")
	fs.Float64Var(&o.qps, "kube-api-qps", 100, "Sustained requests per second to the API server.")
	fs.IntVar(&o.burst, "kube-api-burst", 200, "Burst of requests to the API server.")
	fs.StringVar(&o.config.NamespacePrefix, "namespace-prefix", defaults.NamespacePrefix, "Prefix of a workspace's namespace name, before the Workspace name.")
	fs.StringVar(&o.ingressNamespaces, "ingress-namespaces", strings.Join(defaults.IngressNamespaces, ","), "Comma-separated namespaces allowed to send ingress traffic to workspaces that name none.")
	fs.StringVar(&o.config.DNSNamespace, "dns-namespace", defaults.DNSNamespace, "Namespace of the cluster DNS pods.")
	fs.StringVar(&o.dnsPodLabels, "dns-pod-labels", labels.Set(defaults.DNSPodLabels).String(), "Comma-separated key=value labels selecting the cluster DNS pods.")
	fs.StringVar(&o.defaultIssuer, "default-issuer", "ClusterIssuer/"+defaults.DefaultIssuer.Name, "cert-manager issuer for workspaces that name none, as Kind/name (Issuer or ClusterIssuer).")
	fs.StringVar(&o.config.OwnerClusterRole, "owner-cluster-role", defaults.OwnerClusterRole, "ClusterRole bound to workspace owners in their namespace.")
	fs.DurationVar(&o.config.StalledRetryInterval, "stalled-retry-interval", defaults.StalledRetryInterval, "How long to wait before retrying a workspace that needs a human to fix its spec or the cluster.")
	o.zap.BindFlags(fs)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	o.config.IngressNamespaces = splitList(o.ingressNamespaces)
	podLabels, err := labels.ConvertSelectorToLabelsMap(o.dnsPodLabels)
	if err != nil {
		return nil, fmt.Errorf("--dns-pod-labels: %w", err)
	}
	o.config.DNSPodLabels = podLabels
	kind, name, ok := strings.Cut(o.defaultIssuer, "/")
	if !ok || (kind != "Issuer" && kind != "ClusterIssuer") || name == "" {
		return nil, fmt.Errorf("--default-issuer %q: want Issuer/<name> or ClusterIssuer/<name>", o.defaultIssuer)
	}
	o.config.DefaultIssuer = tenancyv1alpha1.IssuerReference{Name: name, Kind: tenancyv1alpha1.IssuerKind(kind), Group: cmv1.SchemeGroupVersion.Group}
	if o.maxConcurrentReconciles < 1 {
		return nil, errors.New("--max-concurrent-reconciles must be at least 1")
	}
	return o, o.config.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// cacheSynced is ready once the informers have synced: before that the operator would
// decide from an empty cache.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informers have not synced")
		}
		return nil
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restConfig.QPS = float32(o.qps)
	restConfig.Burst = o.burst
	restConfig.UserAgent = "workspace-operator"

	metricsOptions := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.secureMetrics,
		// HTTP/2 is off to avoid the Rapid Reset and stream cancellation CVEs.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if o.secureMetrics {
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	leaseDuration := 30 * time.Second
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        controllers.Scheme(),
		Metrics:                       metricsOptions,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "workspace-operator.tenancy.workspace-operator.io",
		LeaderElectionNamespace:       o.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		Cache:                         controllers.CacheOptions(o.config),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	reconciler := &controllers.WorkspaceReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("workspace-operator"),
		Config:    o.config,
	}
	if err := reconciler.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: o.maxConcurrentReconciles}); err != nil {
		return fmt.Errorf("set up Workspace controller: %w", err)
	}
	controllers.RegisterMetrics(mgr.GetClient())

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("informers", cacheSynced(mgr.GetCache())); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}

	log.Info("starting manager", "config", o.config)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
