package e2e

import (
	"fmt"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
)

// probePort is where the probe servers listen.
const probePort = 8080

// podTimeout bounds a probe pod's life: scheduling, the sandbox, the wait for the
// NetworkPolicy engine and a dial that times out.
const podTimeout = time.Minute

// probePod is a pod of the stack's probe image that Pod Security's restricted profile
// admits, with requests inside any workspace quota.
func probePod(namespace, name string, restart corev1.RestartPolicy, args ...string) *corev1.Pod {
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                restart,
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "probe", Image: localstack.ProbeImage, ImagePullPolicy: corev1.PullNever, Args: args,
				Resources: corev1.ResourceRequirements{Requests: small, Limits: small},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// startServer runs a probe server on probePort and returns its pod IP once it is running.
func startServer(namespace, name string) string {
	return startServerOn(namespace, name, probePort)
}

// startServerOn runs a probe server on port and returns its pod IP once it is running.
func startServerOn(namespace, name string, port int) string {
	pod := probePod(namespace, name, corev1.RestartPolicyAlways, "serve", fmt.Sprintf("--listen=:%d", port))
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key(namespace, name), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(pod.Status.PodIP).NotTo(BeEmpty())
	}, podTimeout, interval).Should(Succeed())
	return pod.Status.PodIP
}

// probe runs the probe once in a pod of namespace and reports whether it succeeded, with
// its log. It waits a few seconds before acting, so that the NetworkPolicy engine has seen
// the new pod: a connection that passes before the rules exist would prove nothing.
func probe(namespace, name string, args ...string) (bool, string) {
	pod := probePod(namespace, name, corev1.RestartPolicyNever, append([]string{args[0], "--after=3s", "--timeout=5s"}, args[1:]...)...)
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	DeferCleanup(func() { _ = k8sClient.Delete(ctx, pod) })
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key(namespace, name), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(BeElementOf(corev1.PodSucceeded, corev1.PodFailed))
	}, podTimeout, interval).Should(Succeed())
	log, _ := stack.Kubectl(ctx, "logs", "--namespace="+namespace, name).CombinedOutput()
	return pod.Status.Phase == corev1.PodSucceeded, string(log)
}

// firewallSpecs register, inside the suite's ordered container (before the uninstall spec),
// the specs that prove each workspace's NetworkPolicies with real connections between pods on
// the stack's node, enforced by kube-router.
func firewallSpecs() {
	Context("Workspace firewalls on a real node", Ordered, func() {
		var serverA, serverB, systemServer string

		BeforeAll(func() {
			if noNode != "" {
				Skip(noNode)
			}
			for _, name := range []string{"fw-a", "fw-b"} {
				Expect(k8sClient.Create(ctx, &tenancyv1alpha1.Workspace{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: tenancyv1alpha1.WorkspaceSpec{
						Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: name + "@example.com"}},
					},
				})).To(Succeed())
			}
			expectReady("fw-a")
			expectReady("fw-b")
			serverA = startServer("ws-fw-a", "server")
			serverB = startServer("ws-fw-b", "server")
			// A cluster service that is not DNS, with no NetworkPolicy of its own, as most of
			// kube-system is.
			systemServer = startServer(metav1.NamespaceSystem, "fw-system-server")
		})

		It("lets a workspace's pods reach each other and resolve names through the cluster DNS", func() {
			ok, log := probe("ws-fw-a", "dial-own", "dial", fmt.Sprintf("%s:%d", serverA, probePort))
			Expect(ok).To(BeTrue(), "a pod reaches a pod of its own workspace:\n%s", log)
			ok, log = probe("ws-fw-a", "resolve", "resolve", "kubernetes.default.svc.cluster.local")
			Expect(ok).To(BeTrue(), "the DNS allowance lets the CoreDNS pod answer:\n%s", log)
		})

		It("keeps a workspace's pods from another workspace and from kube-system", func() {
			ok, log := probe("ws-fw-a", "dial-other", "dial", fmt.Sprintf("%s:%d", serverB, probePort))
			Expect(ok).To(BeFalse(), "a pod of fw-a reached fw-b's server:\n%s", log)
			ok, log = probe("ws-fw-b", "dial-other", "dial", fmt.Sprintf("%s:%d", serverA, probePort))
			Expect(ok).To(BeFalse(), "a pod of fw-b reached fw-a's server:\n%s", log)
			ok, log = probe("ws-fw-a", "dial-system", "dial", fmt.Sprintf("%s:%d", systemServer, probePort))
			Expect(ok).To(BeFalse(), "a pod of fw-a reached a kube-system pod:\n%s", log)
		})

		It("keeps pods outside the workspace from reaching into it", func() {
			ok, log := probe(metav1.NamespaceSystem, "fw-dial-in", "dial", fmt.Sprintf("%s:%d", serverA, probePort))
			Expect(ok).To(BeFalse(), "a kube-system pod reached fw-a's server:\n%s", log)
		})

		It("lets \"internet\" egress reach outside the cluster, never the cluster's own pods", func() {
			By("serving on the node address, outside the pod and Service ranges, as a server on the internet would")
			outside, err := net.Listen("tcp", net.JoinHostPort(localstack.NodeIP, "0"))
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(outside.Close)
			go func() {
				for {
					conn, err := outside.Accept()
					if err != nil {
						return
					}
					_, _ = conn.Write([]byte("ok\n"))
					_ = conn.Close()
				}
			}()
			port := outside.Addr().(*net.TCPAddr).Port
			insider := startServerOn(metav1.NamespaceSystem, "fw-egress-target", port)
			DeferCleanup(func() {
				_ = k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "fw-egress-target"}})
			})

			Expect(k8sClient.Create(ctx, &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: "fw-egress"},
				Spec: tenancyv1alpha1.WorkspaceSpec{
					Owners:  []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "eve@example.com"}},
					Network: tenancyv1alpha1.NetworkSpec{Egress: []tenancyv1alpha1.EgressRule{{CIDR: "0.0.0.0/0", Ports: []tenancyv1alpha1.EgressPort{{Port: int32(port)}}}}},
				},
			})).To(Succeed())
			DeferCleanup(func() {
				_ = k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "fw-egress"}})
			})
			expectReady("fw-egress")

			ok, log := probe("ws-fw-egress", "dial-outside", "dial", fmt.Sprintf("%s:%d", localstack.NodeIP, port))
			Expect(ok).To(BeTrue(), "egress to 0.0.0.0/0 reaches a server outside the cluster:\n%s", log)
			ok, log = probe("ws-fw-egress", "dial-insider", "dial", fmt.Sprintf("%s:%d", insider, port))
			Expect(ok).To(BeFalse(), "egress to 0.0.0.0/0 reached a kube-system pod on the same port:\n%s", log)
		})

		It("shows that the probe would see an open path: kube-system reaches its own server", func() {
			// The negative specs above are meaningful only if the same dial succeeds where no
			// policy applies.
			ok, log := probe(metav1.NamespaceSystem, "fw-dial-system", "dial", fmt.Sprintf("%s:%d", systemServer, probePort))
			Expect(ok).To(BeTrue(), "kube-system has no NetworkPolicy:\n%s", log)
		})

		AfterAll(func() {
			if noNode != "" {
				return
			}
			_ = k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "fw-system-server"}})
			for _, name := range []string{"fw-a", "fw-b"} {
				_ = k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}})
			}
		})
	})
}
