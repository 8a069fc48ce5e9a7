package controllers

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// setSuspend sets spec.suspend, retrying while the operator updates the Workspace too.
func setSuspend(name string, suspend bool) {
	Eventually(func(g Gomega) {
		ws := getWorkspace(g, name)
		ws.Spec.Suspend = suspend
		g.Expect(k8sClient.Update(ctx, ws)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

// requestReconcile sets the Flux reconcile request annotation to value.
func requestReconcile(name, value string) {
	Eventually(func(g Gomega) {
		ws := getWorkspace(g, name)
		if ws.Annotations == nil {
			ws.Annotations = map[string]string{}
		}
		ws.Annotations[tenancyv1alpha1.ReconcileRequestAnnotation] = value
		g.Expect(k8sClient.Update(ctx, ws)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("GitOps verbs", func() {
	It("leaves a suspended workspace alone, says so, and resumes with a full check", func() {
		ws := newWorkspace("suspended")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		setSuspend(ws.Name, true)
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "suspended")
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseSuspended))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionSuspended).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(ws.Status.ObservedGeneration).To(Equal(ws.Generation))
			g.Expect(hasEvent(workspaceEvents(g, "suspended"), corev1.EventTypeNormal, "Suspended")).To(BeTrue())
		}, timeout, interval).Should(Succeed())

		By("neither repairing Kubernetes drift nor calling AWS, even when a check is due and one is requested")
		keyID := keysOf(primaryRegion, "suspended")[0].KeyID
		_, err := kms.NewFromConfig(emu.AWSConfig(primaryRegion)).DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "ws-suspended", Name: resourceQuotaName}})).To(Succeed())
		emu.ResetCalls()
		advanceClock(13 * time.Minute)
		requestReconcile("suspended", "while-suspended")
		Consistently(func(g Gomega) {
			g.Expect(totalAWSCalls()).To(BeZero())
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-suspended", Name: resourceQuotaName}, &corev1.ResourceQuota{})
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the deleted quota stays deleted")
			g.Expect(getWorkspace(g, "suspended").Status.LastHandledReconcileAt).To(BeEmpty())
		}, 2*time.Second, interval).Should(Succeed())

		By("resuming: repairing both and handling the pending request")
		setSuspend(ws.Name, false)
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "suspended")
			g.Expect(meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionSuspended)).To(BeNil())
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseReady))
			g.Expect(ws.Status.LastHandledReconcileAt).To(Equal("while-suspended"))
			g.Expect(keysOf(primaryRegion, "suspended")[0].State).To(Equal("Enabled"))
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-suspended", Name: resourceQuotaName}, &corev1.ResourceQuota{})).To(Succeed())
			g.Expect(hasEvent(workspaceEvents(g, "suspended"), corev1.EventTypeNormal, "Resumed")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("deletes a suspended workspace when asked", func() {
		ws := newWorkspace("suspended-delete")
		ws.Spec.Suspend = true
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getWorkspace(g, "suspended-delete").Status.Phase).To(Equal(tenancyv1alpha1.PhaseSuspended))
		}, timeout, interval).Should(Succeed())
		deleteWorkspace(ws.Name)
	})

	It("reads AWS back on a reconcile request, before the drift check is due, and records it", func() {
		ws := newWorkspace("requested")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)
		keyID := keysOf(primaryRegion, "requested")[0].KeyID
		_, err := kms.NewFromConfig(emu.AWSConfig(primaryRegion)).DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
		Expect(err).NotTo(HaveOccurred())

		requestReconcile("requested", "2026-12-05T10:00:00Z")
		Eventually(func(g Gomega) {
			g.Expect(keysOf(primaryRegion, "requested")[0].State).To(Equal("Enabled"))
			g.Expect(getWorkspace(g, "requested").Status.LastHandledReconcileAt).To(Equal("2026-12-05T10:00:00Z"))
		}, timeout, interval).Should(Succeed())

		By("making no AWS calls for a request already handled")
		emu.ResetCalls()
		poke("ws-requested")
		Consistently(totalAWSCalls, time.Second, interval).Should(BeZero())
	})

	It("adopts a namespace created before its Workspace only when the namespace says so", func() {
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        "ws-adopted",
			Annotations: map[string]string{tenancyv1alpha1.AdoptAnnotation: "someone-else"},
		}})).To(Succeed())
		ws := newWorkspace("adopted")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "adopted")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionNamespaceReady).Reason).To(Equal("NamespaceConflict"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionNamespaceReady).Message).To(ContainSubstring("gives it to workspace someone-else"))
		}, timeout, interval).Should(Succeed())

		Eventually(func(g Gomega) {
			ns := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-adopted"}, ns)).To(Succeed())
			ns.Annotations[tenancyv1alpha1.AdoptAnnotation] = "adopted"
			g.Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		}, timeout, interval).Should(Succeed())
		requestReconcile("adopted", "after-annotating")
		expectReady("adopted")
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-adopted"}, ns)).To(Succeed())
		Expect(belongsTo(ns, "adopted")).To(BeTrue())
		Eventually(func(g Gomega) {
			g.Expect(hasEvent(workspaceEvents(g, "adopted"), corev1.EventTypeNormal, "NamespaceAdopted")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})
})
