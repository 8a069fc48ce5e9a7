package datamover

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// RequestSummary is what request-backup writes to its termination message: the run's
// backup ID and outcome, for whoever reads the Job that asked for it. The volumes stay in
// the run's status: a termination message keeps only 4 KiB.
type RequestSummary struct {
	BackupID string                         `json:"backupID"`
	Phase    tenancyv1alpha1.BackupRunPhase `json:"phase"`
}

const defaultSummaryFile = "/dev/termination-log"

// Request asks for a backup run of workspace, named name in namespace, and waits for it to
// finish. Asking again for a run that exists (a retried Job's pod) waits for that run: the
// name, the Job's, makes the request idempotent. It fails unless every volume was backed up,
// so that the Job, and a CronJob's history, shows the run's outcome. With jobUID, the run
// belongs to the Job and goes with it when the CronJob's history limit removes it.
func Request(ctx context.Context, c client.Client, namespace, workspace, name, jobUID string, poll time.Duration) (*tenancyv1alpha1.WorkspaceBackup, error) {
	run := &tenancyv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
			tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
			tenancyv1alpha1.WorkspaceLabel: workspace,
		}},
		Spec: tenancyv1alpha1.WorkspaceBackupSpec{Workspace: workspace},
	}
	if jobUID != "" {
		run.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: name, UID: types.UID(jobUID)}}
	}
	if err := c.Create(ctx, run); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create WorkspaceBackup %s/%s: %w", namespace, name, err)
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, run); err != nil {
			return nil, fmt.Errorf("read WorkspaceBackup %s/%s: %w", namespace, name, err)
		}
		if run.Spec.Workspace != workspace {
			return nil, fmt.Errorf("WorkspaceBackup %s/%s backs up workspace %s, not %s", namespace, name, run.Spec.Workspace, workspace)
		}
		if finished(run) {
			if run.Status.Phase != tenancyv1alpha1.BackupRunSucceeded {
				return run, fmt.Errorf("backup %s of workspace %s %s: %s", run.Status.BackupID, workspace, run.Status.Phase, completeMessage(run))
			}
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for WorkspaceBackup %s/%s: %w", namespace, name, ctx.Err())
		case <-ticker.C:
		}
	}
}

func completeMessage(run *tenancyv1alpha1.WorkspaceBackup) string {
	for _, c := range run.Status.Conditions {
		if c.Type == tenancyv1alpha1.ConditionComplete {
			return c.Message
		}
	}
	return "no message"
}

// RequestMain is the request-backup command line, which a backup CronJob's Job runs in the
// mover namespace.
func RequestMain(ctx context.Context, args []string, newClient func() (client.Client, error), stderr io.Writer) error {
	fs := flag.NewFlagSet("workspace-operator request-backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workspace := fs.String("workspace", "", "Workspace to back up (required).")
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "Mover namespace, where the WorkspaceBackup is created; default $POD_NAMESPACE.")
	name := fs.String("run", os.Getenv("JOB_NAME"), "Name of the WorkspaceBackup; default $JOB_NAME, the Job's name, so that a retried pod waits for the same run.")
	jobUID := fs.String("job-uid", os.Getenv("JOB_UID"), "UID of the Job named --run, which then owns the run; default $JOB_UID. Empty leaves the run unowned.")
	poll := fs.Duration("poll-interval", 10*time.Second, "How often the run is read while it goes on.")
	summaryFile := fs.String("summary-file", defaultSummaryFile, "File the JSON summary is written to; the default is skipped when it does not exist, empty disables.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *workspace == "" || *namespace == "" || *name == "":
		return errors.New("--workspace, --namespace and --run must be set (the last two default to $POD_NAMESPACE and $JOB_NAME)")
	case *poll <= 0:
		return fmt.Errorf("--poll-interval %s must be positive", *poll)
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	run, err := Request(ctx, c, *namespace, *workspace, *name, *jobUID, *poll)
	if run == nil || *summaryFile == "" {
		return err
	}
	if _, statErr := os.Stat(*summaryFile); *summaryFile == defaultSummaryFile && statErr != nil {
		return err
	}
	summary, merr := json.Marshal(RequestSummary{BackupID: run.Status.BackupID, Phase: run.Status.Phase})
	if merr == nil {
		merr = os.WriteFile(*summaryFile, summary, 0o600)
	}
	if merr != nil {
		err = errors.Join(err, fmt.Errorf("write summary: %w", merr))
	}
	return err
}
