// Package localstack runs a real Kubernetes control plane on this machine, for the
// end-to-end suite, benchmarks and make dev: etcd and kube-apiserver, started through
// envtest, plus kube-controller-manager, whose namespace controller and garbage collector
// make namespaces really terminate. Further children, such as the operator, are started
// through the Stack and stopped with it. Everything binds to 127.0.0.1.
//
// The binaries come from KUBEBUILDER_ASSETS, which hack/controlplane.sh fills. Every child
// runs in its own process group and, on Linux, dies with the process that started it.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// startTimeout bounds how long one component may take to become healthy. The control
// plane built from source starts in a few seconds; a loaded CI machine needs more.
const startTimeout = time.Minute

// fieldOwner is the server-side apply field manager of the objects Apply creates.
const fieldOwner = "localstack"

// Options configure a Stack.
type Options struct {
	// Dir receives the admin kubeconfig, one log file per process and the control plane's
	// state, which is wiped first so that every stack starts empty. Required.
	Dir string
	// AssetsDir holds etcd, kube-apiserver, kube-controller-manager and kubectl;
	// $KUBEBUILDER_ASSETS when empty.
	AssetsDir string
	// CRDDirs hold CustomResourceDefinitions, installed and established before Start returns.
	CRDDirs []string
	// Manifests are YAML files of objects applied once the CRDs are established.
	Manifests []string
	// Node, when set, runs a node too (see NodeOptions): pods run, volumes are provisioned
	// and snapshotted, NetworkPolicies are enforced. It needs root and hack/node.sh's
	// binaries, and owns fixed host resources, so only one stack with a node runs at a time.
	Node *NodeOptions
	// LogOutput receives a line for each step of starting the stack; nil discards them.
	// The processes write their own output to log files in Dir.
	LogOutput io.Writer
}

// Stack is a running local control plane.
type Stack struct {
	dir        string
	assets     string
	kubeconfig string
	out        io.Writer
	env        *envtest.Environment
	client     client.Client
	kcm        *Process
	logFiles   []*os.File
	// node is nil when the stack runs without a node.
	node *node

	mu       sync.Mutex
	children []*Process // in start order, kube-controller-manager first

	stopOnce sync.Once
	stopErr  error
}

// Start runs etcd, kube-apiserver and kube-controller-manager, installs opts.CRDDirs and
// applies opts.Manifests. On error everything it started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Dir == "" {
		return nil, errors.New("localstack: Options.Dir is required")
	}
	assets, err := assetsDir(opts.AssetsDir)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	s := &Stack{dir: dir, assets: assets, kubeconfig: filepath.Join(dir, "kubeconfig"), out: opts.LogOutput}
	if s.out == nil {
		s.out = io.Discard
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()

	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	crdDirs := opts.CRDDirs
	if opts.Node != nil {
		nodeAssets, err := nodeAssetsDir(opts.Node.AssetsDir)
		if err != nil {
			return nil, err
		}
		snapshotCRDs, err := testenv.SnapshotCRDDir()
		if err != nil {
			return nil, err
		}
		crdDirs = append(slices.Clone(crdDirs), snapshotCRDs)
		lock, err := lockHost(ctx, s.logf)
		if err != nil {
			return nil, err
		}
		// Set before prepareHost, so that Stop cleans up the host even when preparing it fails.
		s.node = &node{assets: nodeAssets, paths: nodePaths{run: nodeRunDir, data: nodeDataDir}, lock: lock}
		if err := prepareHost(s.logf); err != nil {
			return nil, err
		}
	}
	if err := s.startAPIServer(crdDirs); err != nil {
		return nil, err
	}
	if err := s.startControllerManager(ctx); err != nil {
		return nil, err
	}
	if opts.Node != nil {
		if err := s.startNode(ctx, *opts.Node); err != nil {
			return nil, err
		}
	}
	if err := s.Apply(ctx, opts.Manifests...); err != nil {
		return nil, err
	}
	return s, nil
}

// configureAPIServerForNode makes the API server reachable from pods: it listens on the node
// address (the kubernetes Service's endpoint), with a serving certificate for the Service's
// names, service account tokens for pods and the ServiceCIDR kube-proxy serves.
func (s *Stack) configureAPIServerForNode(apiServer *envtest.APIServer) error {
	ca, err := writeAPIServerCerts(apiServer.CertDir)
	if err != nil {
		return err
	}
	port, err := freePortOn(NodeIP)
	if err != nil {
		return err
	}
	// envtest keeps an address only together with a port.
	apiServer.Address, apiServer.Port = NodeIP, port
	apiServer.CA = ca
	apiServer.Configure().
		// envtest disables it for want of a serviceaccount controller; the stack runs one.
		Disable("disable-admission-plugins").
		Set("service-cluster-ip-range", ServiceCIDR).
		// The kubernetes Service's endpoint; by default the host's first address, where the
		// API server does not listen.
		Set("advertise-address", NodeIP).
		// kubectl logs and exec reach the kubelet at the node address.
		Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}

// assetsDir is dir, or KUBEBUILDER_ASSETS, once it is known to hold every binary.
func assetsDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		return "", errors.New("KUBEBUILDER_ASSETS is not set: build the control plane with `make controlplane` and run with KUBEBUILDER_ASSETS=$(hack/controlplane.sh)")
	}
	for _, binary := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, binary)); err != nil {
			return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s (run `make controlplane`): %w", dir, binary, err)
		}
	}
	return dir, nil
}

// prepareDir creates Dir and an empty state directory for each component.
func (s *Stack) prepareDir() error {
	if err := os.RemoveAll(s.statePath()); err != nil {
		return fmt.Errorf("remove the previous stack's state: %w", err)
	}
	for _, component := range []string{"bin", "etcd", "kube-apiserver", "kube-controller-manager"} {
		if err := os.MkdirAll(s.statePath(component), 0o700); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
	}
	return nil
}

func (s *Stack) statePath(elem ...string) string {
	return filepath.Join(append([]string{s.dir, "state"}, elem...)...)
}

func (s *Stack) logPath(name string) string {
	return filepath.Join(s.dir, name+".log")
}

func (s *Stack) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(s.out, format+"\n", args...)
}

// startAPIServer has envtest start etcd and kube-apiserver, provision the admin user and
// install the CRDs, and writes the admin kubeconfig.
func (s *Stack) startAPIServer(crdDirs []string) error {
	etcdPath, err := s.launcher("etcd")
	if err != nil {
		return err
	}
	apiServerPath, err := s.launcher("kube-apiserver")
	if err != nil {
		return err
	}
	etcdLog, err := s.createLog("etcd")
	if err != nil {
		return err
	}
	apiServerLog, err := s.createLog("kube-apiserver")
	if err != nil {
		return err
	}

	apiServer := &envtest.APIServer{Path: apiServerPath, CertDir: s.statePath("kube-apiserver"), Out: apiServerLog, Err: apiServerLog}
	if s.node != nil {
		if err := s.configureAPIServerForNode(apiServer); err != nil {
			return err
		}
	}
	s.env = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			Etcd:        &envtest.Etcd{Path: etcdPath, DataDir: s.statePath("etcd"), Out: etcdLog, Err: etcdLog},
			APIServer:   apiServer,
			KubectlPath: s.KubectlPath(),
		},
		CRDDirectoryPaths:        crdDirs,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  DefaultStopTimeout,
	}
	cfg, err := s.env.Start()
	if err != nil {
		return fmt.Errorf("start etcd and kube-apiserver (logs in %s): %w", s.dir, err)
	}
	s.logf("kube-apiserver is serving at %s, with %d CRDs installed", cfg.Host, len(s.env.CRDs))

	if err := os.WriteFile(s.kubeconfig, s.env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("write admin kubeconfig: %w", err)
	}
	s.client, err = client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// launcher is the path envtest runs binary through; see dieWithParent.
func (s *Stack) launcher(binary string) (string, error) {
	path, wrapped, err := dieWithParent(filepath.Join(s.assets, binary), s.statePath("bin"))
	if err == nil && !wrapped {
		s.logf("warning: setpriv is not installed, so %s will outlive this process if it crashes", binary)
	}
	return path, err
}

// createLog creates the log file of a process that envtest starts.
func (s *Stack) createLog(name string) (*os.File, error) {
	f, err := os.Create(s.logPath(name))
	if err != nil {
		return nil, fmt.Errorf("create log file for %s: %w", name, err)
	}
	s.logFiles = append(s.logFiles, f)
	return f, nil
}

// StartProcess starts a child that Stop stops, before the control plane and in reverse
// start order. opts.LogPath defaults to <Dir>/<Name>.log.
func (s *Stack) StartProcess(opts ProcessOptions) (*Process, error) {
	if opts.LogPath == "" {
		opts.LogPath = s.logPath(opts.Name)
	}
	p, err := StartProcess(opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.children = append(s.children, p)
	return p, nil
}

// abandon stops a child that failed to start and forgets it, so that Stop does not report
// again what the start error already says.
func (s *Stack) abandon(p *Process) {
	_ = p.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.children = slices.DeleteFunc(s.children, func(child *Process) bool { return child == p })
}

// Apply server-side applies the objects in the YAML files at paths, taking ownership of
// every field they set.
func (s *Stack) Apply(ctx context.Context, paths ...string) error {
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read manifest: %w", err)
		}
		objs, err := testenv.DecodeManifests(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
		for _, obj := range objs {
			if err := s.apply(ctx, obj); err != nil {
				return fmt.Errorf("apply %s %s from %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), path, err)
			}
		}
		s.logf("applied %s", path)
	}
	return nil
}

func (s *Stack) apply(ctx context.Context, obj client.Object) error {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	config := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: content})
	return s.client.Apply(ctx, config, client.FieldOwner(fieldOwner), client.ForceOwnership)
}

// Config is a client configuration for the admin user, a member of system:masters.
func (s *Stack) Config() *rest.Config {
	return rest.CopyConfig(s.env.Config)
}

// KubeconfigPath is the admin user's kubeconfig file.
func (s *Stack) KubeconfigPath() string {
	return s.kubeconfig
}

// Dir is the directory holding the stack's kubeconfig, logs and state.
func (s *Stack) Dir() string {
	return s.dir
}

// KubectlPath is the kubectl built with the control plane.
func (s *Stack) KubectlPath() string {
	return filepath.Join(s.assets, "kubectl")
}

// Kubectl is a kubectl command against the stack as the admin user.
func (s *Stack) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, s.KubectlPath(), append([]string{"--kubeconfig=" + s.kubeconfig}, args...)...)
}

// ControllerManager is the kube-controller-manager process.
func (s *Stack) ControllerManager() *Process {
	return s.kcm
}

// LogFiles are the log files of the control plane and of every child started through
// the stack, in start order.
func (s *Stack) LogFiles() []string {
	logs := []string{s.logPath("etcd"), s.logPath("kube-apiserver")}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, child := range s.children {
		logs = append(logs, child.LogPath())
	}
	return logs
}

// Stop stops every child started through the stack in reverse start order, then
// kube-apiserver and etcd. It is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Stack) stop() error {
	s.mu.Lock()
	children := s.children
	s.mu.Unlock()

	var errs []error
	for i := len(children) - 1; i >= 0; i-- {
		if err := children[i].Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.node != nil {
		// The containers outlive the kubelet and containerd; CoreDNS and the operator's pods
		// hold watches that would keep the API server from shutting down.
		if _, err := killNodeProcesses(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop kube-apiserver and etcd: %w", err))
		}
	}
	for _, f := range s.logFiles {
		_ = f.Close()
	}
	if s.node != nil {
		if err := cleanupHost(s.logf); err != nil {
			errs = append(errs, fmt.Errorf("remove the node from the host: %w", err))
		}
		_ = s.node.lock.Close()
	}
	return errors.Join(errs...)
}
