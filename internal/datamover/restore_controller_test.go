package datamover

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// restoreTimeout bounds a whole restore against the fake cluster, whose loop is slow.
const restoreTimeout = 15 * time.Second

func newRestore(name, workspace string, volumes ...tenancyv1alpha1.RestoreVolume) *tenancyv1alpha1.WorkspaceRestore {
	run := &tenancyv1alpha1.WorkspaceRestore{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: moverNamespace},
		Spec:       tenancyv1alpha1.WorkspaceRestoreSpec{Workspace: workspace, Volumes: volumes},
	}
	Expect(k8sClient.Create(ctx, run)).To(Succeed())
	return run
}

func restoreVolume(source, claim string) tenancyv1alpha1.RestoreVolume {
	return tenancyv1alpha1.RestoreVolume{Source: source, Claim: claim, BackupID: "20261205T020000Z", Storage: resource.MustParse("3Gi")}
}

func getRestore(g Gomega, name string) *tenancyv1alpha1.WorkspaceRestore {
	run := &tenancyv1alpha1.WorkspaceRestore{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: name}, run)).To(Succeed())
	return run
}

// restoreLeftovers lists what a restore run left in the mover namespace.
func restoreLeftovers(g Gomega, run string) []string {
	var left []string
	var claims corev1.PersistentVolumeClaimList
	g.Expect(k8sClient.List(ctx, &claims, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.RestoreRunLabel: run})).To(Succeed())
	for _, c := range claims.Items {
		left = append(left, "claim "+c.Name)
	}
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.RestoreRunLabel: run})).To(Succeed())
	for _, p := range pods.Items {
		left = append(left, "pod "+p.Name)
	}
	return left
}

var _ = Describe("A restore run", func() {
	It("writes each volume in the mover namespace, then hands it to a new claim of the workspace", func() {
		newTenant("rivet", map[string]string{"db": "zone-a"})
		newRestore("rivet-restore", "rivet", restoreVolume("db", "db-restored"))

		By("creating the workspace's claim first, selecting only the restored volume")
		claim := &corev1.PersistentVolumeClaim{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-rivet", Name: "db-restored"}, claim)).To(Succeed())
		}).WithTimeout(restoreTimeout).Should(Succeed())
		Expect(claim.Spec.Selector.MatchLabels).To(HaveKey(RestoredVolumeLabel))
		Expect(claim.OwnerReferences).To(BeEmpty(), "the data must outlive the run")

		Eventually(func(g Gomega) {
			run := getRestore(g, "rivet-restore")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.RestoreRunSucceeded), "%+v", run.Status)
		}).WithTimeout(restoreTimeout).Should(Succeed())
		run := getRestore(Default, "rivet-restore")
		Expect(run.Status.Volumes).To(HaveLen(1))
		v := run.Status.Volumes[0]
		Expect(v.Step).To(Equal(StepDone))
		Expect(v.VolumeName).NotTo(BeEmpty())

		By("binding the claim to the written volume, which is deleted with its claim like any other")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(claim), claim)).To(Succeed())
		Expect(claim.Spec.VolumeName).To(Equal(v.VolumeName))
		Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
		pv := &corev1.PersistentVolume{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: v.VolumeName}, pv)).To(Succeed())
		Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete))
		Expect(pv.Annotations).NotTo(HaveKey(ReclaimPolicyAnnotation))
		Expect(pv.Spec.ClaimRef.Namespace).To(Equal("ws-rivet"))

		By("running the agent's restore of that source from that backup")
		Eventually(func(g Gomega) []string { return restoreLeftovers(g, "rivet-restore") }).WithTimeout(restoreTimeout).Should(BeEmpty())
	})

	It("refuses to restore into a claim that exists, and leaves that claim alone", func() {
		newTenant("bolt", map[string]string{"db": "zone-a"})
		newRestore("bolt-restore", "bolt", restoreVolume("db", "db"))
		Eventually(func(g Gomega) {
			run := getRestore(g, "bolt-restore")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.RestoreRunFailed))
			g.Expect(run.Status.Volumes[0].Message).To(ContainSubstring("already exists"))
		}).WithTimeout(restoreTimeout).Should(Succeed())
		claim := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-bolt", Name: "db"}, claim)).To(Succeed())
		Expect(claim.DeletionTimestamp).To(BeNil())
		Expect(claim.Spec.VolumeName).To(Equal("pv-bolt-db"))
	})

	It("undoes a volume whose mover fails: its new claim and volume go, the other volume is restored", func() {
		newTenant("nut", nil)
		run := &tenancyv1alpha1.WorkspaceRestore{ObjectMeta: metav1.ObjectMeta{Name: "nut-restore", Namespace: moverNamespace}}
		failing := newRestoreRef(run, restoreVolume("cache", "cache"))
		cluster.set(failing.name, podOutcome{fail: "no location could deliver it"})
		newRestore("nut-restore", "nut", restoreVolume("db", "db"), restoreVolume("cache", "cache"))

		Eventually(func(g Gomega) {
			run := getRestore(g, "nut-restore")
			g.Expect(run.Status.Phase).To(Equal(tenancyv1alpha1.RestoreRunPartiallyFailed), "%+v", run.Status)
		}).WithTimeout(restoreTimeout).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-nut", Name: "cache"}, &corev1.PersistentVolumeClaim{}))
		}).WithTimeout(restoreTimeout).Should(BeTrue(), "the failed volume's claim is removed, so that a retry can create it")
		claim := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-nut", Name: "db"}, claim)).To(Succeed())
		Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
		Eventually(func(g Gomega) []string { return restoreLeftovers(g, "nut-restore") }).WithTimeout(restoreTimeout).Should(BeEmpty())
		var volumes corev1.PersistentVolumeList
		Expect(k8sClient.List(ctx, &volumes, client.MatchingLabels{tenancyv1alpha1.RestoreClaimLabel: failing.name})).To(Succeed())
		Expect(volumes.Items).To(BeEmpty())
	})
})

var _ = Describe("A workspace's mover identity", func() {
	It("gets the IAM role the configuration names now, also when it already existed with another", func() {
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Namespace: moverNamespace, Name: "mover-quartz",
			// As the operator created it, under an older role template.
			Labels:      map[string]string{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue, tenancyv1alpha1.WorkspaceLabel: "quartz"},
			Annotations: map[string]string{roleARNAnnotation: "arn:aws:iam::000000000000:role/old-template-quartz"},
		}})).To(Succeed())
		newTenant("quartz", nil)
		newRestore("quartz-restore", "quartz", restoreVolume("db", "db"))
		Eventually(func(g Gomega) {
			sa := &corev1.ServiceAccount{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: "mover-quartz"}, sa)).To(Succeed())
			g.Expect(sa.Annotations).To(HaveKeyWithValue(roleARNAnnotation, "arn:aws:iam::000000000000:role/mover-quartz"))
		}).WithTimeout(restoreTimeout).Should(Succeed())
	})
})
