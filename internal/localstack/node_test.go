package localstack

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestNode starts a stack with a node, runs pods on it that use the cluster DNS and the API
// server through the kubernetes Service, and checks that stopping it leaves the host as it
// was.
func TestNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and a node")
	}
	nodeOpts, why := NodeFromEnvironment()
	if nodeOpts == nil {
		t.Skip(why)
	}
	// Long enough to wait for the e2e suite, which holds the host's node lock for minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "localstack-node-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("the stack's logs are kept in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	s, err := Start(ctx, Options{Dir: dir, Node: nodeOpts, LogOutput: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.Stop()
		}
	}()
	c := s.client

	pod := func(name string, args ...string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "probe", Image: ProbeImage, ImagePullPolicy: corev1.PullNever, Args: args,
					SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
						Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				}},
			},
		}
	}
	for _, p := range []*corev1.Pod{
		pod("resolve", "resolve", "kubernetes.default.svc."+ClusterDomain),
		pod("apiserver", "dial", KubernetesServiceIP+":443"),
	} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"resolve", "apiserver"} {
		phase := waitPodDone(ctx, t, c, name)
		if name == "apiserver" {
			// The API server answers TLS, not the probe's "ok": a connection is what counts.
			if phase != corev1.PodFailed || !strings.Contains(podLog(ctx, t, s, name), "read no answer") {
				t.Errorf("pod %s: phase %s, log %q; want a connection to the kubernetes Service", name, phase, podLog(ctx, t, s, name))
			}
			continue
		}
		if phase != corev1.PodSucceeded {
			t.Errorf("pod %s ended %s: %s", name, phase, podLog(ctx, t, s, name))
		}
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	assertHostClean(t)
}

func waitPodDone(ctx context.Context, t *testing.T, c client.Client, name string) corev1.PodPhase {
	t.Helper()
	p := &corev1.Pod{}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: name}, p); err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatalf("pod %s did not finish: %v (status %+v)", name, err, p.Status)
	}
	return p.Status.Phase
}

func podLog(ctx context.Context, t *testing.T, s *Stack, name string) string {
	out, err := s.Kubectl(ctx, "logs", "--namespace=default", name).CombinedOutput()
	if err != nil {
		t.Logf("kubectl logs %s: %v", name, err)
	}
	return string(out)
}

// assertHostClean checks that nothing the node created is left on the host.
func assertHostClean(t *testing.T) {
	t.Helper()
	if n, _ := killNodeProcesses(); n > 0 {
		t.Errorf("%d processes of the node were left running", n)
	}
	for _, dir := range []string{nodeRunDir, nodeDataDir} {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s was left behind", dir)
		}
	}
	for _, h := range cgroupHierarchies() {
		if _, err := os.Stat(filepath.Join(h, nodeCgroupParent)); err == nil {
			t.Errorf("cgroup %s was left behind", filepath.Join(h, nodeCgroupParent))
		}
	}
	if saved, err := exec.Command("iptables-save").Output(); err == nil {
		if _, changed := withoutNodeRules(string(saved)); changed {
			t.Errorf("iptables rules of the node were left behind")
		}
	}
	if err := exec.Command("ip", "link", "show", NodeBridge).Run(); err == nil {
		t.Errorf("bridge %s was left behind", NodeBridge)
	}
	if out, err := exec.Command("ip", "-o", "address", "show", "dev", "lo").Output(); err == nil && bytes.Contains(out, []byte(NodeIP)) {
		t.Errorf("node address %s was left on lo", NodeIP)
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && (bytes.Contains(mounts, []byte(nodeRunDir)) || bytes.Contains(mounts, []byte(nodeDataDir))) {
		t.Errorf("mounts of the node were left behind")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
