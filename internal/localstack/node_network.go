package localstack

// The node's addresses. None of them is routed off this machine: the node address is an
// alias on the loopback interface, pods live on a bridge the node creates, and services
// exist only in kube-proxy's rules. They are fixed so that a stale node left by a crashed run
// can be found and removed by the next one.
const (
	// NodeName is the name the kubelet registers.
	NodeName = "localstack-node"
	// NodeIP is the node's InternalIP, an alias on lo: the kubelet, kube-apiserver (so that
	// pods reach it through the kubernetes Service) and anything pods must reach on the host
	// listen on it.
	NodeIP = "10.200.0.1"
	// ClusterCIDR holds the pod networks; kube-controller-manager gives the node NodePodCIDR.
	ClusterCIDR = "10.244.0.0/16"
	// NodePodCIDR is the one node's pod network, on the bridge NodeBridge.
	NodePodCIDR = "10.244.0.0/24"
	// ServiceCIDR holds the ClusterIPs; the first is the kubernetes Service.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the kubernetes Service's ClusterIP, in the API server's certificate.
	KubernetesServiceIP = "10.96.0.1"
	// ClusterDNSIP is CoreDNS's Service, the pods' nameserver.
	ClusterDNSIP = "10.96.0.10"
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain = "cluster.local"
	// NodeBridge is the bridge the CNI plugin attaches pods to.
	NodeBridge = "wsop0"
	// NodeZone is the node's topology.kubernetes.io/zone label and the CSI driver's zone.
	NodeZone = "local-a"
)

// Where the node keeps its state on the host. Every path, chain and cgroup the node creates is
// under one of these, so that Stop and the next start's cleanup remove exactly what a node
// created and nothing else.
const (
	nodeRunDir  = "/run/workspace-operator-localstack"
	nodeDataDir = "/var/lib/workspace-operator-localstack"
	// nodeCgroupParent is the cgroup, in every v1 hierarchy, under which the kubelet puts pods.
	nodeCgroupParent = "workspace-operator-localstack"
)
