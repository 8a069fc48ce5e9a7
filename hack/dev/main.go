// Command dev runs the operator end to end on this machine, for make dev: a local control
// plane (etcd, kube-apiserver and kube-controller-manager) and a node (containerd, kubelet,
// kube-proxy, kube-router, CoreDNS, a CSI driver) with state under .dev/, the operator's and
// cert-manager's CRDs, the owner ClusterRole, the AWS emulator standing in for KMS and S3,
// the operator binary, the sample Workspaces and a workload in acme with an encrypted
// volume. It runs until Ctrl-C, then stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// The sample Workspaces: acme becomes Ready; globex waits for a certificate that nothing
// issues here.
const (
	readyWorkspace   = "acme"
	pendingWorkspace = "globex"
)

// awsRegion is the region of the workspaces' keys and buckets, in the AWS emulator.
const awsRegion = "eu-west-1"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	root := testenv.RepoRoot()
	operator := flag.String("operator", filepath.Join(root, "bin", "manager"), "operator binary, built by make build")
	dir := flag.String("dir", filepath.Join(root, ".dev"), "directory for the kubeconfig, the logs and the control plane's state")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long to wait for the sample Workspaces to be reconciled")
	flag.Parse()

	if _, err := os.Stat(*operator); err != nil {
		return fmt.Errorf("operator binary %s: %w; build it with `make build`", *operator, err)
	}
	certManagerCRDs, err := testenv.CertManagerCRDDir()
	if err != nil {
		return err
	}
	// envtest logs through controller-runtime, which would otherwise complain that no
	// logger was set; the stack reports its progress itself.
	ctrllog.SetLogger(logr.Discard())

	// The first Ctrl-C stops everything in order; a second one kills this process, and
	// with it, through their parent-death signal, every child.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	node, noNode := localstack.NodeFromEnvironment()
	if node != nil {
		fmt.Printf("Starting etcd, kube-apiserver, kube-controller-manager and a node in %s\n", *dir)
	} else {
		fmt.Printf("Starting etcd, kube-apiserver and kube-controller-manager in %s (%s)\n", *dir, noNode)
	}
	stack, err := localstack.Start(ctx, localstack.Options{
		Dir:     *dir,
		Node:    node,
		CRDDirs: []string{testenv.OperatorCRDDir(), certManagerCRDs},
		Manifests: []string{
			testenv.OwnerRoleFile(), testenv.StorageClassPolicyFile(),
			testenv.OperatorNamespaceFile(), testenv.DeletionProtectionPolicyFile(),
		},
		LogOutput: os.Stdout,
	})
	if err != nil {
		return fmt.Errorf("start the local control plane: %w", err)
	}
	defer func() {
		stopSignals()
		fmt.Println("\nStopping the operator, the AWS emulator, the node, kube-controller-manager, kube-apiserver and etcd...")
		if stopErr := stack.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", stopErr))
			return
		}
		fmt.Println("Stopped. Nothing is left running; the logs stay in", stack.Dir())
	}()

	if err := startOperator(ctx, stack, *operator, *timeout); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: stop quietly
		}
		return err
	}
	printUsage(ctx, stack)
	<-ctx.Done()
	return nil
}

// startOperator runs the AWS emulator and the operator, applies the samples and waits
// until acme is Ready and globex has been reconciled, so that the table printed next shows
// where both stand.
func startOperator(ctx context.Context, stack *localstack.Stack, binary string, timeout time.Duration) error {
	emulatorBinary := filepath.Join(stack.Dir(), "bin", "awsemu")
	fmt.Println("Building the AWS emulator, which stands in for KMS and S3, into", emulatorBinary)
	if err := localstack.BuildBinary(ctx, "./test/awsemu/cmd/awsemu", emulatorBinary); err != nil {
		return err
	}
	emulator, err := stack.StartAWSEmulator(ctx, emulatorBinary)
	if err != nil {
		return fmt.Errorf("start the AWS emulator: %w", err)
	}
	operator, err := stack.StartOperator(ctx, localstack.OperatorOptions{
		Binary: binary,
		// The node's CSI driver provisions the workspaces' volumes, as the EBS driver does on EKS.
		Args: []string{"--zap-devel", "--aws-region=" + awsRegion, "--storage-provisioner=" + localstack.CSIDriverName,
			"--cluster-pod-cidrs=" + localstack.ClusterCIDR, "--cluster-service-cidrs=" + localstack.ServiceCIDR},
		Env: append(emulator.ClientEnv(), emulator.EndpointEnv()...),
	})
	if err != nil {
		return fmt.Errorf("start the operator: %w", err)
	}
	if err := stack.Apply(ctx, testenv.SamplesFile()); err != nil {
		return fmt.Errorf("apply the samples: %w", err)
	}
	c, err := client.New(stack.Config(), client.Options{Scheme: scheme()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = waitFor(ctx, c, readyWorkspace, "Ready", isReady)
	if err == nil {
		err = waitFor(ctx, c, pendingWorkspace, "reconciled", isReconciled)
	}
	if err == nil && stack.HasNode() {
		err = startWorkload(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("after %s, %w\nthe operator's log is %s", timeout, err, operator.LogPath())
	}
	return nil
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	return s
}

// startWorkload runs a tenant workload in acme, as its owners would: a server with a volume
// on the workspace's encrypted StorageClass, which the node's CSI driver provisions. It
// waits until the pod runs.
func startWorkload(ctx context.Context, c client.Client) error {
	namespace := "ws-" + readyWorkspace
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(namespace + "-encrypted"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), FSGroup: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "web", Image: localstack.ProbeImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
				Resources:    corev1.ResourceRequirements{Requests: small, Limits: small},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name},
			}}},
		},
	}
	for _, obj := range []client.Object{claim, pod} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the sample workload's %s: %w", obj.GetName(), err)
		}
	}
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err == nil && pod.Status.Phase == corev1.PodRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the sample workload %s/%s is not running: phase %q", namespace, pod.Name, pod.Status.Phase)
		case <-ticker.C:
		}
	}
}

// waitFor polls the Workspace until done says it is in the wanted state or ctx ends.
func waitFor(ctx context.Context, c client.Client, name, want string, done func(*tenancyv1alpha1.Workspace) bool) error {
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	status := "not created yet"
	for {
		ws := &tenancyv1alpha1.Workspace{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, ws); err == nil {
			if done(ws) {
				return nil
			}
			status = describe(ws)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workspace %s is not %s: %s", name, want, status)
		case <-ticker.C:
		}
	}
}

func isReconciled(ws *tenancyv1alpha1.Workspace) bool {
	return ws.Status.Phase != "" && ws.Status.ObservedGeneration == ws.Generation
}

func isReady(ws *tenancyv1alpha1.Workspace) bool {
	return isReconciled(ws) && ws.Status.Phase == tenancyv1alpha1.PhaseReady &&
		meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionReady)
}

func describe(ws *tenancyv1alpha1.Workspace) string {
	ready := meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionReady)
	if ready == nil {
		return fmt.Sprintf("phase %q, no Ready condition", ws.Status.Phase)
	}
	return fmt.Sprintf("phase %q, Ready=%s (%s: %s)", ws.Status.Phase, ready.Status, ready.Reason, ready.Message)
}

// printUsage shows the Workspaces and tells how to reach the cluster.
func printUsage(ctx context.Context, stack *localstack.Stack) {
	out, err := stack.Kubectl(ctx, "get", "workspaces", "-o", "wide").CombinedOutput()
	if err != nil {
		out = fmt.Appendf(out, "(kubectl failed: %v)\n", err)
	}
	fmt.Printf(`
The operator is running and the sample Workspaces are applied:

$ kubectl get ws -o wide
%s
%s is Ready. %s asks for a TLS certificate, and no cert-manager controller runs in
this local cluster: its Certificate is never issued, so %s stays Provisioning with
CertificateReady=False (Issuing). That is expected here.

Use kubectl against the cluster from another terminal:

  export KUBECONFIG=%s
  alias kubectl=%s
  kubectl get ws
  kubectl describe ws acme
  kubectl get pods,pvc -n ws-acme        # a workload on the node, its volume encrypted (with a node)
  kubectl get networkpolicies -n ws-acme
  kubectl get resourcequota,limitrange,rolebinding -n ws-acme
  kubectl delete ws acme    # the namespace really terminates, then the Workspace goes

Logs:
`, out, readyWorkspace, pendingWorkspace, pendingWorkspace, stack.KubeconfigPath(), stack.KubectlPath())
	for _, path := range stack.LogFiles() {
		fmt.Printf("  %s\n", path)
	}
	fmt.Println("\nPress Ctrl-C to stop everything.")
}
