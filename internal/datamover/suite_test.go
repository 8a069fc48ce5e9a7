package datamover

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/controllers"
	"github.com/workspace-operator/workspace-operator/internal/backup"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// The suite runs the run reconciler against a real kube-apiserver with the snapshot CRDs
// of the external-snapshotter module. The test plays the parts a real node plays (see
// fakeCluster): the snapshot-controller and CSI driver, the kubelet, and the PVC
// protection controller, through the same status fields the real ones write.

const (
	moverNamespace = "workspace-operator-mover"
	driver         = "local.csi.workspace-operator.io"
	zoneKey        = "topology.local.csi.workspace-operator.io/zone"
	timeout        = 20 * time.Second
	interval       = 50 * time.Millisecond
	concurrency    = 2
	volumeTimeout  = time.Hour
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client
	fakeClock *clocktesting.FakeClock
	// hookExecutor plays kubectl exec for the pre-backup hooks.
	hookExecutor *recordingExecutor
	cluster      *fakeCluster
	stopMgr      context.CancelFunc
	mgrDone      chan struct{}
)

func TestDataMover(t *testing.T) {
	if testing.Short() {
		t.Skip("envtest suite: needs a control plane (make test)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Data mover suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	snapshotCRDs, err := testenv.SnapshotCRDFiles()
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     append([]string{testenv.OperatorCRDDir()}, snapshotCRDs...),
		ErrorIfCRDPathMissing: true,
	}
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(restCfg, client.Options{Scheme: controllers.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moverNamespace}})).To(Succeed())

	fakeClock = clocktesting.NewFakeClock(time.Now())
	cluster = &fakeCluster{outcomes: map[string]podOutcome{}}
	hookExecutor = &recordingExecutor{failures: map[string]string{}}
	go cluster.run(ctx)
	startManager()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
		<-mgrDone
	}
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Namespace = moverNamespace
	cfg.Image = "workspace-operator:test"
	cfg.Command = []string{"/manager"}
	cfg.Env = []corev1.EnvVar{{Name: "AWS_ENDPOINT_URL_S3", Value: "http://127.0.0.1:4566"}}
	cfg.S3PathStyle = true
	cfg.Concurrency = concurrency
	cfg.VolumeTimeout = volumeTimeout
	cfg.SlotRetry = 200 * time.Millisecond
	cfg.RoleARN = func(workspace, _ string) (string, error) {
		return "arn:aws:iam::000000000000:role/mover-" + workspace, nil
	}
	return cfg
}

// startManager runs the reconciler in a manager configured like main.go's: its scheme, and
// its cache, which holds only objects labelled as managed by the operator (runs created by
// hand, as the specs create them, excepted).
func startManager() {
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:  controllers.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(controllers.DefaultConfig()),
	})
	Expect(err).NotTo(HaveOccurred())
	r := &Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("workspace-operator"),
		Clock:     fakeClock,
		Config:    testConfig(),
		Executor:  hookExecutor,
	}
	Expect(r.SetupWithManager(mgr, controller.Options{SkipNameValidation: ptr.To(true)})).To(Succeed())
	restores := &RestoreReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("workspace-operator"),
		Clock:     fakeClock,
		Config:    testConfig(),
	}
	Expect(restores.SetupWithManager(mgr, controller.Options{SkipNameValidation: ptr.To(true)})).To(Succeed())
	var mgrCtx context.Context
	mgrCtx, stopMgr = context.WithCancel(ctx)
	mgrDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()
}

// restartManager stops the operator and starts a new one, as a crash and restart would:
// nothing of the old process's memory survives.
func restartManager() {
	stopMgr()
	<-mgrDone
	startManager()
}

// podOutcome is what the fake kubelet does with a claim's mover pod.
type podOutcome struct {
	hold    bool   // leave it Pending
	fail    string // fail it with this summary error
	snapErr string // fail the claim's snapshot with this error
}

// fakeCluster plays, in a loop, what a real node and its controllers do to the objects
// the reconciler creates: the snapshot-controller with the CSI driver (dynamic snapshots
// get a content with a handle and become ready; pre-bound copies become ready), the
// kubelet (mover pods run and finish with the agent's summary as termination message),
// and the PVC protection controller (a deleted claim's finalizer goes once no pod uses it).
type fakeCluster struct {
	mu       sync.Mutex
	outcomes map[string]podOutcome // by claim
}

func (f *fakeCluster) set(claim string, o podOutcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[claim] = o
}

func (f *fakeCluster) outcome(claim string) podOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outcomes[claim]
}

func (f *fakeCluster) run(ctx context.Context) {
	defer GinkgoRecover()
	for ctx.Err() == nil {
		f.snapshotController(ctx)
		f.kubelet(ctx)
		f.pvcProtection(ctx)
		f.volumeController(ctx)
		time.Sleep(interval)
	}
}

func (f *fakeCluster) snapshotController(ctx context.Context) {
	var list snapshotv1.VolumeSnapshotList
	if k8sClient.List(ctx, &list) != nil {
		return
	}
	for i := range list.Items {
		vs := &list.Items[i]
		if vs.Status != nil || vs.DeletionTimestamp != nil {
			continue
		}
		claim := vs.Labels[tenancyv1alpha1.BackupClaimLabel]
		if msg := f.outcome(claim).snapErr; msg != "" && vs.Spec.Source.PersistentVolumeClaimName != nil {
			vs.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapshotv1.VolumeSnapshotError{Message: ptr.To(msg)}}
			_ = k8sClient.Status().Update(ctx, vs)
			continue
		}
		contentName := ""
		switch {
		case vs.Spec.Source.PersistentVolumeClaimName != nil:
			content := &snapshotv1.VolumeSnapshotContent{
				ObjectMeta: metav1.ObjectMeta{Name: "snapcontent-" + string(vs.UID)},
				Spec: snapshotv1.VolumeSnapshotContentSpec{
					VolumeSnapshotRef:       corev1.ObjectReference{Namespace: vs.Namespace, Name: vs.Name, UID: vs.UID},
					DeletionPolicy:          snapshotv1.VolumeSnapshotContentDelete,
					Driver:                  driver,
					VolumeSnapshotClassName: vs.Spec.VolumeSnapshotClassName,
					Source:                  snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("vol-" + *vs.Spec.Source.PersistentVolumeClaimName)},
					SourceVolumeMode:        ptr.To(corev1.PersistentVolumeFilesystem),
				},
			}
			if err := k8sClient.Create(ctx, content); err != nil && !apierrors.IsAlreadyExists(err) {
				continue
			}
			content.Status = &snapshotv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("snap-" + string(vs.UID)), ReadyToUse: ptr.To(true), RestoreSize: ptr.To[int64](2 << 30)}
			if k8sClient.Status().Update(ctx, content) != nil {
				continue
			}
			contentName = content.Name
		case vs.Spec.Source.VolumeSnapshotContentName != nil:
			content := &snapshotv1.VolumeSnapshotContent{}
			if k8sClient.Get(ctx, client.ObjectKey{Name: *vs.Spec.Source.VolumeSnapshotContentName}, content) != nil {
				continue
			}
			contentName = content.Name
		}
		vs.Status = &snapshotv1.VolumeSnapshotStatus{
			BoundVolumeSnapshotContentName: ptr.To(contentName),
			ReadyToUse:                     ptr.To(true),
			RestoreSize:                    ptr.To(resource.MustParse("2Gi")),
		}
		_ = k8sClient.Status().Update(ctx, vs)
	}
}

func (f *fakeCluster) kubelet(ctx context.Context) {
	var pods corev1.PodList
	if k8sClient.List(ctx, &pods, client.InNamespace(moverNamespace)) != nil {
		return
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		o := f.outcome(pod.Labels[tenancyv1alpha1.BackupClaimLabel] + pod.Labels[tenancyv1alpha1.RestoreClaimLabel])
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || o.hold {
			continue
		}
		summary := backup.Summary{Workspace: pod.Labels[tenancyv1alpha1.WorkspaceLabel], BackupID: argAfter(pod, "--backup-id"), Status: backup.StatusSucceeded,
			Locations: []backup.LocationSummary{{Region: "eu-west-1", Bucket: "b", ArchiveBytes: 12345, Backups: 1}}}
		phase, exit := corev1.PodSucceeded, int32(0)
		if o.fail != "" {
			summary.Status, summary.Error, summary.Locations[0].ArchiveBytes = backup.StatusFailed, o.fail, 0
			phase, exit = corev1.PodFailed, 1
		}
		message, _ := json.Marshal(summary)
		pod.Status.Phase = phase
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: moverContainerName, Image: pod.Spec.Containers[0].Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: string(message)}},
		}}
		_ = k8sClient.Status().Update(ctx, pod)
	}
}

func (f *fakeCluster) pvcProtection(ctx context.Context) {
	var claims corev1.PersistentVolumeClaimList
	if k8sClient.List(ctx, &claims) != nil {
		return
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.DeletionTimestamp == nil || len(pvc.Finalizers) == 0 {
			continue
		}
		var pods corev1.PodList
		if k8sClient.List(ctx, &pods, client.InNamespace(pvc.Namespace)) != nil {
			continue
		}
		if slices.ContainsFunc(pods.Items, func(pod corev1.Pod) bool {
			return slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
				return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name
			})
		}) {
			continue // still mounted
		}
		pvc.Finalizers = nil
		_ = k8sClient.Update(ctx, pvc)
	}
}

// volumeController plays the provisioner and the PersistentVolume controller for the
// volumes a restore creates: a mover claim gets a new volume of the class's reclaim policy
// (Delete); a volume whose claim is gone is Released, and deleted if its policy is Delete;
// a volume pre-bound to a claim that exists binds it, as a pre-bound volume binds whatever
// the claim's selector and the class's binding mode.
func (f *fakeCluster) volumeController(ctx context.Context) {
	var claims corev1.PersistentVolumeClaimList
	if k8sClient.List(ctx, &claims, client.HasLabels{tenancyv1alpha1.RestoreRunLabel}) != nil {
		return
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.Namespace != moverNamespace || pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
			continue
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
				AccessModes:                   pvc.Spec.AccessModes,
				StorageClassName:              *pvc.Spec.StorageClassName,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "vol-" + string(pvc.UID)}},
			},
		}
		if err := k8sClient.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
			continue
		}
		pvc.Spec.VolumeName = pv.Name
		if k8sClient.Update(ctx, pvc) == nil {
			pvc.Status.Phase = corev1.ClaimBound
			_ = k8sClient.Status().Update(ctx, pvc)
		}
	}
	var volumes corev1.PersistentVolumeList
	if k8sClient.List(ctx, &volumes) != nil {
		return
	}
	for i := range volumes.Items {
		pv := &volumes.Items[i]
		ref := pv.Spec.ClaimRef
		if ref == nil || pv.DeletionTimestamp != nil {
			continue
		}
		claim := &corev1.PersistentVolumeClaim{}
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, claim)
		switch {
		case apierrors.IsNotFound(err) || (err == nil && claim.UID != ref.UID):
			if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
				_ = k8sClient.Delete(ctx, pv)
			} else if pv.Status.Phase != corev1.VolumeReleased {
				pv.Status.Phase = corev1.VolumeReleased
				_ = k8sClient.Status().Update(ctx, pv)
			}
		case err == nil && claim.Spec.VolumeName == "":
			claim.Spec.VolumeName = pv.Name
			if k8sClient.Update(ctx, claim) == nil {
				claim.Status.Phase = corev1.ClaimBound
				_ = k8sClient.Status().Update(ctx, claim)
				pv.Status.Phase = corev1.VolumeBound
				_ = k8sClient.Status().Update(ctx, pv)
			}
		case err == nil && pv.Status.Phase != corev1.VolumeBound:
			pv.Status.Phase = corev1.VolumeBound
			_ = k8sClient.Status().Update(ctx, pv)
		}
	}
}

func argAfter(pod *corev1.Pod, flag string) string {
	args := pod.Spec.Containers[0].Args
	for i := range args[:len(args)-1] {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// newTenant creates a Workspace whose status is what the Workspace reconciler reports
// once it is ready, its namespace and encrypted StorageClass, and one bound claim per
// entry of zones, on a volume in that zone.
func newTenant(name string, claims map[string]string) {
	namespace := "ws-" + name
	class := namespace + "-encrypted"
	ws := &tenancyv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.WorkspaceSpec{
			Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice@example.com"}},
			Quota:  tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.SmallTier},
		},
	}
	Expect(k8sClient.Create(ctx, ws)).To(Succeed())
	ws.Status = tenancyv1alpha1.WorkspaceStatus{
		Namespace: namespace,
		Encryption: &tenancyv1alpha1.EncryptionStatus{StorageClassName: class, Keys: []tenancyv1alpha1.KeyStatus{
			{Region: "eu-west-1", ARN: "arn:aws:kms:eu-west-1:000000000000:key/1", Alias: "alias/ws-" + name, State: "Enabled"},
			{Region: "eu-central-1", ARN: "arn:aws:kms:eu-central-1:000000000000:key/2", Alias: "alias/ws-" + name, State: "Enabled"},
		}},
		Backup: &tenancyv1alpha1.BackupStatus{Schedule: "0 2 * * *", RetentionDays: 7, Locations: []tenancyv1alpha1.BackupLocationStatus{
			{Region: "eu-west-1", Bucket: "wso-" + name + "-backup-eu-west-1"},
			{Region: "eu-central-1", Bucket: "wso-" + name + "-backup-eu-central-1"},
		}},
	}
	Expect(k8sClient.Status().Update(ctx, ws)).To(Succeed())
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: class},
		Provisioner:       driver,
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	})).To(Succeed())
	for claim, zone := range claims {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-" + name + "-" + claim},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: class,
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
					Driver: driver, VolumeHandle: "vol-" + claim,
				}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: zoneKey, Operator: corev1.NodeSelectorOpIn, Values: []string{zone}}},
				}}}},
			},
		}
		Expect(k8sClient.Create(ctx, pv)).To(Succeed())
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: namespace},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptr.To(class),
				VolumeName:       pv.Name,
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
		pvc.Status.Phase = corev1.ClaimBound
		Expect(k8sClient.Status().Update(ctx, pvc)).To(Succeed())
	}
}

func newRun(name, workspace string) *tenancyv1alpha1.WorkspaceBackup {
	run := &tenancyv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: moverNamespace},
		Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: workspace},
	}
	Expect(k8sClient.Create(ctx, run)).To(Succeed())
	return run
}

func getRun(g Gomega, name string) *tenancyv1alpha1.WorkspaceBackup {
	run := &tenancyv1alpha1.WorkspaceBackup{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: name}, run)).To(Succeed())
	return run
}

func volumeStatus(run *tenancyv1alpha1.WorkspaceBackup, claim string) tenancyv1alpha1.VolumeBackupStatus {
	for _, v := range run.Status.Volumes {
		if v.Claim == claim {
			return v
		}
	}
	return tenancyv1alpha1.VolumeBackupStatus{}
}

// runObjects counts, by kind, the objects left of a run anywhere in the cluster.
func runObjects(g Gomega, run string) map[string]int {
	selector := client.MatchingLabels{tenancyv1alpha1.BackupRunLabel: run}
	counts := map[string]int{}
	lists := map[string]client.ObjectList{
		"VolumeSnapshot":        &snapshotv1.VolumeSnapshotList{},
		"VolumeSnapshotContent": &snapshotv1.VolumeSnapshotContentList{},
		"PersistentVolumeClaim": &corev1.PersistentVolumeClaimList{},
		"Pod":                   &corev1.PodList{},
	}
	for kind, list := range lists {
		g.Expect(k8sClient.List(ctx, list, selector)).To(Succeed())
		items, err := metaItems(list)
		g.Expect(err).NotTo(HaveOccurred())
		if items > 0 {
			counts[kind] = items
		}
	}
	return counts
}

func metaItems(list client.ObjectList) (int, error) {
	switch l := list.(type) {
	case *snapshotv1.VolumeSnapshotList:
		return len(l.Items), nil
	case *snapshotv1.VolumeSnapshotContentList:
		return len(l.Items), nil
	case *corev1.PersistentVolumeClaimList:
		return len(l.Items), nil
	case *corev1.PodList:
		return len(l.Items), nil
	}
	return 0, fmt.Errorf("unexpected list %T", list)
}

// hookExec is one command run in a pod, and whether the claim's snapshot existed by then.
type hookExec struct {
	pod, container  string
	command         []string
	snapshotExisted bool
}

// hangs, as a pod's failure, makes its command run until its deadline.
const hangs = "<hangs>"

// recordingExecutor records the commands run in pods and fails those of the pods named in
// failures, with that standard error.
type recordingExecutor struct {
	mu       sync.Mutex
	execs    []hookExec
	failures map[string]string
}

func (e *recordingExecutor) Exec(ctx context.Context, namespace, pod, container string, command []string) (string, string, error) {
	var snapshots snapshotv1.VolumeSnapshotList
	Expect(k8sClient.List(ctx, &snapshots, client.InNamespace(namespace))).To(Succeed())
	e.mu.Lock()
	defer e.mu.Unlock()
	e.execs = append(e.execs, hookExec{pod: pod, container: container, command: command, snapshotExisted: len(snapshots.Items) > 0})
	stderr, fails := e.failures[pod]
	if fails && stderr == hangs {
		e.mu.Unlock()
		<-ctx.Done()
		e.mu.Lock()
		return "", "", ctx.Err()
	}
	if fails {
		return "", stderr, fmt.Errorf("command terminated with exit code 1")
	}
	return "", "", nil
}

func (e *recordingExecutor) ran(pod string) []hookExec {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []hookExec
	for _, x := range e.execs {
		if x.pod == pod {
			out = append(out, x)
		}
	}
	return out
}

// newAppPod creates a running application pod in namespace that mounts claim, with the given
// annotations (its pre-backup hook).
func newAppPod(namespace, name, claim string, annotations map[string]string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "db", Image: "postgres:17"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status.Phase = corev1.PodRunning
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}
