package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// podSecuritySpecs: the backup CronJob's pods are the operator's own pods in a tenant
// namespace. On the node they are admitted by Pod Security's restricted profile, scheduled,
// given the workspace's volume by the CSI driver and started from the operator's image:
// nothing plays the kubelet. Registered inside the suite's ordered container, before the
// spec that uninstalls the Workspace API, as firewallSpecs are.
func podSecuritySpecs() {
	Describe("Pods the operator creates on a real node", Ordered, func() {
		const workspace, namespace = "psa", "ws-psa"

		BeforeAll(func() {
			if noNode != "" {
				Skip(noNode)
			}
			Expect(k8sClient.Create(ctx, &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: workspace},
				Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "pat"}}},
			})).To(Succeed())
			expectReady(workspace)
		})

		It("runs the backup CronJob's pod under Pod Security restricted, with the workspace's volume mounted", func() {
			ns := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, key("", namespace), ns)).To(Succeed())
			Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))

			claim := &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: ptrTo(namespace + "-encrypted"),
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
				},
			}
			Expect(k8sClient.Create(ctx, claim)).To(Succeed())
			// The operator does not watch claims: it finds new ones on its drift schedule, or
			// at once when asked, as flux reconcile asks.
			By("asking for a reconcile, then waiting for the operator to add the volume to the backup CronJob")
			ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: workspace}}
			patch := []byte(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`)
			Expect(k8sClient.Patch(ctx, ws, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
			cronJob := &batchv1.CronJob{}
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(namespace, "workspace-backup"), cronJob)).To(Succeed())
				var claims []string
				for _, v := range cronJob.Spec.JobTemplate.Spec.Template.Spec.Volumes {
					if v.PersistentVolumeClaim != nil {
						claims = append(claims, v.PersistentVolumeClaim.ClaimName)
					}
				}
				g.Expect(claims).To(ContainElement("db"))
			}, readyTimeout, interval).Should(Succeed())

			By("starting a backup now, as an SRE would: kubectl create job --from=cronjob/workspace-backup")
			out, err := stack.Kubectl(ctx, "create", "job", "--namespace="+namespace, "backup-now", "--from=cronjob/workspace-backup").CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "%s", out)

			Eventually(func(g Gomega) {
				var pods corev1.PodList
				g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"job-name": "backup-now"})).To(Succeed())
				g.Expect(pods.Items).NotTo(BeEmpty(), "the Job's pod was admitted (a violation would leave a FailedCreate event instead)")
				pod := pods.Items[0]
				g.Expect(pod.Spec.NodeName).NotTo(BeEmpty(), "scheduled")
				g.Expect(pod.Status.ContainerStatuses).NotTo(BeEmpty())
				state := pod.Status.ContainerStatuses[0].State
				g.Expect(state.Running != nil || state.Terminated != nil).To(BeTrue(),
					"the agent's container started from the operator's image, with the volume mounted: %+v", state)
			}, podTimeout, interval).Should(Succeed())
		})

		AfterAll(func() {
			if noNode != "" {
				return
			}
			_ = k8sClient.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "backup-now"}},
				client.PropagationPolicy(metav1.DeletePropagationBackground))
			_ = k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: workspace}})
		})
	})
}
