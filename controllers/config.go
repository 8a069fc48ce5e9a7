package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Config is the operator-wide policy that Workspaces do not choose for themselves.
type Config struct {
	// NamespacePrefix is prepended to a Workspace's name to derive its namespace.
	NamespacePrefix string

	// IngressNamespaces may send traffic into a workspace whose spec names none, typically
	// the ingress controller's namespace.
	IngressNamespaces []string

	// DNSNamespace and DNSPodLabels select the cluster DNS pods, the only DNS servers
	// workspace pods may query.
	DNSNamespace string
	DNSPodLabels map[string]string

	// DefaultIssuer signs certificates for workspaces whose spec names no issuer.
	DefaultIssuer tenancyv1alpha1.IssuerReference

	// OwnerClusterRole is bound to a workspace's owners in its namespace.
	OwnerClusterRole string

	// StalledRetryInterval is how long to wait before retrying a Workspace that cannot make
	// progress until someone changes its spec or the cluster.
	StalledRetryInterval time.Duration
}

// DefaultConfig is the configuration the operator runs with when no flag overrides it.
func DefaultConfig() Config {
	return Config{
		NamespacePrefix:      "ws-",
		IngressNamespaces:    []string{"ingress-nginx"},
		DNSNamespace:         "kube-system",
		DNSPodLabels:         map[string]string{"k8s-app": "kube-dns"},
		DefaultIssuer:        tenancyv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer", Group: "cert-manager.io"},
		OwnerClusterRole:     "workspace-owner",
		StalledRetryInterval: 5 * time.Minute,
	}
}

// Validate reports the first setting that would make the operator build invalid objects.
func (c Config) Validate() error {
	if errs := validation.IsDNS1123Label(strings.TrimSuffix(c.NamespacePrefix, "-") + "x"); c.NamespacePrefix != "" && len(errs) > 0 {
		return fmt.Errorf("namespace prefix %q: %s", c.NamespacePrefix, strings.Join(errs, "; "))
	}
	for _, ns := range append([]string{c.DNSNamespace}, c.IngressNamespaces...) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if len(c.DNSPodLabels) == 0 {
		return fmt.Errorf("DNS pod labels must select the cluster DNS pods")
	}
	if c.DefaultIssuer.Name == "" {
		return fmt.Errorf("default issuer name must be set")
	}
	if c.OwnerClusterRole == "" {
		return fmt.Errorf("owner ClusterRole must be set")
	}
	if c.StalledRetryInterval <= 0 {
		return fmt.Errorf("stalled retry interval must be positive")
	}
	return nil
}
