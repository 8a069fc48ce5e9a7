package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func policyNames(policies []*networkingv1.NetworkPolicy) []string {
	names := make([]string, 0, len(policies))
	for _, p := range policies {
		names = append(names, p.Name)
	}
	return names
}

func findPolicy(t *testing.T, policies []*networkingv1.NetworkPolicy, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, p := range policies {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no NetworkPolicy %s among %v", name, policyNames(policies))
	return nil
}

func TestDesiredNetworkPoliciesSet(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name    string
		network tenancyv1alpha1.NetworkSpec
		cfg     func(*Config)
		want    []string
	}{
		{
			name: "defaults allow the configured ingress controller",
			want: []string{policyDefaultDeny, policySameNamespace, policyDNS, policyIngress},
		},
		{
			name:    "egress adds allow-egress",
			network: tenancyv1alpha1.NetworkSpec{Egress: []tenancyv1alpha1.EgressRule{{CIDR: "10.0.0.0/8"}}},
			want:    []string{policyDefaultDeny, policySameNamespace, policyDNS, policyIngress, policyEgress},
		},
		{
			name: "no ingress namespaces anywhere means no allow-ingress",
			cfg:  func(c *Config) { c.IngressNamespaces = nil },
			want: []string{policyDefaultDeny, policySameNamespace, policyDNS},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			ws := newTestWorkspace("acme")
			ws.Spec.Network = tt.network
			got := policyNames(desiredNetworkPolicies(ws, "ws-acme", c))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("policies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesiredNetworkPoliciesDenyByDefault(t *testing.T) {
	policies := desiredNetworkPolicies(newTestWorkspace("acme"), "ws-acme", DefaultConfig())
	deny := findPolicy(t, policies, policyDefaultDeny)
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
	if diff := cmp.Diff(want, deny.Spec); diff != "" {
		t.Errorf("default-deny (-want +got):\n%s", diff)
	}
	for _, p := range policies {
		if p.Namespace != "ws-acme" || p.Labels[tenancyv1alpha1.WorkspaceLabel] != "acme" || p.Labels[tenancyv1alpha1.ManagedByLabel] != tenancyv1alpha1.ManagedByValue {
			t.Errorf("%s: namespace %q labels %v, want ws-acme with the workspace's managed labels", p.Name, p.Namespace, p.Labels)
		}
	}
}

func TestDesiredNetworkPoliciesDNSOnlyToClusterDNS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DNSNamespace = "dns-system"
	cfg.DNSPodLabels = map[string]string{"app": "coredns"}
	dns := findPolicy(t, desiredNetworkPolicies(newTestWorkspace("acme"), "ws-acme", cfg), policyDNS)

	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	if diff := cmp.Diff([]networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, dns.Spec.PolicyTypes); diff != "" {
		t.Errorf("policy types (-want +got):\n%s", diff)
	}
	rule := dns.Spec.Egress[0]
	if diff := cmp.Diff(map[string]string{namespaceNameLabel: "dns-system"}, rule.To[0].NamespaceSelector.MatchLabels); diff != "" {
		t.Errorf("namespace selector (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"app": "coredns"}, rule.To[0].PodSelector.MatchLabels); diff != "" {
		t.Errorf("pod selector (-want +got):\n%s", diff)
	}
	if len(rule.Ports) != 2 || *rule.Ports[0].Protocol != udp || *rule.Ports[1].Protocol != tcp || rule.Ports[0].Port.IntVal != 53 || rule.Ports[1].Port.IntVal != 53 {
		t.Errorf("ports = %+v, want 53/UDP and 53/TCP", rule.Ports)
	}
}

func TestDesiredNetworkPoliciesIngressNeverFromAnotherWorkspace(t *testing.T) {
	ws := newTestWorkspace("acme")
	ws.Spec.Network.IngressFromNamespaces = []string{"monitoring", "ingress-nginx", "monitoring"}
	ingress := findPolicy(t, desiredNetworkPolicies(ws, "ws-acme", DefaultConfig()), policyIngress)

	want := []metav1.LabelSelectorRequirement{
		{Key: namespaceNameLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"ingress-nginx", "monitoring"}},
		{Key: tenancyv1alpha1.WorkspaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
	}
	if diff := cmp.Diff(want, ingress.Spec.Ingress[0].From[0].NamespaceSelector.MatchExpressions); diff != "" {
		t.Errorf("ingress sources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, ingress.Spec.PolicyTypes); diff != "" {
		t.Errorf("policy types (-want +got):\n%s", diff)
	}
}

func TestDesiredNetworkPoliciesEgressExcludesCloudMetadata(t *testing.T) {
	tests := []struct {
		cidr       string
		wantExcept []string
	}{
		{cidr: "0.0.0.0/0", wantExcept: []string{"169.254.169.254/32"}},
		{cidr: "169.254.0.0/16", wantExcept: []string{"169.254.169.254/32"}},
		{cidr: "10.20.0.0/16", wantExcept: nil},
		{cidr: "::/0", wantExcept: []string{"fd00:ec2::254/128"}},
		{cidr: "2001:db8::/32", wantExcept: nil},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Network.Egress = []tenancyv1alpha1.EgressRule{{
				CIDR:  tt.cidr,
				Ports: []tenancyv1alpha1.EgressPort{{Port: 443}, {Port: 53, Protocol: "UDP"}},
			}}
			egress := findPolicy(t, desiredNetworkPolicies(ws, "ws-acme", DefaultConfig()), policyEgress)
			rule := egress.Spec.Egress[0]
			if diff := cmp.Diff(&networkingv1.IPBlock{CIDR: tt.cidr, Except: tt.wantExcept}, rule.To[0].IPBlock); diff != "" {
				t.Errorf("ipBlock (-want +got):\n%s", diff)
			}
			if *rule.Ports[0].Protocol != corev1.ProtocolTCP || rule.Ports[0].Port.IntVal != 443 {
				t.Errorf("port 0 = %v/%v, want 443/TCP (the default protocol)", rule.Ports[0].Port, *rule.Ports[0].Protocol)
			}
			if *rule.Ports[1].Protocol != corev1.ProtocolUDP {
				t.Errorf("port 1 protocol = %v, want UDP", *rule.Ports[1].Protocol)
			}
		})
	}
}

func newTestWorkspace(name string) *tenancyv1alpha1.Workspace {
	return &tenancyv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: tenancyv1alpha1.WorkspaceSpec{
			Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}},
		},
	}
}

// "Internet egress" must never mean "the rest of the cluster": the cluster's pod and
// service ranges are cut out of every egress rule, and a rule entirely inside them is
// dropped (an ipBlock cannot except more than itself).
func TestDesiredNetworkPoliciesEgressExcludesTheCluster(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClusterCIDRs = []string{"10.0.0.0/16", "172.20.0.0/16", "fd00:10::/56"}
	tests := []struct {
		cidr       string
		wantExcept []string
		dropped    bool
	}{
		{cidr: "0.0.0.0/0", wantExcept: []string{"169.254.169.254/32", "10.0.0.0/16", "172.20.0.0/16"}},
		{cidr: "10.0.0.0/8", wantExcept: []string{"10.0.0.0/16"}},
		{cidr: "::/0", wantExcept: []string{"fd00:ec2::254/128", "fd00:10::/56"}},
		{cidr: "10.0.5.0/24", dropped: true},
		{cidr: "172.20.0.0/16", dropped: true},
		{cidr: "192.168.0.0/16", wantExcept: nil},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Network.Egress = []tenancyv1alpha1.EgressRule{
				{CIDR: "203.0.113.0/24", Ports: []tenancyv1alpha1.EgressPort{{Port: 443}}},
				{CIDR: tt.cidr, Ports: []tenancyv1alpha1.EgressPort{{Port: 443}}},
			}
			egress := findPolicy(t, desiredNetworkPolicies(ws, "ws-acme", cfg), policyEgress)
			if tt.dropped {
				if len(egress.Spec.Egress) != 1 || egress.Spec.Egress[0].To[0].IPBlock.CIDR != "203.0.113.0/24" {
					t.Errorf("egress rules %+v, want only 203.0.113.0/24", egress.Spec.Egress)
				}
				return
			}
			if diff := cmp.Diff(&networkingv1.IPBlock{CIDR: tt.cidr, Except: tt.wantExcept}, egress.Spec.Egress[1].To[0].IPBlock); diff != "" {
				t.Errorf("ipBlock (-want +got):\n%s", diff)
			}
		})
	}
}
