package e2e

import (
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

const (
	interval = 100 * time.Millisecond
	// readyTimeout bounds provisioning a workspace from scratch.
	readyTimeout = time.Minute
	// repairTimeout is the "within seconds" the operator promises for drift repair.
	repairTimeout = 10 * time.Second
	// namespaceTimeout bounds kube-controller-manager emptying and removing a namespace,
	// which takes from a few seconds to half a minute.
	namespaceTimeout = 90 * time.Second

	workspaceCRD = "workspaces.tenancy.workspace-operator.io"
)

// Names of the objects the operator manages in a workspace namespace.
const (
	quotaName       = "workspace-quota"
	limitRangeName  = "workspace-limits"
	bindingName     = "workspace-owners"
	ownerRole       = "workspace-owner"
	certificateName = "workspace-tls"
)

// firewall is the NetworkPolicies of both samples: each allows ingress from ingress-nginx
// and asks for egress.
var firewall = []string{"default-deny", "allow-same-namespace", "allow-dns", "allow-ingress", "allow-egress"}

var _ = Describe("The operator binary on a real control plane", Ordered, func() {
	BeforeAll(func() {
		Expect(stack.Apply(ctx, testenv.SamplesFile())).To(Succeed())
	})

	It("makes acme Ready with every managed object in place", func() {
		ws := expectReady("acme")
		Expect(ws.Status.Namespace).To(Equal("ws-acme"))
		Expect(ws.Finalizers).To(ContainElement(tenancyv1alpha1.WorkspaceFinalizer))
		expectManagedObjects(ws.Name, ws.Status.Namespace)

		quota := &corev1.ResourceQuota{}
		Expect(k8sClient.Get(ctx, key("ws-acme", quotaName), quota)).To(Succeed())
		Expect(quota.Spec.Hard[corev1.ResourceRequestsCPU]).To(Equal(resource.MustParse("2")), "the small tier")
		binding := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, key("ws-acme", bindingName), binding)).To(Succeed())
		Expect(binding.Subjects).To(ConsistOf(
			rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice@acme.example"},
			rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "acme-admins"},
		))
		err := k8sClient.Get(ctx, key("ws-acme", certificateName), &cmv1.Certificate{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "acme asks for no TLS, so it has no Certificate: %v", err)
	})

	It("makes globex Ready once cert-manager issues its certificate", func() {
		cert := &cmv1.Certificate{}
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "globex")
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseProvisioning))
			g.Expect(condition(ws, tenancyv1alpha1.ConditionCertificateReady).Reason).To(Equal("Issuing"))
			g.Expect(k8sClient.Get(ctx, key("ws-globex", certificateName), cert)).To(Succeed())
		}, readyTimeout, interval).Should(Succeed())
		Expect(cert.Spec.DNSNames).To(Equal([]string{"app.globex.example"}))
		expectManagedObjects("globex", "ws-globex")

		By("playing cert-manager, which does not run here, to issue the certificate")
		issued := client.MergeFrom(cert.DeepCopy())
		notAfter := metav1.NewTime(time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second))
		cert.Status.NotAfter = &notAfter
		cert.Status.Conditions = []cmv1.CertificateCondition{{
			Type: cmv1.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready",
			Message: "Certificate is up to date and has not expired", ObservedGeneration: cert.Generation,
		}}
		Expect(k8sClient.Status().Patch(ctx, cert, issued)).To(Succeed())

		ws := expectReady("globex")
		Expect(condition(ws, tenancyv1alpha1.ConditionCertificateReady).Reason).To(Equal("Issued"))
		Expect(ws.Status.Certificate.NotAfter.Time).To(BeTemporally("==", notAfter.Time))
	})

	It("shows the Workspaces' readiness, phase and namespace to kubectl", func() {
		out, err := stack.Kubectl(ctx, "get", "workspaces").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "kubectl get workspaces:\n%s", out)
		Expect(string(out)).To(MatchRegexp(`^NAME\s+READY\s+PHASE\s+NAMESPACE\s`))
		Expect(string(out)).To(MatchRegexp(`(?m)^acme\s+True\s+Ready\s+ws-acme\s`))
		Expect(string(out)).To(MatchRegexp(`(?m)^globex\s+True\s+Ready\s+ws-globex\s`))
	})

	It("repairs a deleted NetworkPolicy and a hand-edited ResourceQuota within seconds", func() {
		policy := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, key("ws-acme", "default-deny"), policy)).To(Succeed())
		quota := &corev1.ResourceQuota{}
		Expect(k8sClient.Get(ctx, key("ws-acme", quotaName), quota)).To(Succeed())

		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
		// A patch, like kubectl's, because the resourcequota controller keeps updating status.
		edit := client.MergeFrom(quota.DeepCopy())
		quota.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("64")
		Expect(k8sClient.Patch(ctx, quota, edit)).To(Succeed())

		Eventually(func(g Gomega) {
			restored := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), restored)).To(Succeed())
			g.Expect(restored.UID).NotTo(Equal(policy.UID))
			g.Expect(restored.Spec).To(Equal(policy.Spec))
		}, repairTimeout, interval).Should(Succeed())
		Eventually(func(g Gomega) {
			live := &corev1.ResourceQuota{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(quota), live)).To(Succeed())
			g.Expect(live.Spec.Hard[corev1.ResourceRequestsCPU]).To(Equal(resource.MustParse("2")))
		}, repairTimeout, interval).Should(Succeed())
	})

	It("recreates a namespace deleted by hand once kube-controller-manager has removed it", func() {
		namespace := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, key("", "ws-acme"), namespace)).To(Succeed())
		Expect(k8sClient.Delete(ctx, namespace)).To(Succeed())

		Eventually(func(g Gomega) {
			recreated := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, key("", "ws-acme"), recreated)).To(Succeed())
			g.Expect(recreated.UID).NotTo(Equal(namespace.UID))
			g.Expect(recreated.DeletionTimestamp).To(BeNil())
		}, namespaceTimeout, interval).Should(Succeed())
		expectReady("acme")
		expectManagedObjects("acme", "ws-acme")
	})

	It("keeps a deleted Workspace until kube-controller-manager has removed its namespace", func() {
		ws := expectReady("globex")
		Expect(k8sClient.Delete(ctx, ws)).To(Succeed())

		By("the operator deleting the namespace, which goes Terminating")
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "globex")
			g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseDeleting))
			namespace := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, key("", "ws-globex"), namespace)).To(Succeed())
			g.Expect(namespace.Status.Phase).To(Equal(corev1.NamespaceTerminating))
		}, readyTimeout, interval).Should(Succeed())

		By("the namespace controller removing the namespace, and only then the Workspace going")
		Eventually(func(g Gomega) {
			// The Workspace is read first: seen gone, it must not be followed by a namespace
			// that still exists.
			wsErr := k8sClient.Get(ctx, key("", "globex"), &tenancyv1alpha1.Workspace{})
			nsErr := k8sClient.Get(ctx, key("", "ws-globex"), &corev1.Namespace{})
			g.Expect(client.IgnoreNotFound(wsErr)).To(Succeed())
			g.Expect(client.IgnoreNotFound(nsErr)).To(Succeed())
			if apierrors.IsNotFound(wsErr) && nsErr == nil {
				StopTrying("Workspace globex is gone while namespace ws-globex still exists").Now()
			}
			g.Expect(apierrors.IsNotFound(nsErr)).To(BeTrue(), "namespace ws-globex still exists")
			g.Expect(apierrors.IsNotFound(wsErr)).To(BeTrue(), "Workspace globex still exists")
		}, namespaceTimeout, interval).Should(Succeed())
	})

	firewallSpecs()
	podSecuritySpecs()
	backupUndeleteSpecs()
	highAvailabilitySpecs()
	crashSafetySpecs()

	// Must stay last: it uninstalls the Workspace API.
	It("leaves tenant namespaces and their firewalls in place when the Workspace CRD is deleted", func() {
		ws := expectReady("acme")
		namespace := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, key("", "ws-acme"), namespace)).To(Succeed())

		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: workspaceCRD}}
		Expect(k8sClient.Delete(ctx, crd)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, key("", workspaceCRD), crd))
		}, readyTimeout, interval).Should(BeTrue(), "the CRD, and with it every Workspace, is deleted")
		Eventually(func(g Gomega) {
			g.Expect(hasEvent(g, ws, "UninstallDetected")).To(BeTrue())
		}, readyTimeout, interval).Should(Succeed())

		Consistently(func(g Gomega) {
			live := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, key("", "ws-acme"), live)).To(Succeed())
			g.Expect(live.UID).To(Equal(namespace.UID))
			g.Expect(live.DeletionTimestamp).To(BeNil())
			g.Expect(policyNames(g, "ws-acme")).To(ConsistOf(firewall))
		}, 5*time.Second, 250*time.Millisecond).Should(Succeed())
	})
})

func key(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

func getWorkspace(g Gomega, name string) *tenancyv1alpha1.Workspace {
	ws := &tenancyv1alpha1.Workspace{}
	g.Expect(k8sClient.Get(ctx, key("", name), ws)).To(Succeed())
	return ws
}

func condition(ws *tenancyv1alpha1.Workspace, conditionType string) metav1.Condition {
	if c := meta.FindStatusCondition(ws.Status.Conditions, conditionType); c != nil {
		return *c
	}
	return metav1.Condition{Type: conditionType}
}

// expectReady waits until the Workspace's current generation is Ready.
func expectReady(name string) *tenancyv1alpha1.Workspace {
	var ws *tenancyv1alpha1.Workspace
	Eventually(func(g Gomega) {
		ws = getWorkspace(g, name)
		g.Expect(ws.Status.Phase).To(Equal(tenancyv1alpha1.PhaseReady), "conditions: %+v", ws.Status.Conditions)
		g.Expect(condition(ws, tenancyv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ws.Status.ObservedGeneration).To(Equal(ws.Generation))
	}, readyTimeout, interval).Should(Succeed())
	return ws
}

// expectManagedObjects waits until everything the operator manages for every workspace
// exists in its namespace.
func expectManagedObjects(workspace, namespace string) {
	Eventually(func(g Gomega) {
		ns := &corev1.Namespace{}
		g.Expect(k8sClient.Get(ctx, key("", namespace), ns)).To(Succeed())
		g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
		g.Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.WorkspaceLabel, workspace))

		g.Expect(policyNames(g, namespace)).To(ConsistOf(firewall))
		g.Expect(k8sClient.Get(ctx, key(namespace, quotaName), &corev1.ResourceQuota{})).To(Succeed())
		g.Expect(k8sClient.Get(ctx, key(namespace, limitRangeName), &corev1.LimitRange{})).To(Succeed())
		binding := &rbacv1.RoleBinding{}
		g.Expect(k8sClient.Get(ctx, key(namespace, bindingName), binding)).To(Succeed())
		g.Expect(binding.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ownerRole}))
	}, repairTimeout, interval).Should(Succeed())
}

func policyNames(g Gomega, namespace string) []string {
	var policies networkingv1.NetworkPolicyList
	g.Expect(k8sClient.List(ctx, &policies, client.InNamespace(namespace))).To(Succeed())
	names := make([]string, 0, len(policies.Items))
	for _, p := range policies.Items {
		names = append(names, p.Name)
	}
	return names
}

// hasEvent reports whether the operator recorded an event with reason about ws.
func hasEvent(g Gomega, ws *tenancyv1alpha1.Workspace, reason string) bool {
	var events eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &events)).To(Succeed())
	for _, e := range events.Items {
		if e.Regarding.UID == ws.UID && e.Reason == reason {
			return true
		}
	}
	return false
}
