package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controllers are the kube-controller-manager controllers the stack runs: those that make
// namespaces and the objects in them behave as on a real cluster. The node, workload,
// volume-binding and certificate controllers have nothing to act on without nodes. The
// serviceaccount-token controller is left out because it needs a signing key and only
// serves legacy token Secrets.
var controllers = []string{
	"namespace-controller",                        // deletes a terminating namespace's contents, then the namespace
	"garbage-collector-controller",                // deletes dependents through owner references
	"resourcequota-controller",                    // fills in ResourceQuota status.used
	"serviceaccount-controller",                   // creates every namespace's default ServiceAccount
	"root-ca-certificate-publisher-controller",    // creates every namespace's kube-root-ca.crt ConfigMap
	"persistentvolumeclaim-protection-controller", // releases a deleted claim no pod uses, so its namespace can go
}

// nodeControllers are the controllers a stack with a node adds: pod CIDRs and readiness
// for the node, the workload controllers, Service endpoints and volume binding.
var nodeControllers = []string{
	"node-ipam-controller",                 // gives the node its pod CIDR
	"node-lifecycle-controller",            // removes the not-ready taint once the node is Ready
	"job-controller", "cronjob-controller", // backups and restores
	"replicaset-controller", "deployment-controller", "statefulset-controller", "daemonset-controller",
	"endpointslice-controller",               // Service endpoints for kube-proxy and CoreDNS
	"persistentvolume-binder-controller",     // binds claims to the CSI driver's volumes
	"persistentvolume-protection-controller", // keeps a volume until no claim uses it
	"ephemeral-volume-controller",            // generic ephemeral volumes
	"pod-garbage-collector-controller",       // removes pods of a deleted node
	"ttl-after-finished-controller",          // removes finished Jobs
	"disruption-controller",                  // PodDisruptionBudget status
}

// startControllerManager runs kube-controller-manager as a member of system:masters, so
// that every controller can act without per-controller service account credentials.
func (s *Stack) startControllerManager(ctx context.Context) error {
	user, err := s.env.ControlPlane.AddUser(envtest.User{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("provision the kube-controller-manager user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("kube-controller-manager kubeconfig: %w", err)
	}
	kubeconfigPath := s.statePath("kube-controller-manager", "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kube-controller-manager kubeconfig: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}

	enabled := controllers
	args := []string{
		"--kubeconfig=" + kubeconfigPath,
		"--leader-elect=false",
		// Serving only answers health checks, on a self-signed certificate.
		"--bind-address=127.0.0.1",
		"--secure-port=" + port,
		"--cert-dir=" + s.statePath("kube-controller-manager"),
	}
	if s.node != nil {
		enabled = append(slices.Clone(controllers), nodeControllers...)
		args = append(args, "--allocate-node-cidrs=true", "--cluster-cidr="+ClusterCIDR,
			"--node-cidr-mask-size=24", "--service-cluster-ip-range="+ServiceCIDR)
	}
	s.kcm, err = s.StartProcess(ProcessOptions{
		Name: "kube-controller-manager",
		Path: filepath.Join(s.assets, "kube-controller-manager"),
		Args: append(args, "--controllers="+strings.Join(enabled, ",")),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := s.kcm.WaitHealthy(ctx, "https://127.0.0.1:"+port+"/healthz"); err != nil {
		s.abandon(s.kcm)
		return err
	}
	s.logf("kube-controller-manager is running %s", strings.Join(enabled, ", "))
	return nil
}
