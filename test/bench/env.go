package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// The regions of the workspaces' keys and buckets: two, as in production, so that every
// workspace has a key and two buckets in each.
const (
	awsRegion        = "eu-west-1"
	awsReplicaRegion = "eu-central-1"
	replicationRole  = "arn:aws:iam::000000000000:role/workspace-replication"
)

// env is the running stack and the clients the phases share.
type env struct {
	cfg      config
	stack    *localstack.Stack
	aws      *awsemu.Server
	operator string // binary

	client    client.Client // no rate limit, every request counted
	dynamic   dynamic.Interface
	discovery discovery.DiscoveryInterface
	rest      rest.Interface // for the API server's /metrics
	requests  *requestCounter
	tracker   *tracker

	// pids are the processes whose CPU time each phase reports.
	pids map[string]int
}

func startEnv(ctx context.Context, cfg config) (_ *env, err error) {
	// envtest and the cache log through controller-runtime, which complains without a logger.
	ctrllog.SetLogger(logr.Discard())
	e := &env{cfg: cfg, requests: newRequestCounter()}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.stop())
		}
	}()

	if e.operator, err = operatorBinary(ctx, cfg); err != nil {
		return nil, err
	}
	certManagerCRDs, err := testenv.CertManagerCRDDir()
	if err != nil {
		return nil, err
	}
	logf("starting etcd, kube-apiserver and kube-controller-manager in %s", cfg.dir)
	e.stack, err = localstack.Start(ctx, localstack.Options{
		Dir:       cfg.dir,
		CRDDirs:   []string{testenv.OperatorCRDDir(), certManagerCRDs},
		Manifests: []string{testenv.OwnerRoleFile(), testenv.StorageClassPolicyFile()},
	})
	if err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	// In this process rather than as cmd/awsemu, so that Calls counts every AWS request.
	if e.aws, err = awsemu.Start(awsemu.Options{}); err != nil {
		return nil, err
	}
	if err := e.connect(ctx); err != nil {
		return nil, err
	}
	if err := e.findProcesses(); err != nil {
		return nil, err
	}
	return e, nil
}

// operatorBinary is -operator, or the operator freshly built from this checkout.
func operatorBinary(ctx context.Context, cfg config) (string, error) {
	if cfg.operatorBinary != "" {
		return cfg.operatorBinary, nil
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(cfg.dir, "manager")
	logf("building the operator into %s", path)
	if err := localstack.BuildBinary(ctx, ".", path); err != nil {
		return "", err
	}
	return path, nil
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}

// connect builds the bench's clients: admin, with no client-side rate limit, so that the
// floor is bounded by the API server alone, and counting every request, so that the
// bench's own requests can be told apart from the operator's at the API server.
func (e *env) connect(ctx context.Context) error {
	cfg := e.stack.Config()
	cfg.QPS = -1 // a negative QPS disables client-go's token bucket
	cfg.UserAgent = "workspace-operator-bench"
	// Listing every resource for the calibration would print deprecation warnings.
	cfg.WarningHandler = rest.NoWarnings{}
	cfg.Wrap(e.requests.wrap)
	// The API server's /metrics can take long to answer while it works off a backlog.
	cfg.Timeout = 2 * time.Minute

	var err error
	if e.client, err = client.New(cfg, client.Options{Scheme: scheme()}); err != nil {
		return err
	}
	if e.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	e.discovery, e.rest = dc, dc.RESTClient()
	e.tracker, err = startTracker(ctx, cfg)
	return err
}

func (e *env) findProcesses() error {
	e.pids = map[string]int{"kube-controller-manager": e.stack.ControllerManager().Pid(), "bench": os.Getpid()}
	for _, binary := range []string{"etcd", "kube-apiserver"} {
		pid, err := findStackProcess(binary, e.stack.Dir())
		if err != nil {
			return err
		}
		e.pids[binary] = pid
	}
	return nil
}

// cpuNow reads the CPU time of every process of the stack, and of op when there is one.
func (e *env) cpuNow(op *runningOperator) map[string]time.Duration {
	if op == nil {
		return cpuTimes(e.pids)
	}
	return cpuTimes(withPid(e.pids, "operator", op.Pid()))
}

func (e *env) stop() error {
	var errs []error
	if e.tracker != nil {
		e.tracker.stop()
	}
	if e.aws != nil {
		errs = append(errs, e.aws.Close())
	}
	if e.stack != nil {
		errs = append(errs, e.stack.Stop())
	}
	return errors.Join(errs...)
}

// operatorFlags are the settings the bench varies; everything else is the operator's default.
type operatorFlags struct {
	MaxConcurrentReconciles int     `json:"maxConcurrentReconciles,omitempty"`
	KubeAPIQPS              float64 `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst            int     `json:"kubeAPIBurst,omitempty"`
	// Defaults says the operator ran with its own defaults for the three settings above.
	Defaults bool `json:"defaults"`
}

func (f operatorFlags) args() []string {
	if f.Defaults {
		return nil
	}
	return []string{
		"--max-concurrent-reconciles=" + strconv.Itoa(f.MaxConcurrentReconciles),
		"--kube-api-qps=" + strconv.FormatFloat(f.KubeAPIQPS, 'f', -1, 64),
		"--kube-api-burst=" + strconv.Itoa(f.KubeAPIBurst),
	}
}

// runningOperator is an operator process started for one phase.
type runningOperator struct {
	*localstack.Operator
	logName string
	stack   *localstack.Stack
	// pprofURL is the operator's /debug/pprof/ with -pprof, else empty.
	pprofURL string
}

// startOperator runs the operator binary as in production, against the stack's admin
// kubeconfig and the AWS emulator in both regions. Its log ends up in <dir>/<logName>.log,
// where logName must not be "operator": the stack writes every operator's log to
// operator.log, truncating it. With -pprof it serves pprof on a free loopback port.
func (e *env) startOperator(ctx context.Context, flags operatorFlags, logName string) (*runningOperator, error) {
	args := append([]string{
		"--aws-region=" + awsRegion,
		"--aws-replica-region=" + awsReplicaRegion,
		"--replication-role-arn=" + replicationRole,
		"--aws-drift-check-interval=" + e.cfg.driftInterval.String(),
	}, flags.args()...)
	var pprofURL string
	if e.cfg.pprof {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--pprof-bind-address=127.0.0.1:"+port)
		pprofURL = "http://127.0.0.1:" + port + "/debug/pprof/"
	}
	start := time.Now()
	env := append(awsClientEnv(), localstack.EndpointEnv(e.aws.URL())...)
	if e.cfg.goMemLimit != "" {
		env = append(env, "GOMEMLIMIT="+e.cfg.goMemLimit)
	}
	op, err := e.stack.StartOperator(ctx, localstack.OperatorOptions{Binary: e.operator, Args: args, Env: env})
	if err != nil {
		return nil, err
	}
	logf("operator %s ready in %s (pid %d) with %v", logName, time.Since(start).Round(time.Millisecond), op.Pid(), flags.args())
	return &runningOperator{Operator: op, logName: logName, stack: e.stack, pprofURL: pprofURL}, nil
}

// stop stops the operator and keeps its log under its phase's name: every operator the
// stack starts logs to the same file. Its figures are taken by then, so an operator that
// has to be killed is reported, not failed.
func (o *runningOperator) stop() {
	if err := o.Stop(); err != nil {
		logf("%s: %v", o.logName, err)
	}
	if err := os.Rename(o.LogPath(), filepath.Join(o.stack.Dir(), o.logName+".log")); err != nil {
		logf("%s: keep log: %v", o.logName, err)
	}
}

// waitIdle waits until the operator's Workspace work queue is empty and no reconcile is
// in flight, twice in a row. An operator too busy to answer a scrape is not idle.
func (o *runningOperator) waitIdle(ctx context.Context) error {
	idle := 0
	for idle < 2 {
		f, err := scrapeHTTP(ctx, o.MetricsURL())
		depth := f.sumBy("workqueue_depth", "name")["workspace"]
		inFlight := f.sumBy("workqueue_unfinished_work_seconds", "name")["workspace"]
		if err == nil && depth == 0 && inFlight == 0 {
			idle++
		} else {
			idle = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator's work queue did not drain: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// awsClientEnv makes the SDK's default credential chain use credentials the emulator
// accepts, never the user's AWS configuration or the instance metadata service; it is
// localstack.AWSEmulator.ClientEnv, for the emulator running in this process.
func awsClientEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + awsemu.TestAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + awsemu.TestSecretAccessKey,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

var benchStart = time.Now()

// logf reports progress on stderr, stamped with the time since the bench started.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, args...))
}
