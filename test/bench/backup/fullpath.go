package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/controllers"
	"github.com/workspace-operator/workspace-operator/internal/datamover"
	"github.com/workspace-operator/workspace-operator/internal/localstack"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// The full path runs on the local stack's node, with the operator as a process.
const (
	fullPathImage     = "localstack.workspace-operator.io/workspace-operator:bench"
	fullPathMover     = "workspace-operator-mover"
	fullPathNamespace = "ws-" + workspace
	fullPathClaim     = "data"
)

// fullPathMilestones are the mover's steps the report times, in order: a volume's
// status.step names the last step confirmed, and a status write may confirm several.
var fullPathMilestones = []string{datamover.StepSnapshot, datamover.StepClone, datamover.StepMove}

// fullPathSample is one measured run: the floor, then the whole path, against one server.
type fullPathSample struct {
	Run int `json:"run"`
	// Floor is a plain tar of the volume's files streamed to one bucket from the host.
	Floor time.Duration `json:"floor_ns"`
	// Agent is the backup agent run on the host on the volume's files, to the workspace's
	// two locations: the full path without the snapshot, the clone and the pod.
	Agent time.Duration `json:"agent_ns"`
	// Total is from creating the WorkspaceBackup to its finished phase, cleanup included.
	Total time.Duration `json:"total_ns"`
	// Snapshot, Expose (the snapshot's copy into the mover namespace and the clone
	// restored from it), Move (mover pod scheduled, started, uploading to both locations)
	// and Cleanup split Total at the first poll that saw each milestone.
	Snapshot time.Duration `json:"snapshot_ns"`
	Expose   time.Duration `json:"expose_ns"`
	Move     time.Duration `json:"move_ns"`
	Cleanup  time.Duration `json:"cleanup_ns"`
	// ArchiveBytes is the volume's archive in one location, from the run's status.
	ArchiveBytes int64 `json:"archive_bytes"`
}

type fullPathReport struct {
	Date    time.Time        `json:"date"`
	Tree    *tree            `json:"tree"`
	Samples []fullPathSample `json:"samples"`
	Median  fullPathSample   `json:"median"`
}

// fullPathMain measures the data mover's whole path for the tree on a real node: a CSI
// snapshot of a volume in use, its copy and clone in the mover namespace, a mover pod
// uploading to two locations, and the cleanup, against the floor (a plain tar upload of
// the same files to the same server) measured in the same run. The server is the AWS
// emulator, which the node's pods reach; it keeps objects in memory.
func fullPathMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("full-path", flag.ContinueOnError)
	size := fs.String("size", "1GiB", "Size of the generated tree (KiB, MiB, GiB suffixes).")
	seed := fs.Uint64("seed", 1, "Seed of the generated tree.")
	runs := fs.Int("runs", 3, "Runs of the floor, the agent on the host and the full path, interleaved; the report gives the median.")
	out := fs.String("out", "", "Write the results as JSON to this file.")
	keep := fs.Bool("keep", false, "Keep the work directory, with the stack's logs.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The stack's client logs nothing the report needs; the processes log to files.
	ctrllog.SetLogger(logr.Discard())
	treeSize, err := parseSize(*size)
	if err != nil {
		return err
	}
	node, why := localstack.NodeFromEnvironment()
	if node == nil {
		return fmt.Errorf("the full path needs the local node: %s (make node prints its assets)", why)
	}
	t, err := cachedTree(treeSize, *seed)
	if err != nil {
		return err
	}
	workDir, cleanup, err := makeWorkDir(&config{keep: *keep})
	if err != nil {
		return err
	}
	defer cleanup()

	env, err := startFullPathStack(ctx, node, workDir)
	if err != nil {
		return err
	}
	defer env.stop()
	volume, err := env.fillVolume(ctx, t)
	if err != nil {
		return err
	}
	if err := warmCache(volume); err != nil {
		return err
	}

	rep := fullPathReport{Date: time.Now().UTC(), Tree: t}
	for run := 1; run <= *runs; run++ {
		s, err := env.measure(ctx, run, volume, workDir)
		if err != nil {
			return err
		}
		log.Printf("run %d: floor %.2fs, agent %.2fs, full path %.2fs", run, s.Floor.Seconds(), s.Agent.Seconds(), s.Total.Seconds())
		rep.Samples = append(rep.Samples, s)
	}
	rep.Median = medianFullPath(rep.Samples)
	rep.print(os.Stdout)
	if *out != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", *out)
	}
	return nil
}

// fullPathEnv is the stack the full path runs on.
type fullPathEnv struct {
	stack       *localstack.Stack
	client      client.Client
	emulator    *localstack.AWSEmulator
	s3          *s3.Client
	operatorBin string
	// moverIdentity is the environment the mover's pods get: the backup role's credentials.
	moverIdentity []string
}

// emulatorConfig signs as accessKeyID, at the emulator.
func (e *fullPathEnv) emulatorConfig(region, accessKeyID string) aws.Config {
	cfg := awsemu.NewAWSConfig(e.emulator.URL(), region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(accessKeyID, awsemu.TestSecretAccessKey, "")
	return cfg
}

// startFullPathStack starts the control plane and node, the AWS emulator and the operator
// with its data mover, and makes the workspace Ready.
func startFullPathStack(ctx context.Context, node *localstack.NodeOptions, workDir string) (*fullPathEnv, error) {
	operatorBin := filepath.Join(workDir, "manager")
	emulatorBin := filepath.Join(workDir, "awsemu")
	log.Print("building the operator and the AWS emulator")
	if err := localstack.BuildBinary(ctx, ".", operatorBin); err != nil {
		return nil, err
	}
	if err := localstack.BuildBinary(ctx, "./test/awsemu/cmd/awsemu", emulatorBin); err != nil {
		return nil, err
	}
	archive := filepath.Join(workDir, "operator-image.tar")
	if err := localstack.WriteImage(localstack.Image{
		Ref: fullPathImage, Files: map[string]string{"/manager": operatorBin}, Entrypoint: []string{"/manager"}, User: "65532",
	}, archive); err != nil {
		return nil, err
	}
	node.Images = append(node.Images, archive)
	certManagerCRDs, err := testenv.CertManagerCRDDir()
	if err != nil {
		return nil, err
	}
	stackDir := filepath.Join(workDir, "stack")
	log.Printf("starting the control plane and the node, logs in %s", stackDir)
	stack, err := localstack.Start(ctx, localstack.Options{
		Node:    node,
		Dir:     stackDir,
		CRDDirs: []string{testenv.OperatorCRDDir(), certManagerCRDs},
		Manifests: []string{
			testenv.OwnerRoleFile(), testenv.StorageClassPolicyFile(), testenv.OperatorNamespaceFile(),
		},
	})
	if err != nil {
		return nil, err
	}
	env := &fullPathEnv{stack: stack, operatorBin: operatorBin}
	if err := env.start(ctx, emulatorBin, operatorBin, workDir); err != nil {
		env.stop()
		return nil, err
	}
	return env, nil
}

func (e *fullPathEnv) start(ctx context.Context, emulatorBin, operatorBin, workDir string) error {
	var err error
	if e.emulator, err = e.stack.StartAWSEmulator(ctx, emulatorBin); err != nil {
		return err
	}
	if e.client, err = client.New(e.stack.Config(), client.Options{Scheme: controllers.Scheme()}); err != nil {
		return err
	}
	e.moverIdentity = localstack.ClientEnvAs(awsemu.BackupAccessKeyID, awsemu.TestSecretAccessKey)
	manifests := filepath.Join(workDir, "mover.yaml")
	if err := os.WriteFile(manifests, []byte(moverNamespaceManifest+"---\n"+localstack.PodIdentityPolicy(fullPathMover, e.moverIdentity)), 0o600); err != nil {
		return err
	}
	if err := e.stack.Apply(ctx, manifests); err != nil {
		return err
	}
	if _, err := e.stack.StartOperator(ctx, localstack.OperatorOptions{
		Binary: operatorBin,
		Args: []string{
			"--aws-region=" + regions[0], "--aws-replica-region=" + regions[1],
			"--replication-role-arn=arn:aws:iam::000000000000:role/replication",
			"--storage-provisioner=" + localstack.CSIDriverName,
			"--backup-image=" + fullPathImage,
			"--mover-namespace=" + fullPathMover,
		},
		Env: append(e.emulator.ClientEnv(), e.emulator.EndpointEnv()...),
	}); err != nil {
		return err
	}
	e.s3 = s3.NewFromConfig(e.emulatorConfig(regions[0], awsemu.OperatorAccessKeyID), awsemu.UsePathStyle)

	log.Printf("making workspace %s Ready", workspace)
	ws := &tenancyv1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: workspace},
		Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "bench"}}},
	}
	if err := e.client.Create(ctx, ws); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.client.Get(ctx, client.ObjectKeyFromObject(ws), ws); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(ws.Status.Conditions, tenancyv1alpha1.ConditionReady), nil
	})
}

// moverNamespaceManifest is the mover namespace as the chart creates it.
const moverNamespaceManifest = `apiVersion: v1
kind: Namespace
metadata:
  name: ` + fullPathMover + `
  labels:
    pod-security.kubernetes.io/enforce: privileged
`

func (e *fullPathEnv) stop() {
	if err := e.stack.Stop(); err != nil {
		log.Printf("stopping the stack: %v", err)
	}
}

// fillVolume provisions the workspace's volume, keeps it in use by a pod, and copies the
// tree into it from the host. It returns the volume's directory on the host.
func (e *fullPathEnv) fillVolume(ctx context.Context, t *tree) (string, error) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: fullPathNamespace, Name: fullPathClaim},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(fullPathNamespace + "-encrypted"),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(2*t.Bytes, resource.BinarySI),
			}},
		},
	}
	if err := e.client.Create(ctx, claim); err != nil {
		return "", err
	}
	if err := e.client.Create(ctx, holderPod()); err != nil {
		return "", err
	}
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.client.Get(ctx, client.ObjectKeyFromObject(claim), claim); err != nil {
			return false, err
		}
		return claim.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		return "", fmt.Errorf("claim %s/%s not bound: %w", claim.Namespace, claim.Name, err)
	}
	pv := &corev1.PersistentVolume{}
	if err := e.client.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, pv); err != nil {
		return "", err
	}
	if pv.Spec.CSI == nil {
		return "", fmt.Errorf("volume %s is not a CSI volume", pv.Name)
	}
	dir, err := e.stack.VolumeDir(pv.Spec.CSI.VolumeHandle)
	if err != nil {
		return "", err
	}
	log.Printf("copying the tree into volume %s", pv.Name)
	return dir, copyTree(t.Dir, dir)
}

// holderPod keeps the volume in use, as a workload would.
func holderPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: fullPathNamespace, Name: "holder"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "holder", Image: localstack.ProbeImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: fullPathClaim},
			}}},
		},
	}
}

// measure runs the floor, the agent on the host and the full path, once each, and then
// deletes the run's backups, which the emulator holds in memory.
func (e *fullPathEnv) measure(ctx context.Context, run int, volume, workDir string) (fullPathSample, error) {
	s := fullPathSample{Run: run}
	dir := filepath.Join(workDir, "run-"+strconv.Itoa(run))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return s, err
	}
	var err error
	if s.Floor, err = e.floor(ctx, run, volume, dir); err != nil {
		return s, err
	}
	if s.Agent, err = e.agent(ctx, volume, dir); err != nil {
		return s, err
	}
	if err := e.fullPath(ctx, run, &s); err != nil {
		return s, err
	}
	return s, e.deleteBackups(ctx)
}

// agent runs the operator binary's backup agent on the host, with the mover's identity,
// arguments and endpoints.
func (e *fullPathEnv) agent(ctx context.Context, volume, dir string) (time.Duration, error) {
	ws := &tenancyv1alpha1.Workspace{}
	if err := e.client.Get(ctx, client.ObjectKey{Name: workspace}, ws); err != nil {
		return 0, err
	}
	args := []string{"backup", "--workspace", workspace, "--source", volume,
		"--retention-days", strconv.Itoa(int(ws.Status.Backup.RetentionDays)),
		"--summary-file", filepath.Join(dir, "summary.json"), "--log-format", "json"}
	for _, l := range ws.Status.Backup.Locations {
		key := keyAlias(ws, l.Region)
		if key == "" {
			return 0, fmt.Errorf("workspace %s has no key in %s", workspace, l.Region)
		}
		args = append(args, "--location", l.Region+"="+l.Bucket+","+key)
	}
	cmd := exec.Command(e.operatorBin, args...)
	cmd.Env = append(cleanEnv(), e.moverIdentity...)
	cmd.Env = append(cmd.Env, e.emulator.EndpointEnv()...)
	s, err := runChild(ctx, cmd, &runDir{dir: dir})
	return s.Wall, err
}

func keyAlias(ws *tenancyv1alpha1.Workspace, region string) string {
	if ws.Status.Encryption == nil {
		return ""
	}
	for _, k := range ws.Status.Encryption.Keys {
		if k.Region == region {
			return k.Alias
		}
	}
	return ""
}

// deleteBackups deletes every version in the workspace's backup buckets, as the
// account's root user: only the purge may delete backups otherwise.
func (e *fullPathEnv) deleteBackups(ctx context.Context) error {
	ws := &tenancyv1alpha1.Workspace{}
	if err := e.client.Get(ctx, client.ObjectKey{Name: workspace}, ws); err != nil {
		return err
	}
	for _, l := range ws.Status.Backup.Locations {
		root := s3.NewFromConfig(e.emulatorConfig(l.Region, awsemu.RootAccessKeyID), awsemu.UsePathStyle)
		versions, err := root.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(l.Bucket)})
		if err != nil {
			return fmt.Errorf("list backups in %s: %w", l.Bucket, err)
		}
		for _, v := range versions.Versions {
			if _, err := root.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(l.Bucket), Key: v.Key, VersionId: v.VersionId}); err != nil {
				return fmt.Errorf("delete backup object %s in %s: %w", aws.ToString(v.Key), l.Bucket, err)
			}
		}
	}
	return nil
}

// floor uploads a plain tar of the volume's files to a fresh bucket of the same server,
// with this binary's floor subcommand and the agent's client settings, then empties it.
func (e *fullPathEnv) floor(ctx context.Context, run int, volume, dir string) (time.Duration, error) {
	bucket := "bench-floor-" + strconv.Itoa(run)
	_, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                    aws.String(bucket),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(regions[0])},
	})
	if err != nil {
		return 0, fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	defer e.emptyBucket(ctx, bucket)
	cmd := floorUpload(volume, bucket)
	cmd.Env = append(cleanEnv(), e.emulator.ClientEnv()...)
	cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL="+e.emulator.URL())
	s, err := runChild(ctx, cmd, &runDir{dir: dir})
	return s.Wall, err
}

// emptyBucket deletes the floor's upload, which the emulator holds in memory.
func (e *fullPathEnv) emptyBucket(ctx context.Context, bucket string) {
	out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err == nil {
		for _, o := range out.Contents {
			_, err = e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		}
	}
	if err == nil {
		_, err = e.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	}
	if err != nil {
		log.Printf("emptying bucket %s: %v", bucket, err)
	}
}

// fullPath creates a WorkspaceBackup, as the backup CronJob's Job does, and polls it
// until it finishes, noting when each milestone is first seen.
func (e *fullPathEnv) fullPath(ctx context.Context, run int, s *fullPathSample) error {
	backupRun := &tenancyv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: fullPathMover, Name: "bench-" + strconv.Itoa(run)},
		Spec:       tenancyv1alpha1.WorkspaceBackupSpec{Workspace: workspace},
	}
	started := time.Now()
	if err := e.client.Create(ctx, backupRun); err != nil {
		return err
	}
	seen := make([]time.Duration, len(fullPathMilestones))
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.client.Get(ctx, client.ObjectKeyFromObject(backupRun), backupRun); err != nil {
			return false, err
		}
		elapsed := time.Since(started)
		if len(backupRun.Status.Volumes) == 1 {
			for i := range milestonesReached(backupRun.Status.Volumes[0].Step) {
				if seen[i] == 0 {
					seen[i] = elapsed
				}
			}
		}
		switch backupRun.Status.Phase {
		case tenancyv1alpha1.BackupRunSucceeded:
			s.Total = elapsed
			return true, nil
		case tenancyv1alpha1.BackupRunFailed, tenancyv1alpha1.BackupRunPartiallyFailed:
			return false, fmt.Errorf("backup run %s %s: %+v", backupRun.Name, backupRun.Status.Phase, backupRun.Status.Volumes)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	// A milestone confirmed in the same status write as the next one is seen with it.
	for i := len(seen) - 2; i >= 0; i-- {
		if seen[i] == 0 || seen[i] > seen[i+1] {
			seen[i] = seen[i+1]
		}
	}
	s.Snapshot, s.Expose, s.Move, s.Cleanup = seen[0], seen[1]-seen[0], seen[2]-seen[1], s.Total-seen[2]
	s.ArchiveBytes = backupRun.Status.Volumes[0].Bytes
	return nil
}

// milestonesReached yields the indexes of the milestones a volume at step has passed.
func milestonesReached(step string) func(func(int) bool) {
	order := []string{"", datamover.StepHooks, datamover.StepSnapshot, datamover.StepExposeContent,
		datamover.StepExposeSnapshot, datamover.StepClone, datamover.StepMove, datamover.StepCleanup, datamover.StepDone}
	at := slices.Index(order, step)
	return func(yield func(int) bool) {
		for i, m := range fullPathMilestones {
			if slices.Index(order, m) <= at && !yield(i) {
				return
			}
		}
	}
}

func medianFullPath(samples []fullPathSample) fullPathSample {
	pick := func(metric func(fullPathSample) time.Duration) time.Duration {
		vals := make([]time.Duration, len(samples))
		for i, s := range samples {
			vals[i] = metric(s)
		}
		slices.Sort(vals)
		return vals[len(vals)/2]
	}
	return fullPathSample{
		Floor:        pick(func(s fullPathSample) time.Duration { return s.Floor }),
		Agent:        pick(func(s fullPathSample) time.Duration { return s.Agent }),
		Total:        pick(func(s fullPathSample) time.Duration { return s.Total }),
		Snapshot:     pick(func(s fullPathSample) time.Duration { return s.Snapshot }),
		Expose:       pick(func(s fullPathSample) time.Duration { return s.Expose }),
		Move:         pick(func(s fullPathSample) time.Duration { return s.Move }),
		Cleanup:      pick(func(s fullPathSample) time.Duration { return s.Cleanup }),
		ArchiveBytes: samples[len(samples)/2].ArchiveBytes,
	}
}

func (r *fullPathReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "run\tfloor\tagent\tfull path\tx floor\tx agent\tsnapshot\texpose\tmove\tcleanup\tarchive MiB\t\n")
	row := func(name string, s fullPathSample) {
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%.2fs\t%.2f\t%.2f\t%.2fs\t%.2fs\t%.2fs\t%.2fs\t%d\t\n", name,
			s.Floor.Seconds(), s.Agent.Seconds(), s.Total.Seconds(), s.Total.Seconds()/s.Floor.Seconds(), s.Total.Seconds()/s.Agent.Seconds(),
			s.Snapshot.Seconds(), s.Expose.Seconds(), s.Move.Seconds(), s.Cleanup.Seconds(), s.ArchiveBytes>>20)
	}
	for _, s := range r.Samples {
		row(strconv.Itoa(s.Run), s)
	}
	row("median", r.Median)
	_ = tw.Flush()
}

// copyTree copies the directories and regular files of src into dst, with their modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type().IsRegular():
			return copyRegular(path, target, info.Mode().Perm())
		}
		return nil
	})
}

func copyRegular(src, dst string, mode fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close() // read-only
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	_, err = io.Copy(out, in)
	return err
}
