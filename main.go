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
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/controllers"
	"github.com/workspace-operator/workspace-operator/internal/backup"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/internal/datamover"
)

func main() {
	// The backup CronJobs run this same binary as the backup agent, so that there is no
	// second image to patch.
	if len(os.Args) > 1 && (os.Args[1] == "backup" || os.Args[1] == "restore") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := backup.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "workspace-operator:", err)
			os.Exit(1)
		}
		return
	}
	// A backup CronJob's Job in the mover namespace asks the operator for a run and waits.
	if len(os.Args) > 1 && os.Args[1] == "request-backup" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := datamover.RequestMain(ctx, os.Args[2:], inClusterClient, os.Stderr)
		stop()
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "workspace-operator:", err)
			os.Exit(1)
		}
		return
	}
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
	pprofAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	maxConcurrentReconciles int
	qps                     float64
	burst                   int
	defaultIssuer           string
	ingressNamespaces       string
	clusterPodCIDRs         string
	clusterServiceCIDRs     string
	dnsPodLabels            string
	storageParameters       string
	s3PathStyle             bool
	kmsAliasPrefix          string
	kmsKeyPolicyFile        string
	bucketPrefix            string
	backupCommand           string
	config                  controllers.Config
	mover                   datamover.Config
	zap                     zap.Options
}

func parseFlags(args []string) (*options, error) {
	defaults := controllers.DefaultConfig()
	o := &options{config: defaults}
	fs := flag.NewFlagSet("workspace-operator", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 disables it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized by the API server.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address the Go profiling endpoints (/debug/pprof/) bind to, e.g. 127.0.0.1:6060; empty disables them. "+
		"Off by default: they serve profiles, goroutine stacks and the command line with no authentication, so bind to loopback and reach them with kubectl port-forward.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that several replicas can run with one active.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's namespace.")
	// The defaults keep the client from being the bottleneck when a thousand workspaces
	// arrive at once (make bench); the API server's priority and fairness protects it.
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 16, "Workspaces reconciled in parallel.")
	fs.Float64Var(&o.qps, "kube-api-qps", 1000, "Sustained requests per second to the API server.")
	fs.IntVar(&o.burst, "kube-api-burst", 2000, "Burst of requests to the API server.")
	fs.StringVar(&o.config.NamespacePrefix, "namespace-prefix", defaults.NamespacePrefix, "Prefix of a workspace's namespace name, before the Workspace name.")
	fs.StringVar(&o.ingressNamespaces, "ingress-namespaces", strings.Join(defaults.IngressNamespaces, ","), "Comma-separated namespaces allowed to send ingress traffic to workspaces that name none.")
	fs.StringVar(&o.clusterPodCIDRs, "cluster-pod-cidrs", "", "Comma-separated pod CIDRs of the cluster, cut out of every workspace egress rule.")
	fs.StringVar(&o.clusterServiceCIDRs, "cluster-service-cidrs", "", "Comma-separated Service CIDRs of the cluster, cut out of every workspace egress rule.")
	fs.StringVar(&o.config.DNSNamespace, "dns-namespace", defaults.DNSNamespace, "Namespace of the cluster DNS pods.")
	fs.StringVar(&o.dnsPodLabels, "dns-pod-labels", labels.Set(defaults.DNSPodLabels).String(), "Comma-separated key=value labels selecting the cluster DNS pods.")
	fs.StringVar(&o.defaultIssuer, "default-issuer", "ClusterIssuer/"+defaults.DefaultIssuer.Name, "cert-manager issuer for workspaces that name none, as Kind/name (Issuer or ClusterIssuer).")
	fs.StringVar(&o.config.OwnerClusterRole, "owner-cluster-role", defaults.OwnerClusterRole, "ClusterRole bound to workspace owners in their namespace.")
	fs.DurationVar(&o.config.StalledRetryInterval, "stalled-retry-interval", defaults.StalledRetryInterval, "How long to wait before retrying a workspace that needs a human to fix its spec or the cluster.")
	storage := &o.config.Storage
	fs.StringVar(&storage.ClusterName, "cluster-name", defaults.Storage.ClusterName, "Name of this cluster, tagged on every AWS resource so that clusters sharing an account never adopt each other's.")
	fs.StringVar(&storage.Region, "aws-region", "", "AWS region of the workspaces' primary keys and buckets. Without it, workspaces report that encryption is not configured.")
	fs.StringVar(&storage.ReplicaRegion, "aws-replica-region", "", "Second AWS region holding a replica bucket and key per workspace.")
	fs.StringVar(&storage.ReplicationRoleARN, "replication-role-arn", "", "IAM role S3 replication assumes; required with --aws-replica-region.")
	fs.BoolVar(&o.s3PathStyle, "aws-s3-path-style", false, "Address S3 buckets in the URL path (https://host/bucket) rather than the host name, for S3-compatible servers "+
		"without wildcard DNS; the backup agent gets it too. Endpoints themselves come from the AWS SDK's configuration (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_KMS, ...).")
	fs.DurationVar(&storage.DriftCheckInterval, "aws-drift-check-interval", defaults.Storage.DriftCheckInterval, "How often each workspace's keys and buckets are read back from AWS and repaired (jittered).")
	fs.StringVar(&o.kmsAliasPrefix, "kms-alias-prefix", "workspace-operator", "Workspace keys get the alias alias/<prefix>/<cluster>/<workspace>.")
	fs.StringVar(&o.kmsKeyPolicyFile, "kms-key-policy-file", "", "JSON key policy for workspace keys; empty keeps KMS's default policy.")
	fs.StringVar(&o.bucketPrefix, "bucket-prefix", "wso", "Prefix of workspace bucket names, which must be unique across AWS.")
	fs.StringVar(&storage.Provisioner, "storage-provisioner", defaults.Storage.Provisioner, "CSI provisioner of the workspaces' encrypted StorageClasses.")
	fs.StringVar(&o.storageParameters, "storage-parameters", labels.Set(defaults.Storage.Parameters).String(), "Comma-separated key=value parameters of the encrypted StorageClasses.")
	fs.StringVar(&storage.KeyParameter, "storage-kms-key-parameter", defaults.Storage.KeyParameter, "StorageClass parameter that receives the workspace key ARN.")
	fs.StringVar(&storage.VolumeDriverRoleARN, "volume-driver-role-arn", "", "IAM role of the volume driver (EBS CSI controller); when set, EncryptionReady turns True only once a key's policy proves that role may use the key.")
	fs.StringVar(&storage.WorkloadRoleARNTemplate, "workload-role-arn-template", "", "Go template of the IAM role ARN a workspace's ServiceAccount assumes, over .Workspace, .Namespace and .Cluster.")
	backup := &o.config.Backup
	fs.StringVar(&backup.Image, "backup-image", envOr("OPERATOR_IMAGE", defaults.Backup.Image), "Image of the backup agent: the operator's own (the chart sets OPERATOR_IMAGE to it).")
	fs.StringVar(&o.backupCommand, "backup-command", strings.Join(defaults.Backup.Command, " "), "Path of the operator binary in that image.")
	fs.Var(int32Flag{&backup.MaxRetentionDays}, "backup-max-retention-days", "Policy maximum of backup retention in days; workspaces may only lower it.")
	fs.IntVar(&backup.Hour, "backup-hour", defaults.Backup.Hour, "UTC hour of the default daily backup schedule.")
	fs.DurationVar(&backup.StaleAfter, "backup-stale-after", defaults.Backup.StaleAfter, "Age of the last successful backup after which BackupsHealthy turns False.")
	fs.DurationVar(&o.config.PurgeWindow, "purge-window", defaults.PurgeWindow, "How long a deleted workspace's data stays recoverable before it is destroyed: whole days from 7 to 30 (KMS's bounds), never shorter than the backup retention.")
	fs.DurationVar(&o.config.PurgeAuditPeriod, "purge-audit-period", defaults.PurgeAuditPeriod, "How long a WorkspacePurge record is kept after the purge, as evidence.")
	fs.StringVar(&backup.RoleARNTemplate, "backup-role-arn-template", "", "Go template of the IAM role ARN the backup ServiceAccount assumes, over .Workspace, .Namespace and .Cluster.")
	moverDefaults := datamover.DefaultConfig()
	fs.StringVar(&o.mover.Namespace, "mover-namespace", "", "Namespace of the snapshot data mover (privileged, the operator's own; e.g. "+moverDefaults.Namespace+"), which runs WorkspaceBackups; empty disables it. Needs the snapshot.storage.k8s.io CRDs and a snapshot-controller.")
	fs.IntVar(&o.mover.Concurrency, "mover-concurrency", moverDefaults.Concurrency, "Volumes the data mover backs up at once, across every workspace: each holds a snapshot, a temporary volume and a pod.")
	fs.DurationVar(&o.mover.VolumeTimeout, "mover-volume-timeout", moverDefaults.VolumeTimeout, "How long one volume's backup may take, from its snapshot to the end of its upload.")
	o.zap.BindFlags(fs)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	o.config.IngressNamespaces = splitList(o.ingressNamespaces)
	o.config.ClusterCIDRs = append(splitList(o.clusterPodCIDRs), splitList(o.clusterServiceCIDRs)...)
	podLabels, err := labels.ConvertSelectorToLabelsMap(o.dnsPodLabels)
	if err != nil {
		return nil, fmt.Errorf("--dns-pod-labels: %w", err)
	}
	o.config.DNSPodLabels = podLabels
	parameters, err := labels.ConvertSelectorToLabelsMap(o.storageParameters)
	if err != nil {
		return nil, fmt.Errorf("--storage-parameters: %w", err)
	}
	o.config.Storage.Parameters = parameters
	o.config.Backup.Command = strings.Fields(o.backupCommand)
	o.config.Backup.S3PathStyle = o.s3PathStyle
	o.config.Backup.Env = controllers.AWSEndpointEnv(os.Environ())
	o.mover.Image, o.mover.Command = o.config.Backup.Image, o.config.Backup.Command
	o.mover.Env, o.mover.S3PathStyle = o.config.Backup.Env, o.s3PathStyle
	o.mover.SlotRetry = datamover.DefaultConfig().SlotRetry
	o.mover.RoleARN = o.config.BackupRoleARN
	o.config.Backup.MoverNamespace = o.mover.Namespace
	kind, name, ok := strings.Cut(o.defaultIssuer, "/")
	if !ok || (kind != "Issuer" && kind != "ClusterIssuer") || name == "" {
		return nil, fmt.Errorf("--default-issuer %q: want Issuer/<name> or ClusterIssuer/<name>", o.defaultIssuer)
	}
	o.config.DefaultIssuer = tenancyv1alpha1.IssuerReference{Name: name, Kind: tenancyv1alpha1.IssuerKind(kind), Group: cmv1.SchemeGroupVersion.Group}
	if o.maxConcurrentReconciles < 1 {
		return nil, errors.New("--max-concurrent-reconciles must be at least 1")
	}
	if o.mover.Namespace != "" {
		if err := o.mover.Validate(); err != nil {
			return nil, err
		}
	}
	return o, o.config.Validate()
}

// inClusterClient reaches the API server as the pod's ServiceAccount (or the kubeconfig).
func inClusterClient() (client.Client, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return client.New(cfg, client.Options{Scheme: controllers.Scheme()})
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// int32Flag is a flag.Value for an int32 setting.
type int32Flag struct{ p *int32 }

func (f int32Flag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(int(*f.p))
}

func (f int32Flag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return err
	}
	*f.p = int32(v)
	return nil
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

// awsServices builds the KMS and S3 clients, one per region, and logs where each sends
// its requests.
func awsServices(ctx context.Context, o *options, log logr.Logger) (*cloud.Keys, *cloud.Buckets, error) {
	policy := ""
	if o.kmsKeyPolicyFile != "" {
		data, err := os.ReadFile(o.kmsKeyPolicyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--kms-key-policy-file: %w", err)
		}
		policy = string(data)
	}
	kmsClients, s3Clients := map[string]cloud.KMS{}, map[string]cloud.S3{}
	for _, region := range []string{o.config.Storage.Region, o.config.Storage.ReplicaRegion} {
		if region == "" {
			continue
		}
		k, s, err := awsClients(ctx, region, o.s3PathStyle)
		if err != nil {
			return nil, nil, err
		}
		// The SDK applies a configured endpoint to every region: say where each goes, so
		// that a replica region sent to the primary's VPC endpoint shows at start.
		log.Info("AWS endpoints", "region", region, "kms", endpointOf(k.Options().BaseEndpoint),
			"s3", endpointOf(s.Options().BaseEndpoint), "s3PathStyle", s.Options().UsePathStyle)
		kmsClients[region], s3Clients[region] = k, s
	}
	return cloud.NewKeys(kmsClients, o.kmsAliasPrefix, policy), cloud.NewBuckets(s3Clients, o.bucketPrefix), nil
}

// awsClients builds the KMS and S3 clients of a region through the SDK's default
// configuration chain: credentials from IRSA or EKS Pod Identity in a cluster, and
// endpoints from AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and the
// shared config file, which each client resolves for its own service.
func awsClients(ctx context.Context, region string, s3PathStyle bool) (*kms.Client, *s3.Client, error) {
	cfg, err := cloud.LoadConfig(ctx, region)
	if err != nil {
		return nil, nil, err
	}
	return kms.NewFromConfig(cfg), s3.NewFromConfig(cfg, func(opts *s3.Options) { opts.UsePathStyle = s3PathStyle }), nil
}

func endpointOf(base *string) string {
	if base == nil {
		return "AWS default"
	}
	return *base
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
	limitMemoryToContainer(log)

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
		PprofBindAddress:              o.pprofAddr,
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

	clk := operatorClock(log)
	reconciler := &controllers.WorkspaceReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("workspace-operator"),
		Config:    o.config,
		Clock:     clk,
	}
	purges := &controllers.WorkspacePurgeReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("workspace-operator"),
		AuditPeriod: o.config.PurgeAuditPeriod,
		Clock:       clk,
	}
	if o.config.Storage.Region != "" {
		keys, buckets, err := awsServices(context.Background(), o, log)
		if err != nil {
			return err
		}
		// Assigned only here: a nil *cloud.Keys in the interface would not read as nil.
		reconciler.Keys, reconciler.Buckets = keys, buckets
		purges.Keys, purges.Buckets = keys, buckets
	} else {
		log.Info("no --aws-region: workspaces will report that encryption is not configured")
	}
	if err := reconciler.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: o.maxConcurrentReconciles}); err != nil {
		return fmt.Errorf("set up Workspace controller: %w", err)
	}
	if err := purges.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: o.maxConcurrentReconciles}); err != nil {
		return fmt.Errorf("set up WorkspacePurge controller: %w", err)
	}
	if o.mover.Namespace != "" {
		executor, err := datamover.NewAPIExecutor(mgr.GetConfig())
		if err != nil {
			return fmt.Errorf("set up the pre-backup hook executor: %w", err)
		}
		mover := &datamover.Reconciler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Recorder:  mgr.GetEventRecorder("workspace-operator"),
			Config:    o.mover,
			Clock:     clk,
			Executor:  executor,
		}
		if err := mover.SetupWithManager(mgr, controller.Options{}); err != nil {
			return fmt.Errorf("set up WorkspaceBackup controller: %w", err)
		}
		restores := &datamover.RestoreReconciler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Recorder:  mgr.GetEventRecorder("workspace-operator"),
			Clock:     clk,
			Config:    o.mover,
		}
		if err := restores.SetupWithManager(mgr, controller.Options{}); err != nil {
			return fmt.Errorf("set up WorkspaceRestore controller: %w", err)
		}
	}
	controllers.RegisterMetrics(mgr.GetClient(), clk)

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
