package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/workspace-operator/workspace-operator/internal/localstack/csidriver"
)

// NodeAssetsEnv names the directory hack/node.sh prints, which holds the node's binaries.
const NodeAssetsEnv = "WORKSPACE_OPERATOR_NODE_ASSETS"

// NodeModeEnv set to "off" runs the stack without a node, on machines that cannot run one
// (no root, no cgroups to spare). Tests that need pods to run skip, saying why.
const NodeModeEnv = "WORKSPACE_OPERATOR_NODE"

// cniBinDir is where Debian's containernetworking-plugins installs the CNI plugins.
const cniBinDir = "/usr/lib/cni"

// nodeStartTimeout bounds how long the node may take to become Ready with its system pods
// running; about 20 seconds on an idle machine.
const nodeStartTimeout = 3 * time.Minute

// NodeOptions configure the stack's node.
type NodeOptions struct {
	// AssetsDir holds containerd, kubelet and the other binaries hack/node.sh builds;
	// $WORKSPACE_OPERATOR_NODE_ASSETS when empty.
	AssetsDir string
	// Images are image archives (see WriteImage) imported into the node's containerd
	// before Start returns, besides the stack's own (pause, CoreDNS, probe).
	Images []string
}

// NodeFromEnvironment is the node the environment asks for: nil, with the reason, when
// WORKSPACE_OPERATOR_NODE=off; otherwise a node built from $WORKSPACE_OPERATOR_NODE_ASSETS.
func NodeFromEnvironment() (*NodeOptions, string) {
	if os.Getenv(NodeModeEnv) == "off" {
		return nil, NodeModeEnv + "=off: the stack runs no node, so no pod runs, no volume is provisioned and no NetworkPolicy is enforced"
	}
	return &NodeOptions{}, ""
}

// node is the running node's configuration.
type node struct {
	assets string
	paths  nodePaths
	// lock is held from before the host is prepared until it is cleaned up.
	lock *os.File
}

// nodeAssetsDir is dir, or $WORKSPACE_OPERATOR_NODE_ASSETS, once it is known to hold every
// binary, and the host tools the node needs.
func nodeAssetsDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(NodeAssetsEnv)
	}
	if dir == "" {
		return "", fmt.Errorf("%s is not set: build the node with `make node` and run with %s=$(hack/node.sh), or set %s=off to run without a node",
			NodeAssetsEnv, NodeAssetsEnv, NodeModeEnv)
	}
	for _, binary := range nodeBinaries {
		if _, err := os.Stat(filepath.Join(dir, binary)); err != nil {
			return "", fmt.Errorf("%s=%s has no %s (run `make node`): %w", NodeAssetsEnv, dir, binary, err)
		}
	}
	for _, tool := range []string{"runc", "iptables", "ipset", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("the node needs %s on PATH (hack/node-packages.sh installs it): %w", tool, err)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, plugin)); err != nil {
			return "", fmt.Errorf("the node needs the CNI plugin %s in %s (hack/node-packages.sh installs it): %w", plugin, cniBinDir, err)
		}
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("the node needs root (it creates cgroups, iptables rules and a bridge); run as root or set %s=off", NodeModeEnv)
	}
	return dir, nil
}

// nodeBinaries are hack/node.sh's outputs.
var nodeBinaries = []string{
	"containerd", "ctr", "containerd-shim-runc-v2", "kubelet", "kube-scheduler", "kube-proxy",
	"kube-router", "coredns", "csi-provisioner", "csi-snapshotter", "snapshot-controller",
}

// startNode runs the node's components in dependency order: containerd with the stack's
// images, the kubelet, kube-scheduler, kube-proxy, kube-router, the CSI driver and its
// sidecars, the snapshot controller and CoreDNS, and waits until the node is Ready and CoreDNS
// answers.
func (s *Stack) startNode(ctx context.Context, opts NodeOptions) error {
	ctx, cancel := context.WithTimeout(ctx, nodeStartTimeout)
	defer cancel()
	n := s.node
	for _, dir := range []string{n.paths.cniConfDir(), filepath.Join(n.paths.run, "containerd"), n.paths.kubeletRoot()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err := s.startContainerd(ctx); err != nil {
		return err
	}
	images, err := s.stackImages(ctx)
	if err != nil {
		return err
	}
	if err := s.importImages(ctx, append(images, opts.Images...)...); err != nil {
		return err
	}
	steps := []func(context.Context) error{
		s.startKubelet, s.startScheduler, s.startKubeProxy, s.startKubeRouter, s.startCSI, s.startCoreDNS,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return s.waitNodeReady(ctx)
}

// componentKubeconfig provisions a client-certificate user for a node component and writes
// its kubeconfig under the node's run directory, where cleanup finds it. Node components are
// members of system:masters: the local control plane runs RBAC only, without the Node
// authorizer, and the node is trusted like the admin.
func (s *Stack) componentKubeconfig(name, user string, groups ...string) (string, error) {
	u, err := s.env.ControlPlane.AddUser(envtest.User{Name: user, Groups: append(groups, "system:masters")}, nil)
	if err != nil {
		return "", fmt.Errorf("provision the %s user: %w", name, err)
	}
	kubeconfig, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("%s kubeconfig: %w", name, err)
	}
	path := filepath.Join(s.node.paths.run, "kubeconfig-"+name)
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return "", fmt.Errorf("write %s kubeconfig: %w", name, err)
	}
	return path, nil
}

func (s *Stack) nodeBinary(name string) string {
	return filepath.Join(s.node.assets, name)
}

// startContainerd runs containerd with runc and the CNI plugins from the host, and waits
// until it answers on its socket.
func (s *Stack) startContainerd(ctx context.Context) error {
	p := s.node.paths
	if err := os.WriteFile(p.containerdConfig(), []byte(containerdConfig(p, cniBinDir)), 0o600); err != nil {
		return err
	}
	cni, err := cniConfig(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.cniConfDir(), "10-localstack.conflist"), cni, 0o600); err != nil {
		return err
	}
	proc, err := s.StartProcess(ProcessOptions{
		Name: "containerd",
		Path: s.nodeBinary("containerd"),
		Args: []string{"--config=" + p.containerdConfig()},
		Env:  []string{hostPathEnv(os.Getenv("PATH"), s.node.assets, "/usr/sbin", "/sbin")},
		// Containers outlive a containerd that exits; the node's cleanup kills them.
		StopTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	err = s.waitFor(ctx, proc, "containerd to answer", func(ctx context.Context) (bool, error) {
		return s.ctr(ctx, "version") == nil, nil
	})
	if err != nil {
		s.abandon(proc)
		return err
	}
	s.logf("containerd is running")
	return nil
}

// ctr runs ctr against the node's containerd, in the namespace the CRI uses.
func (s *Stack) ctr(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, s.nodeBinary("ctr"),
		append([]string{"--address=" + s.node.paths.containerdSocket(), "--namespace=k8s.io"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// importImages imports image archives into containerd, where the kubelet finds them without
// a registry.
func (s *Stack) importImages(ctx context.Context, archives ...string) error {
	for _, archive := range archives {
		if err := s.ctr(ctx, "images", "import", archive); err != nil {
			return fmt.Errorf("import image %s: %w", archive, err)
		}
	}
	s.logf("imported %d images", len(archives))
	return nil
}

// ImportImages imports image archives (see WriteImage) into the node.
func (s *Stack) ImportImages(ctx context.Context, archives ...string) error {
	if s.node == nil {
		return errors.New("the stack has no node to import images into")
	}
	return s.importImages(ctx, archives...)
}

// VolumeDir is the host directory that holds the files of the node's CSI volume with this
// handle (a PersistentVolume's spec.csi.volumeHandle): a benchmark fills a volume there
// without a pod to copy through.
func (s *Stack) VolumeDir(handle string) (string, error) {
	if s.node == nil {
		return "", errors.New("the stack has no node, hence no volumes")
	}
	dir := csidriver.VolumeDir(s.node.paths.csiDir(), handle)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("volume %s: %w", handle, err)
	}
	return dir, nil
}

// HasNode tells whether the stack runs a node.
func (s *Stack) HasNode() bool {
	return s.node != nil
}

// startKubelet runs the kubelet, which registers the node with the zone label.
func (s *Stack) startKubelet(ctx context.Context) error {
	p := s.node.paths
	kubeconfig, err := s.componentKubeconfig("kubelet", "system:node:"+NodeName, "system:nodes")
	if err != nil {
		return err
	}
	serving, err := freePort()
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	resolvConf := filepath.Join(p.run, "resolv.conf")
	// Pods get the cluster DNS; the node's own resolver is never used by them, and the host's
	// may point at an address pods cannot reach.
	if err := os.WriteFile(resolvConf, []byte("nameserver "+ClusterDNSIP+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(p.kubeletConfig(), []byte(kubeletConfig(p, kubeletPorts{serving: serving, healthz: healthz}, resolvConf)), 0o600); err != nil {
		return err
	}
	proc, err := s.StartProcess(ProcessOptions{
		Name: "kubelet",
		Path: s.nodeBinary("kubelet"),
		Args: []string{
			"--config=" + p.kubeletConfig(),
			"--kubeconfig=" + kubeconfig,
			"--hostname-override=" + NodeName,
			"--node-ip=" + NodeIP,
			"--root-dir=" + p.kubeletRoot(),
			"--cert-dir=" + filepath.Join(p.kubeletRoot(), "pki"),
			"--node-labels=topology.kubernetes.io/zone=" + NodeZone,
		},
		Env: []string{hostPathEnv(os.Getenv("PATH"), "/usr/sbin", "/sbin")},
	})
	if err != nil {
		return err
	}
	if err := proc.WaitHealthy(ctx, "http://127.0.0.1:"+healthz+"/healthz"); err != nil {
		s.abandon(proc)
		return err
	}
	s.logf("kubelet is running")
	return nil
}

// startScheduler runs kube-scheduler: without it no Job or Deployment pod is ever placed.
func (s *Stack) startScheduler(ctx context.Context) error {
	kubeconfig, err := s.componentKubeconfig("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	proc, err := s.StartProcess(ProcessOptions{
		Name: "kube-scheduler",
		Path: s.nodeBinary("kube-scheduler"),
		Args: []string{
			"--kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--cert-dir=" + filepath.Join(s.node.paths.run, "kube-scheduler"),
		},
		StopExitCode: 1,
	})
	if err != nil {
		return err
	}
	if err := proc.WaitHealthy(ctx, "https://127.0.0.1:"+port+"/healthz"); err != nil {
		s.abandon(proc)
		return err
	}
	s.logf("kube-scheduler is running")
	return nil
}

// startKubeProxy runs kube-proxy in iptables mode: Services, including the cluster DNS and
// the kubernetes Service pods reach the API server through.
func (s *Stack) startKubeProxy(ctx context.Context) error {
	kubeconfig, err := s.componentKubeconfig("kube-proxy", "system:kube-proxy")
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	config := s.node.paths.kubeProxyConfig()
	if err := os.WriteFile(config, []byte(kubeProxyConfig(kubeconfig, healthz, metrics)), 0o600); err != nil {
		return err
	}
	proc, err := s.StartProcess(ProcessOptions{
		Name: "kube-proxy",
		Path: s.nodeBinary("kube-proxy"),
		Args: []string{"--config=" + config},
		Env:  []string{hostPathEnv(os.Getenv("PATH"), "/usr/sbin", "/sbin")},
	})
	if err != nil {
		return err
	}
	if err := proc.WaitHealthy(ctx, "http://127.0.0.1:"+metrics+"/metrics"); err != nil {
		s.abandon(proc)
		return err
	}
	s.logf("kube-proxy is running")
	return nil
}

// startKubeRouter runs kube-router as the NetworkPolicy engine.
func (s *Stack) startKubeRouter(ctx context.Context) error {
	kubeconfig, err := s.componentKubeconfig("kube-router", "system:kube-router")
	if err != nil {
		return err
	}
	health, err := freePort()
	if err != nil {
		return err
	}
	proc, err := s.StartProcess(ProcessOptions{
		Name: "kube-router",
		Path: s.nodeBinary("kube-router"),
		Args: kubeRouterArgs(kubeconfig, health),
		Env:  []string{hostPathEnv(os.Getenv("PATH"), "/usr/sbin", "/sbin")},
		// SIGTERM reaches the iptables commands kube-router runs too (the stack signals a
		// child's whole process group), and kube-router exits 255 when one of them dies.
		StopExitCode: 255,
	})
	if err != nil {
		return err
	}
	if err := proc.WaitHealthy(ctx, "http://127.0.0.1:"+health+"/healthz"); err != nil {
		s.abandon(proc)
		return err
	}
	s.logf("kube-router is enforcing NetworkPolicies")
	return nil
}

// startCSI runs the project's local CSI driver, which the kubelet registers, with the
// external-provisioner, the external-snapshotter sidecar and the snapshot controller, and
// creates its CSIDriver and VolumeSnapshotClass.
func (s *Stack) startCSI(ctx context.Context) error {
	p := s.node.paths
	driverBinary := filepath.Join(s.statePath("bin"), "local-csi")
	if err := BuildBinary(ctx, "./internal/localstack/cmd/local-csi", driverBinary); err != nil {
		return err
	}
	kubeconfig, err := s.componentKubeconfig("csi", "system:serviceaccount:kube-system:csi-local")
	if err != nil {
		return err
	}
	socket := p.csiSocket(CSIDriverName)
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return err
	}
	processes := []ProcessOptions{
		{Name: "local-csi", Path: driverBinary, Args: []string{
			"--root=" + p.csiDir(), "--endpoint=" + socket, "--registration-dir=" + p.pluginRegistry(),
			"--node-id=" + NodeName, "--zone=" + NodeZone,
		}},
		{Name: "csi-provisioner", Path: s.nodeBinary("csi-provisioner"), Args: []string{
			"--csi-address=" + socket, "--kubeconfig=" + kubeconfig, "--leader-election=false",
			"--feature-gates=Topology=true", "--extra-create-metadata",
		}},
		{Name: "csi-snapshotter", Path: s.nodeBinary("csi-snapshotter"), Args: []string{
			"--csi-address=" + socket, "--kubeconfig=" + kubeconfig, "--leader-election=false",
		}},
		{Name: "snapshot-controller", Path: s.nodeBinary("snapshot-controller"), Args: []string{
			"--kubeconfig=" + kubeconfig, "--leader-election=false",
		}},
	}
	for _, opts := range processes {
		if _, err := s.StartProcess(opts); err != nil {
			return err
		}
	}
	for _, obj := range []client.Object{csiDriver(), volumeSnapshotClass()} {
		if err := s.apply(ctx, obj); err != nil {
			return fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
	}
	// The kubelet registers the driver on the node's CSINode once the driver answers.
	err = s.waitFor(ctx, nil, "the kubelet to register the CSI driver", func(ctx context.Context) (bool, error) {
		csiNode := &storagev1.CSINode{}
		if err := s.client.Get(ctx, client.ObjectKey{Name: NodeName}, csiNode); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, d := range csiNode.Spec.Drivers {
			if d.Name == CSIDriverName {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	s.logf("the CSI driver %s is registered, with its provisioner, snapshotter and the snapshot controller", CSIDriverName)
	return nil
}

// waitFor polls cond every half second until it holds. A proc that exits meanwhile ends
// the wait with its exit status, which says more than a timeout.
func (s *Stack) waitFor(ctx context.Context, proc *Process, what string, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if proc != nil {
			select {
			case <-proc.Done():
				return false, fmt.Errorf("%s exited: %w%s", proc.name, proc.exitStatus(), proc.logHint())
			default:
			}
		}
		return cond(ctx)
	})
	if err != nil {
		return fmt.Errorf("wait for %s (logs in %s): %w", what, s.dir, err)
	}
	return nil
}

// waitNodeReady waits until the node is Ready and CoreDNS has an available replica.
func (s *Stack) waitNodeReady(ctx context.Context) error {
	err := s.waitFor(ctx, nil, "the node to be Ready", func(ctx context.Context) (bool, error) {
		n := &corev1.Node{}
		if err := s.client.Get(ctx, client.ObjectKey{Name: NodeName}, n); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if err := s.waitFor(ctx, nil, "CoreDNS to be available", s.coreDNSAvailable); err != nil {
		return err
	}
	s.logf("node %s is Ready, CoreDNS answers at %s", NodeName, ClusterDNSIP)
	return nil
}
