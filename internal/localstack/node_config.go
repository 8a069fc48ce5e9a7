package localstack

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// nodePaths are the files and directories of one node.
type nodePaths struct {
	run, data string
}

func (p nodePaths) containerdSocket() string {
	return filepath.Join(p.run, "containerd", "containerd.sock")
}
func (p nodePaths) containerdConfig() string { return filepath.Join(p.run, "containerd.toml") }
func (p nodePaths) cniConfDir() string       { return filepath.Join(p.run, "cni", "net.d") }
func (p nodePaths) kubeletRoot() string      { return filepath.Join(p.data, "kubelet") }
func (p nodePaths) kubeletConfig() string    { return filepath.Join(p.run, "kubelet.yaml") }
func (p nodePaths) kubeProxyConfig() string  { return filepath.Join(p.run, "kube-proxy.yaml") }
func (p nodePaths) csiDir() string           { return filepath.Join(p.data, "csi") }
func (p nodePaths) csiSocket(driver string) string {
	return filepath.Join(p.kubeletRoot(), "plugins", driver, "csi.sock")
}
func (p nodePaths) pluginRegistry() string { return filepath.Join(p.kubeletRoot(), "plugins_registry") }

// sandboxImage is the pause image every pod sandbox runs; the node builds it (pauseImage).
const sandboxImage = "registry.k8s.io/pause:3.10.2"

// containerdConfig is containerd's configuration (version 3, containerd 2.x): its state under
// the node's directories, the CRI plugin with runc and the node's CNI network.
func containerdConfig(p nodePaths, cniBinDir string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  # Processes on this machine may not lower their OOM score adjustment: without this every
  # sandbox fails to start with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces live under the state directory, so that cleanup finds them.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[6]q]
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(p.data, "containerd"), filepath.Join(p.run, "containerd-state"), p.containerdSocket(),
		filepath.Join(p.run, "containerd", "containerd.sock.ttrpc"), sandboxImage, cniBinDir, p.cniConfDir())
}

// cniConfig is the pod network: a bridge on the node with host-local addresses from
// NodePodCIDR. Pods are not masqueraded: nothing outside this machine is reachable from them,
// by design.
func cniConfig(p nodePaths) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "localstack",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      NodeBridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": filepath.Join(p.run, "cni", "ipam"),
					"ranges":  []any{[]any{map[string]any{"subnet": NodePodCIDR}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// kubeletPorts are the kubelet's listening ports, chosen free at start.
type kubeletPorts struct {
	serving, healthz string
}

// kubeletConfig is the kubelet's KubeletConfiguration. This machine has cgroup v1 and swap
// may be on; anonymous access with AlwaysAllow stands in for the API server's client
// certificate, which the local control plane does not issue.
func kubeletConfig(p nodePaths, ports kubeletPorts, resolvConf string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /%[4]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[5]s
clusterDNS: [%[6]s]
clusterDomain: %[7]s
resolvConf: %[8]s
podLogsDir: %[9]s
volumePluginDir: %[10]s
registerNode: true
maxPods: 110
serializeImagePulls: false
# The machine's disk may be fuller than a cluster's: evict only when it is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
shutdownGracePeriod: 0s
`, NodeIP, ports.serving, ports.healthz, nodeCgroupParent, p.containerdSocket(), ClusterDNSIP, ClusterDomain,
		resolvConf, filepath.Join(p.data, "pod-logs"), filepath.Join(p.data, "volume-plugins"))
}

// kubeProxyConfig is kube-proxy's configuration: iptables mode, no conntrack tuning (it would
// change the machine's sysctls) and NodePorts only on the node address.
func kubeProxyConfig(kubeconfig, healthz, metrics string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %[1]s}
hostnameOverride: %[2]s
mode: iptables
clusterCIDR: %[3]s
bindAddress: %[4]s
healthzBindAddress: 127.0.0.1:%[5]s
metricsBindAddress: 127.0.0.1:%[6]s
nodePortAddresses: [%[4]s/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, kubeconfig, NodeName, ClusterCIDR, NodeIP, healthz, metrics)
}

// kubeRouterArgs run kube-router as the NetworkPolicy engine only: the bridge CNI plugin does
// the pod network and kube-proxy the Services.
func kubeRouterArgs(kubeconfig, healthPort string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + NodeName,
		"--run-firewall=true",
		"--run-router=false",
		"--run-service-proxy=false",
		"--run-loadbalancer=false",
		"--enable-ipv6=false",
		"--health-port=" + healthPort,
		"--metrics-port=0",
		"--iptables-sync-period=30s",
		"--service-cluster-ip-range=" + ServiceCIDR,
	}
}

// hostPathEnv puts dirs before the inherited PATH: containerd finds its shim there.
func hostPathEnv(inherited string, dirs ...string) string {
	return "PATH=" + strings.Join(append(dirs, inherited), ":")
}
