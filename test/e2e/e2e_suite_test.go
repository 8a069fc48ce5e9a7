package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/offsetclock"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// The suite runs the operator as it runs in production: its own binary, in its own
// process, against a real control plane whose kube-controller-manager really deletes
// namespaces, and against the AWS emulator for KMS and S3. Nothing runs cert-manager, so
// the specs play it.

// logTailLines is how much of each log a failed spec prints.
const logTailLines = 60

// operatorImage is the operator binary packed as an image and imported into the node.
const operatorImage = "localstack.workspace-operator.io/workspace-operator:dev"

// The regions of the workspaces' keys and buckets, in the AWS emulator.
const (
	awsRegion     = "eu-west-1"
	replicaRegion = "eu-central-1"
)

var (
	ctx      context.Context
	cancel   context.CancelFunc
	workDir  string
	stack    *localstack.Stack
	operator *localstack.Operator
	// operatorOptions start the operator again after a spec kills it.
	operatorOptions localstack.OperatorOptions
	// operatorBinary doubles as the backup agent, as in the operator's image.
	operatorBinary string
	// emulatorURL is the AWS emulator's endpoint for KMS and S3.
	emulatorURL string
	// clockOffsetFile holds how far ahead of real time the operator's and the emulator's
	// clocks run (setClockOffset).
	clockOffsetFile string
	// awsEnv lets the agent's AWS SDK reach the emulator.
	awsEnv    []string
	k8sClient client.Client // direct, uncached: what the API server really holds

	// keepWorkDir keeps the logs for a human when anything failed.
	keepWorkDir = true
	// noNode says why the stack runs no node; specs that need pods skip with it.
	noNode string
)

func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end suite: runs a control plane and the operator binary (make test-e2e)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end suite")
}

var _ = BeforeSuite(func(setup SpecContext) {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	var err error
	workDir, err = os.MkdirTemp("", "workspace-operator-e2e-")
	Expect(err).NotTo(HaveOccurred())

	operatorBinary = filepath.Join(workDir, "manager")
	By("building the operator into " + operatorBinary + ", with the clock the suite can move ahead")
	Expect(localstack.BuildBinary(setup, ".", operatorBinary, "e2eclock")).To(Succeed())
	emulatorBinary := filepath.Join(workDir, "awsemu")
	By("building the AWS emulator into " + emulatorBinary)
	Expect(localstack.BuildBinary(setup, "./test/awsemu/cmd/awsemu", emulatorBinary)).To(Succeed())

	stackDir := filepath.Join(workDir, "stack")
	node, why := localstack.NodeFromEnvironment()
	noNode = why
	if node != nil {
		By("packing the operator as its image, which the backup pods run")
		archive := filepath.Join(workDir, "operator-image.tar")
		Expect(localstack.WriteImage(localstack.Image{
			Ref: operatorImage, Files: map[string]string{"/manager": operatorBinary},
			Entrypoint: []string{"/manager"}, User: "65532",
		}, archive)).To(Succeed())
		node.Images = append(node.Images, archive)
		By("starting etcd, kube-apiserver, kube-controller-manager and a node with their logs in " + stackDir)
	} else {
		By("starting etcd, kube-apiserver and kube-controller-manager with their logs in " + stackDir + " (" + why + ")")
	}
	certManagerCRDs, err := testenv.CertManagerCRDDir()
	Expect(err).NotTo(HaveOccurred())
	stack, err = localstack.Start(setup, localstack.Options{
		Node:    node,
		Dir:     stackDir,
		CRDDirs: []string{testenv.OperatorCRDDir(), certManagerCRDs},
		Manifests: []string{
			testenv.OwnerRoleFile(), testenv.StorageClassPolicyFile(),
			testenv.OperatorNamespaceFile(), testenv.DeletionProtectionPolicyFile(),
		},
		LogOutput: GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(stack.Config(), client.Options{Scheme: scheme()})
	Expect(err).NotTo(HaveOccurred())

	By("starting the AWS emulator, which stands in for KMS and S3")
	clockOffsetFile = filepath.Join(workDir, "clock-offset")
	emulator, err := stack.StartAWSEmulator(setup, emulatorBinary, "--clock-offset-file="+clockOffsetFile)
	Expect(err).NotTo(HaveOccurred())
	emulatorURL = emulator.URL()

	By("starting the operator")
	operatorOptions = localstack.OperatorOptions{
		Binary: operatorBinary,
		Args: []string{
			"--zap-devel", "--aws-region=" + awsRegion,
			"--aws-replica-region=" + replicaRegion, "--replication-role-arn=arn:aws:iam::000000000000:role/replication",
			// The node's CSI driver provisions the workspaces' volumes, as the EBS driver does on EKS.
			"--storage-provisioner=" + localstack.CSIDriverName,
			// "The internet" in an egress rule never means the rest of the cluster.
			"--cluster-pod-cidrs=" + localstack.ClusterCIDR, "--cluster-service-cidrs=" + localstack.ServiceCIDR,
			"--backup-image=" + operatorImage,
		},
		Env: append(append(emulator.ClientEnv(), emulator.EndpointEnv()...), offsetclock.FileEnv+"="+clockOffsetFile),
	}
	// Credentials only: the agent the specs run must find the emulator through the
	// endpoint settings the operator put on its pods.
	awsEnv = emulator.ClientEnv()
	operator, err = stack.StartOperator(setup, operatorOptions)
	Expect(err).NotTo(HaveOccurred())
	keepWorkDir = false
}, NodeTimeout(10*time.Minute))

// A failed spec shows the end of the operator's and kube-controller-manager's logs, which
// usually say why.
var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() {
		return
	}
	keepWorkDir = true
	fmt.Fprintf(GinkgoWriter, "\nthe kubeconfig and every log are kept in %s\n", workDir)
	if operator != nil {
		printTail(operator.Process)
	}
	if stack != nil {
		printTail(stack.ControllerManager())
	}
})

var _ = AfterSuite(func() {
	defer cancel()
	if stack != nil {
		// Stops the operator first.
		Expect(stack.Stop()).To(Succeed())
	}
	if keepWorkDir {
		fmt.Fprintf(GinkgoWriter, "the kubeconfig and every log are kept in %s\n", workDir)
		return
	}
	Expect(os.RemoveAll(workDir)).To(Succeed())
})

// setClockOffset moves the operator's and the AWS emulator's clocks to real time plus
// offset, both at once: a purge window passes for the operator and KMS alike. The API
// server stays on real time, as it would in a cluster.
func setClockOffset(offset time.Duration) {
	Expect(offsetclock.Set(clockOffsetFile, offset)).To(Succeed())
}

func printTail(p *localstack.Process) {
	fmt.Fprintf(GinkgoWriter, "\n----- last %d lines of %s -----\n%s\n", logTailLines, p.LogPath(), p.Tail(logTailLines))
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(cmv1.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}
