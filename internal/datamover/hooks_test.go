package datamover

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodHook(t *testing.T) {
	pod := func(annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}, {Name: "sidecar"}}},
		}
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        *preBackupHook
		wantErr     string
	}{
		{name: "no hook"},
		{
			name:        "defaults: first container, 30s, fail on error",
			annotations: map[string]string{PreBackupHookCommandAnnotation: `["/bin/sh", "-c", "psql -c CHECKPOINT"]`},
			want:        &preBackupHook{container: "db", command: []string{"/bin/sh", "-c", "psql -c CHECKPOINT"}, timeout: 30 * time.Second},
		},
		{
			name: "every setting",
			annotations: map[string]string{
				PreBackupHookCommandAnnotation: `["sync"]`, PreBackupHookContainerAnnotation: "sidecar",
				PreBackupHookTimeoutAnnotation: "2m", PreBackupHookOnErrorAnnotation: "Continue",
			},
			want: &preBackupHook{container: "sidecar", command: []string{"sync"}, timeout: 2 * time.Minute, continueOnError: true},
		},
		{name: "a command that is not a JSON array", annotations: map[string]string{PreBackupHookCommandAnnotation: "sync"}, wantErr: "JSON array"},
		{name: "an empty command", annotations: map[string]string{PreBackupHookCommandAnnotation: "[]"}, wantErr: "JSON array"},
		{
			name:        "a container the pod does not have",
			annotations: map[string]string{PreBackupHookCommandAnnotation: `["sync"]`, PreBackupHookContainerAnnotation: "app"},
			wantErr:     `container "app"`,
		},
		{
			name:        "a bad timeout",
			annotations: map[string]string{PreBackupHookCommandAnnotation: `["sync"]`, PreBackupHookTimeoutAnnotation: "soon"},
			wantErr:     "positive duration",
		},
		{
			name:        "an unknown error policy",
			annotations: map[string]string{PreBackupHookCommandAnnotation: `["sync"]`, PreBackupHookOnErrorAnnotation: "Ignore"},
			wantErr:     "Fail or Continue",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podHook(pod(tc.annotations))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(preBackupHook{})); diff != "" {
				t.Errorf("hook (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodsMounting(t *testing.T) {
	pod := func(name string, phase corev1.PodPhase, claims ...string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase}}
		for _, c := range claims {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c},
			}})
		}
		return p
	}
	leaving := pod("leaving", corev1.PodRunning, "db")
	leaving.DeletionTimestamp = &metav1.Time{}
	pods := []corev1.Pod{
		pod("z-replica", corev1.PodRunning, "db"),
		pod("a-primary", corev1.PodRunning, "cache", "db"),
		pod("other", corev1.PodRunning, "cache"),
		pod("pending", corev1.PodPending, "db"),
		pod("done", corev1.PodSucceeded, "db"),
		leaving,
		{ObjectMeta: metav1.ObjectMeta{Name: "emptydir"}, Status: corev1.PodStatus{Phase: corev1.PodRunning},
			Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}},
	}
	var names []string
	for _, p := range podsMounting(pods, "db") {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"a-primary", "z-replica"}, names); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
}
