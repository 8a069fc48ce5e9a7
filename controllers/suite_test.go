package controllers

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// The suite runs the reconciler in a manager against a real kube-apiserver and etcd
// (hack/controlplane.sh builds them; make test points KUBEBUILDER_ASSETS at them). There is
// no kube-controller-manager here, so namespaces stay Terminating until a test finalizes
// them; test/e2e covers the real namespace controller.

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	k8sClient client.Client // direct, uncached: what the API server really holds
	writes    atomic.Int64  // writes the operator made through its client
	wsReads   atomic.Int64  // Workspace reads by the operator: one per reconcile
	// statusPatches counts the operator's status patches by Workspace name.
	statusPatches = &perName{counts: map[string]int{}}
	emu           *awsemu.Server
	fakeClock     *clocktesting.FakeClock // drives the AWS drift checks
)

// Regions of the emulated AWS account.
const (
	primaryRegion = "eu-west-1"
	replicaRegion = "eu-central-1"
	// The operator's AWS endpoint settings in the suite, which its agent pods must carry.
	testKMSEndpoint = "AWS_ENDPOINT_URL_KMS=https://vpce-0kms.kms.eu-west-1.vpce.amazonaws.com"
	testS3Endpoint  = "AWS_ENDPOINT_URL_S3=https://bucket.vpce-0s3.s3.eu-west-1.vpce.amazonaws.com"
)

func TestControllers(t *testing.T) {
	if testing.Short() {
		t.Skip("envtest suite: needs a control plane (make test)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Workspace controller suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	certManagerCRDs, err := testenv.CertManagerCRDDir()
	Expect(err).NotTo(HaveOccurred())
	snapshotCRDs, err := testenv.SnapshotCRDFiles()
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     append([]string{testenv.OperatorCRDDir(), certManagerCRDs}, snapshotCRDs...),
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme()})
	Expect(err).NotTo(HaveOccurred())
	applyFile(k8sClient, testenv.OwnerRoleFile())
	applyFile(k8sClient, testenv.StorageClassPolicyFile())
	applyFile(k8sClient, testenv.OperatorNamespaceFile())
	applyFile(k8sClient, testenv.DeletionProtectionPolicyFile())
	applyFile(k8sClient, testenv.BackupRetentionPolicyFile())

	// One clock for the operator and AWS, so that 7 days pass for both in a test.
	fakeClock = clocktesting.NewFakeClock(time.Now())
	emu, err = awsemu.Start(awsemu.Options{Clock: fakeClock})
	Expect(err).NotTo(HaveOccurred())
	startOperator(cfg, testConfig())
})

var _ = AfterSuite(func() {
	cancel()
	if emu != nil {
		Expect(emu.Close()).To(Succeed())
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// advanceClock moves the operator's clock forward for the rest of the spec, and back to
// the real time after it, so that specs never see each other's time travel.
func advanceClock(d time.Duration) {
	fakeClock.Step(d)
	DeferCleanup(func() { fakeClock.SetTime(time.Now()) })
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.StalledRetryInterval = 2 * time.Second
	cfg.Storage.ClusterName = "envtest"
	cfg.Storage.Region = primaryRegion
	cfg.Storage.ReplicaRegion = replicaRegion
	cfg.Storage.ReplicationRoleARN = "arn:aws:iam::000000000000:role/workspace-replication"
	cfg.Storage.WorkloadRoleARNTemplate = "arn:aws:iam::000000000000:role/{{ .Cluster }}-{{ .Workspace }}"
	cfg.Storage.VolumeDriverRoleARN = volumeDriverRole
	// As main.go takes them from its environment; envtest runs no pods, so they are never
	// dialled.
	cfg.Backup.Env = AWSEndpointEnv([]string{testKMSEndpoint, testS3Endpoint})
	return cfg
}

// volumeDriverRole is the EBS CSI driver's role the operator proves each key usable by;
// testKeyPolicy names it, as config/iam/kms-key-policy.json does.
const (
	volumeDriverRole = "arn:aws:iam::000000000000:role/ebs-csi-driver"
	testKeyPolicy    = `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"VolumeDriverGrantsForEBS","Effect":"Allow","Principal":{"AWS":"` + volumeDriverRole + `"},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}},` +
		`{"Sid":"VolumeDriverDataKeys","Effect":"Allow","Principal":{"AWS":"` + volumeDriverRole + `"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}]}`
)

// awsServices are the operator's real AWS code, through the real SDK, against the emulator.
func awsServices() (*cloud.Keys, *cloud.Buckets) {
	kmsClients, s3Clients := map[string]cloud.KMS{}, map[string]cloud.S3{}
	for _, region := range []string{primaryRegion, replicaRegion} {
		awsConfig := cloud.Instrument(emu.AWSConfig(region))
		kmsClients[region] = kms.NewFromConfig(awsConfig)
		s3Clients[region] = s3.NewFromConfig(awsConfig, awsemu.UsePathStyle)
	}
	return cloud.NewKeys(kmsClients, "workspace-operator", testKeyPolicy), cloud.NewBuckets(s3Clients, "wso")
}

// startOperator runs the reconciler in a manager configured like main.go's, counting the
// writes it makes and the reconciles it runs.
func startOperator(cfg *rest.Config, config Config) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  testScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(config),
	})
	Expect(err).NotTo(HaveOccurred())

	counted := &countingClient{Client: mgr.GetClient()}
	keys, buckets := awsServices()
	reconciler := &WorkspaceReconciler{
		Client:    counted,
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("workspace-operator"),
		Config:    config,
		Keys:      keys,
		Buckets:   buckets,
		Clock:     fakeClock,
	}
	skipNameValidation := true
	Expect(reconciler.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4, SkipNameValidation: &skipNameValidation})).To(Succeed())
	purges := &WorkspacePurgeReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("workspace-operator"),
		Keys:        keys,
		Buckets:     buckets,
		Clock:       fakeClock,
		AuditPeriod: config.PurgeAuditPeriod,
	}
	Expect(purges.SetupWithManager(mgr, controller.Options{SkipNameValidation: &skipNameValidation})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
}

func testScheme() *runtime.Scheme {
	return Scheme()
}

// applyFile creates the objects in a YAML manifest.
func applyFile(c client.Client, path string) {
	data, err := os.ReadFile(filepath.Clean(path))
	Expect(err).NotTo(HaveOccurred())
	objs, err := testenv.DecodeManifests(data)
	Expect(err).NotTo(HaveOccurred())
	for _, obj := range objs {
		Expect(c.Create(ctx, obj)).To(Succeed())
	}
}

// countingClient counts the operator's writes and its Workspace reads (one per reconcile).
type countingClient struct{ client.Client }

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*tenancyv1alpha1.Workspace); ok {
		wsReads.Add(1)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter {
	return countingStatusWriter{c.Client.Status()}
}

type countingStatusWriter struct{ client.SubResourceWriter }

func (w countingStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	writes.Add(1)
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}

func (w countingStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	writes.Add(1)
	if _, ok := obj.(*tenancyv1alpha1.Workspace); ok {
		statusPatches.add(obj.GetName())
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

type perName struct {
	mu     sync.Mutex
	counts map[string]int
}

func (p *perName) add(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[name]++
}

func (p *perName) get(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[name]
}
