package datamover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Annotations on an application pod asking for a command to run in it before each snapshot
// of a volume it mounts (a database flushing to disk, or dumping into the volume), after
// Velero's pre.hook.backup.velero.io/* and K8up's backupcommand. The pod template of the
// workload carries them, so they travel with the application through GitOps.
const (
	// PreBackupHookCommandAnnotation is the command, as a JSON array (["/bin/sh", "-c", "..."]).
	PreBackupHookCommandAnnotation = "pre.hook.backup.tenancy.workspace-operator.io/command"
	// PreBackupHookContainerAnnotation names the container; default: the pod's first.
	PreBackupHookContainerAnnotation = "pre.hook.backup.tenancy.workspace-operator.io/container"
	// PreBackupHookTimeoutAnnotation bounds the command (a Go duration); default 30s.
	PreBackupHookTimeoutAnnotation = "pre.hook.backup.tenancy.workspace-operator.io/timeout"
	// PreBackupHookOnErrorAnnotation is Fail (default: the volume's backup fails, no
	// inconsistent snapshot is taken) or Continue (the snapshot is taken anyway).
	PreBackupHookOnErrorAnnotation = "pre.hook.backup.tenancy.workspace-operator.io/on-error"
)

const defaultHookTimeout = 30 * time.Second

// PodExecutor runs a command in a container of a running pod, as kubectl exec does.
type PodExecutor interface {
	Exec(ctx context.Context, namespace, pod, container string, command []string) (stdout, stderr string, err error)
}

// preBackupHook is a pod's hook, read from its annotations.
type preBackupHook struct {
	container       string
	command         []string
	timeout         time.Duration
	continueOnError bool
}

// podHook reads a pod's pre-backup hook; nil when it asks for none. A malformed annotation is
// an error, which fails the backup of the volumes the pod mounts: silently skipping the hook
// would take the very snapshot the application asked not to be taken without it.
func podHook(pod *corev1.Pod) (*preBackupHook, error) {
	raw, ok := pod.Annotations[PreBackupHookCommandAnnotation]
	if !ok {
		return nil, nil
	}
	h := &preBackupHook{timeout: defaultHookTimeout}
	if err := json.Unmarshal([]byte(raw), &h.command); err != nil || len(h.command) == 0 {
		return nil, fmt.Errorf("annotation %s must be a JSON array of strings, such as [\"/bin/sh\", \"-c\", \"sync\"]", PreBackupHookCommandAnnotation)
	}
	h.container = pod.Annotations[PreBackupHookContainerAnnotation]
	if h.container == "" && len(pod.Spec.Containers) > 0 {
		h.container = pod.Spec.Containers[0].Name
	}
	if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == h.container }) {
		return nil, fmt.Errorf("annotation %s names container %q, which the pod does not have", PreBackupHookContainerAnnotation, h.container)
	}
	if t, ok := pod.Annotations[PreBackupHookTimeoutAnnotation]; ok {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("annotation %s must be a positive duration such as 2m, not %q", PreBackupHookTimeoutAnnotation, t)
		}
		h.timeout = d
	}
	switch onError := pod.Annotations[PreBackupHookOnErrorAnnotation]; onError {
	case "", "Fail":
	case "Continue":
		h.continueOnError = true
	default:
		return nil, fmt.Errorf("annotation %s must be Fail or Continue, not %q", PreBackupHookOnErrorAnnotation, onError)
	}
	return h, nil
}

// podsMounting are the running pods that mount the claim, by name: the only ones that can
// have unflushed writes to it, and the only ones a command can be run in.
func podsMounting(pods []corev1.Pod, claim string) []corev1.Pod {
	var out []corev1.Pod
	for _, pod := range pods {
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
			return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim
		}) {
			out = append(out, pod)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// preBackupHooks runs the hooks of the pods that mount the claim, right before its snapshot
// is taken in the same pass. Once the snapshot exists they have run: after a crash between
// the two they run again, so a hook must be safe to repeat (a flush or a dump is).
func (r *Reconciler) preBackupHooks(ctx context.Context, v volumeRef, _ *tenancyv1alpha1.VolumeBackupStatus) (result, error) {
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: v.run.Status.Namespace, Name: v.name}, &snapshotv1.VolumeSnapshot{})
	switch {
	case err == nil:
		return done, nil
	case !apierrors.IsNotFound(err):
		return waiting, fmt.Errorf("read VolumeSnapshot %s/%s: %w", v.run.Status.Namespace, v.name, err)
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(v.run.Status.Namespace)); err != nil {
		return waiting, fmt.Errorf("list pods of %s: %w", v.run.Status.Namespace, err)
	}
	for _, pod := range podsMounting(pods.Items, v.claim) {
		hook, err := podHook(&pod)
		if err != nil {
			return failure("pod %s/%s: %v", pod.Namespace, pod.Name, err), nil
		}
		if hook == nil {
			continue
		}
		if r.Executor == nil {
			return failure("pod %s/%s asks for a pre-backup hook, and this operator cannot run commands in pods", pod.Namespace, pod.Name), nil
		}
		hookCtx, cancel := context.WithTimeout(ctx, hook.timeout)
		_, stderr, err := r.Executor.Exec(hookCtx, pod.Namespace, pod.Name, hook.container, hook.command)
		timedOut := errors.Is(hookCtx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil {
			if timedOut {
				err = fmt.Errorf("timed out after %s", hook.timeout)
			}
			message := fmt.Sprintf("pre-backup hook in pod %s/%s, container %s, failed: %v%s", pod.Namespace, pod.Name, hook.container, err, stderrTail(stderr))
			if !hook.continueOnError {
				return failure("%s", message), nil
			}
			r.Recorder.Eventf(v.run, nil, corev1.EventTypeWarning, "PreBackupHookFailed", "Backup", "%s; snapshotting anyway (on-error: Continue)", message)
			continue
		}
		r.Recorder.Eventf(v.run, nil, corev1.EventTypeNormal, "PreBackupHookRan", "Backup",
			"ran the pre-backup hook of pod %s/%s before snapshotting %s", pod.Namespace, pod.Name, v.claim)
	}
	return done, nil
}

// stderrTail is the end of a hook's standard error, enough to say why it failed.
func stderrTail(stderr string) string {
	stderr = strings.TrimSpace(stderr)
	if stderr == "" {
		return ""
	}
	if len(stderr) > 512 {
		stderr = "…" + stderr[len(stderr)-512:]
	}
	return ": " + stderr
}
