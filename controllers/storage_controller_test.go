package controllers

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func keysOf(region, workspace string) []awsemu.KeySnapshot {
	var out []awsemu.KeySnapshot
	for _, k := range emu.Keys(region) {
		if k.Tags["workspace-operator.io/workspace"] == workspace {
			out = append(out, k)
		}
	}
	return out
}

func pvc(namespace, name, class string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// poke makes the operator reconcile a workspace without changing its spec.
func poke(namespace string) {
	sa := &corev1.ServiceAccount{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: workloadServiceAccountName}, sa)).To(Succeed())
	if sa.Annotations == nil {
		sa.Annotations = map[string]string{}
	}
	sa.Annotations["example.com/poke"] = time.Now().String()
	Expect(k8sClient.Update(ctx, sa)).To(Succeed())
}

var _ = Describe("Encrypted storage", func() {
	It("provisions a new workspace with two status writes and one event per kind of change", func() {
		ws := newWorkspace("lean")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)
		time.Sleep(time.Second) // let the reconciles the child writes queued run

		By("writing the status once before the keys exist, for crash safety, and once at the end")
		// The child watches queue a second reconcile before the informer has the first
		// one's status; it must wait for it rather than write the status again.
		Expect(statusPatches.get(ws.Name)).To(Equal(2))

		By("naming every key and bucket in one event, and reporting no repair of what was just created")
		events := workspaceEvents(Default, ws.Name)
		var reasons []string
		for _, e := range events {
			reasons = append(reasons, e.Reason)
			Expect(e.Series).To(BeNil(), "event %s %s was emitted more than once", e.Reason, e.Note)
		}
		Expect(reasons).To(ConsistOf("AWSResourcesCreated", "Ready"))
		for _, e := range events {
			if e.Reason == "AWSResourcesCreated" {
				Expect(e.Note).To(ContainSubstring("alias/workspace-operator/envtest/lean"))
				Expect(strings.Count(e.Note, "KMS key")).To(Equal(2))
				Expect(strings.Count(e.Note, "bucket ")).To(Equal(4))
			}
		}
	})

	It("gives each workspace its own keys, an encrypted StorageClass and secured buckets in two regions", func() {
		ws := newWorkspace("storage")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		ws = expectReady(ws.Name)

		By("creating one shreddable key per region, behind the workspace alias")
		for _, region := range []string{primaryRegion, replicaRegion} {
			keys := keysOf(region, "storage")
			Expect(keys).To(HaveLen(1), region)
			Expect(keys[0].Aliases).To(ConsistOf("alias/workspace-operator/envtest/storage"))
			Expect(keys[0].Origin).To(Equal("AWS_KMS"))
			Expect(keys[0].MultiRegion).To(BeFalse())
			Expect(keys[0].RotationEnabled).To(BeTrue())
			Expect(keys[0].Tags).To(HaveKeyWithValue("workspace-operator.io/cluster", "envtest"))
			Expect(keys[0].Policy).To(Equal(testKeyPolicy))
		}
		By("proving from the key policy that the volume driver may use the key")
		Expect(condition(ws, tenancyv1alpha1.ConditionEncryptionReady).Message).To(ContainSubstring("its key policy lets the volume driver's role " + volumeDriverRole + " use it"))
		Expect(ws.Status.Encryption.Keys).To(HaveLen(2))
		primaryKey := ws.Status.Encryption.Keys[0]
		Expect(primaryKey.Region).To(Equal(primaryRegion))
		Expect(primaryKey.ARN).To(Equal(keysOf(primaryRegion, "storage")[0].ARN))
		Expect(primaryKey.State).To(Equal("Enabled"))

		By("binding volumes to the key through the workspace StorageClass")
		class := &storagev1.StorageClass{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-storage-encrypted"}, class)).To(Succeed())
		Expect(class.Provisioner).To(Equal("ebs.csi.aws.com"))
		Expect(class.Parameters).To(Equal(map[string]string{"type": "gp3", "encrypted": "true", "kmsKeyId": primaryKey.ARN}))
		Expect(*class.ReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete))
		Expect(*class.AllowVolumeExpansion).To(BeTrue())
		Expect(ws.Status.Encryption.StorageClassName).To(Equal(class.Name))

		By("securing the buckets, replicated to the second region")
		Expect(ws.Status.Storage.Buckets).To(HaveLen(2))
		primary, replica := ws.Status.Storage.Buckets[0], ws.Status.Storage.Buckets[1]
		Expect(primary.Region).To(Equal(primaryRegion))
		Expect(replica.Region).To(Equal(replicaRegion))
		s3Client := s3.NewFromConfig(emu.AWSConfig(primaryRegion), awsemu.UsePathStyle)
		encryption, err := s3Client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(primary.Name)})
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(encryption.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.KMSMasterKeyID)).To(Equal(primaryKey.ARN))
		replication, err := s3Client.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: aws.String(primary.Name)})
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(replication.ReplicationConfiguration.Rules[0].Destination.Bucket)).To(Equal("arn:aws:s3:::" + replica.Name))

		By("giving workloads an identity for the buckets")
		sa := &corev1.ServiceAccount{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-storage", Name: workloadServiceAccountName}, sa)).To(Succeed())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::000000000000:role/envtest-storage"))
		Expect(ws.Status.Storage.RoleARN).To(Equal("arn:aws:iam::000000000000:role/envtest-storage"))
	})

	It("refuses a volume on any other StorageClass, naming the allowed one", func() {
		ws := newWorkspace("volumes")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		Eventually(func(g Gomega) {
			err := k8sClient.Create(ctx, pvc("ws-volumes", "plain", "standard"))
			g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "err = %v", err)
			g.Expect(err.Error()).To(ContainSubstring("must set storageClassName: ws-volumes-encrypted"))
		}, timeout, interval).Should(Succeed())
		Expect(k8sClient.Create(ctx, pvc("ws-volumes", "encrypted", "ws-volumes-encrypted"))).To(Succeed())
	})

	It("gives every other StorageClass zero storage in the quota", func() {
		ws := newWorkspace("quota-classes")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		other := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "unencrypted-gp2"}, Provisioner: "ebs.csi.aws.com"}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, other))).To(Succeed()) })
		Eventually(func(g Gomega) {
			quota := &corev1.ResourceQuota{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-quota-classes", Name: resourceQuotaName}, quota)).To(Succeed())
			g.Expect(quota.Spec.Hard).To(HaveKeyWithValue(corev1.ResourceName("unencrypted-gp2.storageclass.storage.k8s.io/requests.storage"), resource.MustParse("0")))
			g.Expect(quota.Spec.Hard).NotTo(HaveKey(corev1.ResourceName("ws-quota-classes-encrypted.storageclass.storage.k8s.io/requests.storage")))
			// Other workspaces' classes are the admission policy's to refuse: listing them
			// would grow every quota with the number of workspaces.
			for name := range quota.Spec.Hard {
				g.Expect(string(name)).NotTo(MatchRegexp(`^ws-.*-encrypted\.storageclass`), "quota lists another workspace's class")
			}
		}, timeout, interval).Should(Succeed())
		// The operator updated its own quota for a new StorageClass: that is no drift.
		Consistently(func(g Gomega) {
			g.Expect(hasEvent(workspaceEvents(g, "quota-classes"), corev1.EventTypeWarning, "DriftRepaired")).To(BeFalse())
		}, time.Second, interval).Should(Succeed())
	})

	It("creates no second key when CreateKey's answer is lost", func() {
		emu.Inject(awsemu.Fault{Service: "kms", Operation: "CreateKey", Kind: awsemu.DropResponse, Times: 1})
		DeferCleanup(emu.ClearFaults)
		ws := newWorkspace("lost-key")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)

		ws = expectReady(ws.Name)
		for _, region := range []string{primaryRegion, replicaRegion} {
			Expect(keysOf(region, "lost-key")).To(HaveLen(1), "exactly one key in %s", region)
			Expect(findKey(ws, region)).NotTo(BeNil())
		}
	})

	It("searches for an orphaned key only where a CreateKey may have been lost", func() {
		emu.ResetCalls()
		ws := newWorkspace("no-scan")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)
		// A scan lists every key in the account: at a thousand workspaces, a thousand calls.
		Expect(emu.Calls().Count("kms", "ListKeys")).To(BeZero())
		Expect(emu.Calls().Count("kms", "CreateKey")).To(Equal(2), "one key per region")
	})

	It("repairs AWS drift at the next drift check and says so", func() {
		ws := newWorkspace("aws-drift")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		ws = expectReady(ws.Name)
		keyID := keysOf(primaryRegion, "aws-drift")[0].KeyID
		bucket := ws.Status.Storage.Buckets[0].Name

		kmsClient := kms.NewFromConfig(emu.AWSConfig(primaryRegion))
		s3Client := s3.NewFromConfig(emu.AWSConfig(primaryRegion), awsemu.UsePathStyle)
		_, err := kmsClient.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
		Expect(err).NotTo(HaveOccurred())
		_, err = s3Client.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: aws.String(bucket)})
		Expect(err).NotTo(HaveOccurred())

		By("not calling AWS on reconciles between drift checks")
		emu.ResetCalls()
		reads := wsReads.Load()
		poke("ws-aws-drift")
		Eventually(wsReads.Load, timeout, interval).Should(BeNumerically(">", reads))
		Consistently(totalAWSCalls, time.Second, interval).Should(BeZero())

		By("repairing once the drift check is due")
		advanceClock(13 * time.Minute)
		poke("ws-aws-drift")
		Eventually(func(g Gomega) {
			g.Expect(keysOf(primaryRegion, "aws-drift")[0].State).To(Equal("Enabled"))
			_, err := s3Client.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(bucket)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hasEvent(workspaceEvents(g, "aws-drift"), corev1.EventTypeWarning, "AWSDriftRepaired")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("stalls with the AWS error code when AWS refuses, without hot-looping", func() {
		emu.Inject(awsemu.Fault{Service: "s3", Operation: "CreateBucket", Kind: awsemu.AccessDenied})
		DeferCleanup(emu.ClearFaults)
		ws := newWorkspace("denied")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)

		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "denied")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionBucketReady).Reason).To(Equal("AWSAccessDenied"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionBucketReady).Message).To(ContainSubstring("IAM"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionNetworkIsolated).Status).To(Equal(metav1.ConditionTrue), "other concerns proceed")
		}, timeout, interval).Should(Succeed())

		before := emu.Calls().Count("s3", "CreateBucket")
		time.Sleep(3 * time.Second)
		// The stalled retry interval is 2 s here; a hot loop would make dozens of calls.
		Expect(emu.Calls().Count("s3", "CreateBucket") - before).To(BeNumerically("<=", 4))

		emu.ClearFaults()
		expectReady("denied")
	})
})

// totalAWSCalls counts the emulator's calls since the last reset. The emulator cannot tell
// workspaces apart, so callers reset it while no other workspace is provisioning.
func totalAWSCalls() int {
	total := 0
	for _, n := range emu.Calls() {
		total += n
	}
	return total
}

var _ = Describe("Default storage class in a workspace", func() {
	It("gives a claim that names no StorageClass the workspace's encrypted class", func() {
		ws := newWorkspace("helm-chart")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		claim := pvc("ws-helm-chart", "data-postgresql-0", "")
		claim.Spec.StorageClassName = nil
		// The API server loads admission policies asynchronously.
		Eventually(func(g Gomega) {
			dryRun := claim.DeepCopy()
			g.Expect(k8sClient.Create(ctx, dryRun, client.DryRunAll)).To(Succeed())
			g.Expect(dryRun.Spec.StorageClassName).To(HaveValue(Equal("ws-helm-chart-encrypted")))
		}, timeout, interval).Should(Succeed())
		Expect(k8sClient.Create(ctx, claim)).To(Succeed())
		Expect(claim.Spec.StorageClassName).To(HaveValue(Equal("ws-helm-chart-encrypted")))

		By("still refusing a claim that names another class")
		Expect(k8sClient.Create(ctx, pvc("ws-helm-chart", "other", "gp2"))).NotTo(Succeed())
	})
})
