package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Names of the NetworkPolicies that make up a workspace's firewall.
const (
	policyDefaultDeny   = "default-deny"
	policySameNamespace = "allow-same-namespace"
	policyDNS           = "allow-dns"
	policyIngress       = "allow-ingress"
	policyEgress        = "allow-egress"
)

// cloudMetadataAddresses are the instance metadata endpoints (IPv4 and EC2's IPv6). A pod
// that reaches them can read the node's cloud credentials, so every egress rule excludes them.
var cloudMetadataAddresses = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// namespaceNameLabel is set on every namespace by the API server.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// desiredNetworkPolicies is the workspace's firewall: deny everything, then allow traffic
// inside the namespace, DNS to the cluster DNS, ingress from the allowed namespaces and
// the egress the spec asks for. NetworkPolicies are additive, so each allowance is its own
// object and default-deny stays in force whatever the others say.
func desiredNetworkPolicies(ws *tenancyv1alpha1.Workspace, namespace string, cfg Config) []*networkingv1.NetworkPolicy {
	all := metav1.LabelSelector{}
	both := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	policy := func(name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: objectMeta(ws, namespace, name), Spec: spec}
	}

	policies := []*networkingv1.NetworkPolicy{
		policy(policyDefaultDeny, networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: both}),
		policy(policySameNamespace, networkingv1.NetworkPolicySpec{
			PodSelector: all,
			PolicyTypes: both,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &all}}}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &all}}}},
		}),
		policy(policyDNS, networkingv1.NetworkPolicySpec{
			PodSelector: all,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: cfg.DNSNamespace}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: cfg.DNSPodLabels},
				}},
				Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, 53), port(corev1.ProtocolTCP, 53)},
			}},
		}),
	}

	if sources := ingressNamespaces(ws, cfg); len(sources) > 0 {
		policies = append(policies, policy(policyIngress, networkingv1.NetworkPolicySpec{
			PodSelector: all,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: namespaceNameLabel, Operator: metav1.LabelSelectorOpIn, Values: sources},
					// A workspace namespace is never an ingress source, whatever a spec
					// says: one tenant's pods must not reach another's.
					{Key: tenancyv1alpha1.WorkspaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
				}},
			}}}},
		}))
	}

	if len(ws.Spec.Network.Egress) > 0 {
		// The policy is written even if every rule is dropped: with Egress in its types and
		// no rule it allows nothing, which is what the rules amounted to.
		rules := make([]networkingv1.NetworkPolicyEgressRule, 0, len(ws.Spec.Network.Egress))
		for _, egress := range ws.Spec.Network.Egress {
			except, inCluster := egressExcept(egress.CIDR, cfg.ClusterCIDRs)
			if inCluster {
				continue // all of it is the cluster's own pods or services
			}
			rule := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{
				IPBlock: &networkingv1.IPBlock{CIDR: egress.CIDR, Except: except},
			}}}
			for _, p := range egress.Ports {
				protocol := corev1.Protocol(p.Protocol)
				if protocol == "" {
					protocol = corev1.ProtocolTCP
				}
				rule.Ports = append(rule.Ports, port(protocol, p.Port))
			}
			rules = append(rules, rule)
		}
		policies = append(policies, policy(policyEgress, networkingv1.NetworkPolicySpec{
			PodSelector: all,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      rules,
		}))
	}
	return policies
}

// ingressNamespaces are the namespaces allowed to send traffic into ws, sorted.
func ingressNamespaces(ws *tenancyv1alpha1.Workspace, cfg Config) []string {
	sources := ws.Spec.Network.IngressFromNamespaces
	if len(sources) == 0 {
		sources = cfg.IngressNamespaces
	}
	sources = slices.Clone(sources)
	slices.Sort(sources)
	return slices.Compact(sources)
}

// egressExcept lists the cloud metadata addresses and the cluster's ranges inside cidr, to
// be cut out of it, and reports whether cidr lies entirely within a cluster range (an
// ipBlock cannot except all of itself, so such a rule must go).
func egressExcept(cidr string, clusterCIDRs []string) (except []string, inCluster bool) {
	network, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, false // the CRD rejects invalid CIDRs; the API server would refuse the policy anyway
	}
	network = network.Masked()
	excluded := slices.Clone(cloudMetadataAddresses)
	for _, c := range clusterCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			excluded = append(excluded, p.Masked())
		}
	}
	for _, p := range excluded {
		switch {
		case p.Bits() <= network.Bits() && p.Contains(network.Addr()):
			if !slices.Contains(cloudMetadataAddresses, p) {
				return nil, true
			}
		case network.Contains(p.Addr()):
			except = append(except, p.String())
		}
	}
	return except, false
}

func port(protocol corev1.Protocol, number int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(number)
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &p}
}

// reconcileNetworkPolicies applies the firewall and removes allowances the spec no longer asks for.
func (r *WorkspaceReconciler) reconcileNetworkPolicies(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	desired := desiredNetworkPolicies(ws, namespace, r.Config)
	names := make([]string, 0, len(desired))
	for _, policy := range desired {
		err := apply(ctx, r, ws, policy, func(live *networkingv1.NetworkPolicy) {
			mergeLabels(live, policy.Labels)
			live.Spec = policy.Spec
		})
		if err != nil {
			return failed("NetworkPolicyFailed", fmt.Errorf("apply NetworkPolicy %s/%s: %w", namespace, policy.Name, err))
		}
		names = append(names, policy.Name)
	}
	err := prune(ctx, r, ws, namespace, &networkingv1.NetworkPolicyList{}, func(obj client.Object) bool {
		return slices.Contains(names, obj.GetName())
	})
	if err != nil {
		return failed("NetworkPolicyFailed", err)
	}

	ws.Status.Network = &tenancyv1alpha1.NetworkStatus{Policies: names}
	setCondition(ws, tenancyv1alpha1.ConditionNetworkIsolated, metav1.ConditionTrue, "DefaultDeny",
		fmt.Sprintf("default-deny firewall in force with %d allowances: %s", len(names)-1, strings.Join(names[1:], ", ")))
	return nil
}
