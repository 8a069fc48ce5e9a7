package localstack

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/workspace-operator/workspace-operator/internal/localstack/csidriver"
)

// CSIDriverName is the provisioner of the node's volumes: the operator's StorageClasses
// name it on the local stack, as they name ebs.csi.aws.com on EKS.
const CSIDriverName = csidriver.DefaultName

// VolumeSnapshotClassName is the node's default VolumeSnapshotClass.
const VolumeSnapshotClassName = "localstack"

// Images the stack builds and imports into the node.
const (
	CoreDNSImage = "localstack.workspace-operator.io/coredns:v1.15.0"
	// ProbeImage runs the probe command (internal/localstack/cmd/probe): a TCP server and
	// a client that tests can run as pods to prove what the firewall lets through.
	ProbeImage = "localstack.workspace-operator.io/probe:dev"
)

// coreDNSLabels select the CoreDNS pods; the operator's DNS allowance names them.
var coreDNSLabels = map[string]string{"k8s-app": "kube-dns"}

// csiDriver declares the local driver: no attach step (volumes are directories on the one
// node), fsGroup applied by the kubelet, as EBS volumes are.
func csiDriver() *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		TypeMeta:   metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "CSIDriver"},
		ObjectMeta: metav1.ObjectMeta{Name: CSIDriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			FSGroupPolicy:        ptr.To(storagev1.FileFSGroupPolicy),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
}

// volumeSnapshotClass is the node's default snapshot class. It is unstructured because the
// snapshot API's Go types are not a dependency of the stack.
func volumeSnapshotClass() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1",
		"kind":       "VolumeSnapshotClass",
		"metadata": map[string]any{
			"name":        VolumeSnapshotClassName,
			"annotations": map[string]any{"snapshot.storage.kubernetes.io/is-default-class": "true"},
		},
		"driver":         CSIDriverName,
		"deletionPolicy": "Delete",
	}}
}

// corefile serves the cluster domain only: pods have no upstream to forward other names to.
const corefile = `.:53 {
    errors
    health :8080
    ready :8181
    kubernetes ` + ClusterDomain + ` in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loop
}
`

// coreDNSObjects are CoreDNS as kubeadm installs it, trimmed to one replica: its service
// account and RBAC, its Corefile, the Deployment and the kube-dns Service at ClusterDNSIP.
func coreDNSObjects() []client.Object {
	const name, namespace = "coredns", metav1.NamespaceSystem
	meta := metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: coreDNSLabels}
	return []client.Object{
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta},
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:coredns"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}},
		},
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta,
			Data:       map[string]string{"Corefile": corefile},
		},
		&appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: coreDNSLabels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: coreDNSLabels},
					Spec:       coreDNSPod(name),
				},
			},
		},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: namespace, Labels: coreDNSLabels},
			Spec: corev1.ServiceSpec{
				ClusterIP: ClusterDNSIP,
				Selector:  coreDNSLabels,
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				},
			},
		},
	}
}

// coreDNSPod runs CoreDNS as root with only the capability to bind port 53: the image is a
// bare binary, without the file capability the upstream image sets.
func coreDNSPod(serviceAccount string) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName: serviceAccount,
		DNSPolicy:          corev1.DNSDefault,
		PriorityClassName:  "system-cluster-critical",
		Containers: []corev1.Container{{
			Name:            "coredns",
			Image:           CoreDNSImage,
			ImagePullPolicy: corev1.PullNever,
			Args:            []string{"-conf", "/etc/coredns/Corefile"},
			Ports: []corev1.ContainerPort{
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181)}},
				PeriodSeconds: 1,
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
				ReadOnlyRootFilesystem:   ptr.To(true),
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/coredns", ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: serviceAccount}},
		}}},
	}
}

// startCoreDNS creates CoreDNS; waitNodeReady waits for it.
func (s *Stack) startCoreDNS(ctx context.Context) error {
	for _, obj := range coreDNSObjects() {
		if err := s.apply(ctx, obj); err != nil {
			return fmt.Errorf("create CoreDNS %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
	}
	return nil
}

func (s *Stack) coreDNSAvailable(ctx context.Context) (bool, error) {
	d := &appsv1.Deployment{}
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceSystem, Name: "coredns"}, d); err != nil {
		return false, err
	}
	return d.Status.AvailableReplicas > 0, nil
}
