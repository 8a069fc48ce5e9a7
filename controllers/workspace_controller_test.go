package controllers

import (
	"fmt"
	"strings"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

func newWorkspace(name string) *tenancyv1alpha1.Workspace {
	return &tenancyv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.WorkspaceSpec{
			Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice@example.com"}},
			Quota:  tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.SmallTier},
		},
	}
}

func getWorkspace(g Gomega, name string) *tenancyv1alpha1.Workspace {
	ws := &tenancyv1alpha1.Workspace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, ws)).To(Succeed())
	return ws
}

func condition(ws *tenancyv1alpha1.Workspace, t string) metav1.Condition {
	if c := meta.FindStatusCondition(ws.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{Type: t}
}

func expectReady(name string) *tenancyv1alpha1.Workspace {
	var ws *tenancyv1alpha1.Workspace
	Eventually(func(g Gomega) {
		ws = getWorkspace(g, name)
		g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue), "Ready: %+v", ws.Status.Conditions)
		g.Expect(ws.Status.ObservedGeneration).To(Equal(ws.Generation))
	}, timeout, interval).Should(Succeed())
	return ws
}

func workspaceEvents(g Gomega, name string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &list)).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Workspace" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(events []eventsv1.Event, eventType, reason string) bool {
	for _, e := range events {
		if e.Type == eventType && e.Reason == reason {
			return true
		}
	}
	return false
}

// finalizeNamespace plays the namespace controller, which envtest does not run.
func finalizeNamespace(name string) {
	clientset := kubernetes.NewForConfigOrDie(testEnv.Config)
	Eventually(func(g Gomega) {
		ns, err := clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ns.DeletionTimestamp).NotTo(BeNil())
		ns.Spec.Finalizers = nil
		_, err = clientset.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}, timeout, interval).Should(Succeed(), describeDeletion(strings.TrimPrefix(name, "ws-")))
}

func deleteWorkspace(name string) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ws))).To(Succeed())
	finalizeNamespace("ws-" + name)
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Workspace{}))
	}, timeout, interval).Should(BeTrue(), describeDeletion(name))
}

// describeDeletion describes where a workspace's deletion stands, for a spec that timed
// out waiting for it: the failing step and its error are in the Ready condition.
func describeDeletion(name string) func() string {
	return func() string {
		ws := &tenancyv1alpha1.Workspace{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, ws); err != nil {
			return fmt.Sprintf("workspace %s: %v", name, err)
		}
		ready := condition(ws, tenancyv1alpha1.ConditionReady)
		return fmt.Sprintf("workspace %s: deletionTimestamp %v, finalizers %v, Ready %s (%s): %s",
			name, ws.DeletionTimestamp, ws.Finalizers, ready.Status, ready.Reason, ready.Message)
	}
}

var _ = Describe("Workspace controller", func() {
	It("provisions an isolated namespace and reports Ready", func() {
		ws := newWorkspace("provision")
		ws.Spec.Network.Egress = []tenancyv1alpha1.EgressRule{{CIDR: "0.0.0.0/0", Ports: []tenancyv1alpha1.EgressPort{{Port: 443}}}}
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)

		ws = expectReady(ws.Name)
		Expect(ws.Finalizers).To(ContainElement(tenancyv1alpha1.WorkspaceFinalizer))
		Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseReady))
		Expect(ws.Status.Namespace).To(Equal("ws-provision"))
		for _, t := range concernConditions {
			Expect(condition(ws, t).Status).To(Equal(metav1.ConditionTrue), t)
		}
		Expect(meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionReconciling)).To(BeNil())
		Expect(meta.FindStatusCondition(ws.Status.Conditions, tenancyv1alpha1.ConditionStalled)).To(BeNil())

		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-provision"}, ns)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
		Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.WorkspaceLabel, "provision"))

		var policies networkingv1.NetworkPolicyList
		Expect(k8sClient.List(ctx, &policies, client.InNamespace("ws-provision"))).To(Succeed())
		var names []string
		for _, p := range policies.Items {
			names = append(names, p.Name)
		}
		Expect(names).To(ConsistOf(policyDefaultDeny, policySameNamespace, policyDNS, policyIngress, policyEgress))
		Expect(ws.Status.Network.Policies).To(ConsistOf(names))

		quota := &corev1.ResourceQuota{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-provision", Name: resourceQuotaName}, quota)).To(Succeed())
		Expect(quota.Spec.Hard).NotTo(HaveKey(corev1.ResourceCPU)) // it caps requests.cpu and limits.cpu
		Expect(quota.Spec.Hard[corev1.ResourceRequestsCPU]).To(Equal(resource.MustParse("2")))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-provision", Name: limitRangeName}, &corev1.LimitRange{})).To(Succeed())

		binding := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-provision", Name: ownerRoleBindingName}, binding)).To(Succeed())
		Expect(binding.RoleRef.Name).To(Equal("workspace-owner"))
		Expect(binding.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice@example.com"}))

		Eventually(func(g Gomega) {
			g.Expect(hasEvent(workspaceEvents(g, ws.Name), corev1.EventTypeNormal, "Ready")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("keeps other managers' field ownership when it repairs an object", func() {
		ws := newWorkspace("ownership")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		By("another manager annotating the LimitRange and changing a limit the operator owns")
		key := client.ObjectKey{Namespace: "ws-ownership", Name: limitRangeName}
		limits := &corev1.LimitRange{}
		Expect(k8sClient.Get(ctx, key, limits)).To(Succeed())
		want := limits.Spec.DeepCopy()
		limits.Annotations = map[string]string{"example.com/reviewed": "yes"}
		limits.Spec.Limits[0].Max[corev1.ResourceCPU] = resource.MustParse("100")
		Expect(k8sClient.Update(ctx, limits, client.FieldOwner("tester"))).To(Succeed())

		By("restoring the limit and leaving the API server's record of who owns what intact")
		// The cache keeps no field sets; an update carrying its hollow managedFields would
		// replace the server's and erase the tester's ownership of its annotation.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, limits)).To(Succeed())
			g.Expect(limits.Spec).To(Equal(*want))
		}, timeout, interval).Should(Succeed())
		owned := map[string]string{}
		for _, entry := range limits.ManagedFields {
			if entry.FieldsV1 != nil {
				owned[entry.Manager] += entry.FieldsV1.GetRawString()
			}
		}
		Expect(owned).To(HaveKeyWithValue("tester", ContainSubstring("example.com/reviewed")))
		Expect(owned).To(HaveKeyWithValue(FieldOwner, ContainSubstring("f:limits")))
	})

	It("repairs drift within seconds and makes no writes in steady state", func() {
		ws := newWorkspace("drift")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		expectReady(ws.Name)

		By("making no writes when a reconcile finds nothing to do")
		policy := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-drift", Name: policyDefaultDeny}, policy)).To(Succeed())
		time.Sleep(time.Second) // let earlier reconciles drain
		writes.Store(0)
		reads := wsReads.Load()
		policy.Annotations = map[string]string{"example.com/note": "unrelated change"}
		Expect(k8sClient.Update(ctx, policy)).To(Succeed())
		Eventually(wsReads.Load, timeout, interval).Should(BeNumerically(">", reads), "the edit triggers a reconcile")
		Consistently(writes.Load, 2*time.Second, interval).Should(BeZero())

		By("recreating a deleted NetworkPolicy")
		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
		Eventually(func(g Gomega) {
			restored := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), restored)).To(Succeed())
			g.Expect(restored.UID).NotTo(Equal(policy.UID))
		}, 5*time.Second, interval).Should(Succeed())

		By("reverting an edited ResourceQuota")
		quota := &corev1.ResourceQuota{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-drift", Name: resourceQuotaName}, quota)).To(Succeed())
		quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("64")
		Expect(k8sClient.Update(ctx, quota)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(quota), quota)).To(Succeed())
			g.Expect(quota.Spec.Hard[corev1.ResourceRequestsCPU]).To(Equal(resource.MustParse("2")))
		}, 5*time.Second, interval).Should(Succeed())

		By("re-adopting a RoleBinding whose labels were stripped")
		binding := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-drift", Name: ownerRoleBindingName}, binding)).To(Succeed())
		binding.Labels = nil
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "mallory"})
		Expect(k8sClient.Update(ctx, binding)).To(Succeed())
		// The binding left the operator's label-scoped cache, so nothing fires: a spec change does.
		ws = getWorkspace(Default, ws.Name)
		ws.Spec.Owners = append(ws.Spec.Owners, tenancyv1alpha1.Owner{Kind: tenancyv1alpha1.GroupOwner, Name: "drift-admins"})
		Expect(k8sClient.Update(ctx, ws)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(binding), binding)).To(Succeed())
			g.Expect(binding.Labels).To(HaveKeyWithValue(tenancyv1alpha1.WorkspaceLabel, "drift"))
			g.Expect(binding.Subjects).To(HaveLen(2))
			g.Expect(binding.Subjects).NotTo(ContainElement(HaveField("Name", "mallory")))
		}, 5*time.Second, interval).Should(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(hasEvent(workspaceEvents(g, ws.Name), corev1.EventTypeWarning, "DriftRepaired")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("follows spec changes and prunes what the spec no longer asks for", func() {
		ws := newWorkspace("changes")
		ws.Spec.Network.Egress = []tenancyv1alpha1.EgressRule{{CIDR: "10.0.0.0/8"}}
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)
		ws = expectReady(ws.Name)

		ws.Spec.Network.Egress = nil
		ws.Spec.Quota = tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.LargeTier}
		Expect(k8sClient.Update(ctx, ws)).To(Succeed())

		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-changes", Name: policyEgress}, &networkingv1.NetworkPolicy{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "allow-egress is pruned")
			quota := &corev1.ResourceQuota{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-changes", Name: resourceQuotaName}, quota)).To(Succeed())
			g.Expect(quota.Spec.Hard[corev1.ResourceRequestsCPU]).To(Equal(resource.MustParse("32")))
		}, timeout, interval).Should(Succeed())
		ws = expectReady(ws.Name)
		Expect(ws.Status.Quota.Tier).To(Equal("large"))
		Expect(ws.Status.Network.Policies).NotTo(ContainElement(policyEgress))
	})

	It("mirrors cert-manager's Ready condition into CertificateReady", func() {
		ws := newWorkspace("tls")
		ws.Spec.TLS = &tenancyv1alpha1.TLSSpec{Hosts: []string{"app.tls.example"}}
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		DeferCleanup(deleteWorkspace, ws.Name)

		cert := &cmv1.Certificate{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "ws-tls", Name: certificateName}, cert)).To(Succeed())
			ws := getWorkspace(g, "tls")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionCertificateReady).Reason).To(Equal("Issuing"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseProvisioning))
		}, timeout, interval).Should(Succeed())
		Expect(cert.Spec.DNSNames).To(Equal([]string{"app.tls.example"}))
		Expect(cert.Spec.IssuerRef.Name).To(Equal("letsencrypt"))

		By("cert-manager issuing the certificate") // the test plays cert-manager, which envtest does not run
		notAfter := metav1.NewTime(time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second))
		cert.Status.NotAfter = &notAfter
		cert.Status.Conditions = []cmv1.CertificateCondition{{
			Type: cmv1.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready",
			Message: "Certificate is up to date and has not expired", ObservedGeneration: cert.Generation,
		}}
		Expect(k8sClient.Status().Update(ctx, cert)).To(Succeed())

		ws = expectReady("tls")
		Expect(condition(ws, tenancyv1alpha1.ConditionCertificateReady).Reason).To(Equal("Issued"))
		Expect(ws.Status.Certificate.NotAfter.Time).To(BeTemporally("==", notAfter.Time))

		By("removing the certificate when spec.tls is removed")
		ws.Spec.TLS = nil
		Expect(k8sClient.Update(ctx, ws)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(cert), &cmv1.Certificate{}))
		}, timeout, interval).Should(BeTrue())
		ws = expectReady("tls")
		Expect(condition(ws, tenancyv1alpha1.ConditionCertificateReady).Reason).To(Equal("NotRequested"))
	})

	It("stalls with an actionable message on a namespace it does not own", func() {
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ws-conflict"}})).To(Succeed())
		ws := newWorkspace("conflict")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())

		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "conflict")
			g.Expect(condition(ws, tenancyv1alpha1.ConditionNamespaceReady).Reason).To(Equal("NamespaceConflict"))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Message).To(ContainSubstring("set spec.namespace"))
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseFailed))
			g.Expect(ws.Status.ObservedGeneration).To(Equal(ws.Generation))
		}, timeout, interval).Should(Succeed())

		By("leaving the namespace it does not own alone on deletion")
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: "conflict"}, &tenancyv1alpha1.Workspace{}))
		}, timeout, interval).Should(BeTrue())
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-conflict"}, ns)).To(Succeed())
		Expect(ns.DeletionTimestamp).To(BeNil())
	})

	It("holds the finalizer until a live read shows the namespace gone", func() {
		ws := newWorkspace("delete-me")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		expectReady(ws.Name)

		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())
		Eventually(func(g Gomega) {
			ns := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "ws-delete-me"}, ns)).To(Succeed())
			g.Expect(ns.DeletionTimestamp).NotTo(BeNil())
			ws := getWorkspace(g, "delete-me")
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseDeleting))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Reason).To(Equal("Deleting"))
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(getWorkspace(g, "delete-me").Finalizers).To(ContainElement(tenancyv1alpha1.WorkspaceFinalizer))
		}, time.Second, interval).Should(Succeed())

		finalizeNamespace("ws-delete-me")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: "delete-me"}, &tenancyv1alpha1.Workspace{}))
		}, timeout, interval).Should(BeTrue())
		Eventually(func(g Gomega) {
			events := workspaceEvents(g, "delete-me")
			g.Expect(hasEvent(events, corev1.EventTypeNormal, "DeletingNamespace")).To(BeTrue())
			g.Expect(hasEvent(events, corev1.EventTypeNormal, "Deleted")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("reconciles many workspaces in parallel", func() {
		const n = 20
		for i := range n {
			Expect(k8sClient.Create(ctx, newWorkspace(fmt.Sprintf("bulk-%02d", i)))).To(Succeed())
		}
		for i := range n {
			name := fmt.Sprintf("bulk-%02d", i)
			expectReady(name)
			DeferCleanup(deleteWorkspace, name)
		}
	})
})
