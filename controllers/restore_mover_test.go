package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestRequestedVolumes(t *testing.T) {
	live := map[string]resource.Quantity{"db": resource.MustParse("10Gi")}
	liveSize := func(claim string) (resource.Quantity, bool) { q, ok := live[claim]; return q, ok }
	two := resource.MustParse("2Gi")
	for _, tc := range []struct {
		name    string
		restore tenancyv1alpha1.RestoreSpec
		want    []tenancyv1alpha1.RestoreVolume
		stalls  string
	}{{
		name:    "a live volume under another name, at the live claim's size",
		restore: tenancyv1alpha1.RestoreSpec{BackupID: "20261205T020000Z", Volumes: []string{"db"}, Targets: []tenancyv1alpha1.RestoreTarget{{Volume: "db", Claim: "db-old"}}},
		want:    []tenancyv1alpha1.RestoreVolume{{Source: "db", Claim: "db-old", BackupID: "20261205T020000Z", Storage: resource.MustParse("10Gi")}},
	}, {
		name:    "a deleted volume under its own name, at the size given",
		restore: tenancyv1alpha1.RestoreSpec{BackupID: "20261205T020000Z", Volumes: []string{"cache"}, Targets: []tenancyv1alpha1.RestoreTarget{{Volume: "cache", Storage: &two}}},
		want:    []tenancyv1alpha1.RestoreVolume{{Source: "cache", Claim: "cache", BackupID: "20261205T020000Z", Storage: two}},
	}, {
		name:    "a deleted volume with no size to take",
		restore: tenancyv1alpha1.RestoreSpec{BackupID: "20261205T020000Z", Volumes: []string{"cache"}},
		stalls:  "spec.restore.targets[{volume: cache, storage: <size>}]",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := requestedVolumes(&tc.restore, liveSize)
			if tc.stalls != "" {
				var ce *concernError
				if !errors.As(err, &ce) || !ce.terminal || ce.reason != "RestoreSizeUnknown" || !strings.Contains(err.Error(), tc.stalls) {
					t.Fatalf("error %v, want a RestoreSizeUnknown stall naming %q", err, tc.stalls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUndeleteVolumes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		purge       tenancyv1alpha1.WorkspacePurgeSpec
		want        []tenancyv1alpha1.RestoreVolume
		wantSkipped []string
	}{{
		name: "each volume from its own backup; one never backed up is skipped",
		purge: tenancyv1alpha1.WorkspacePurgeSpec{LastBackupID: "20261204T020000Z", Volumes: []tenancyv1alpha1.PurgeVolume{
			{Name: "db", Storage: "10Gi", BackupID: "20261204T020000Z-db"},
			{Name: "db-restored", Storage: "10Gi"},
			{Name: "odd", Storage: "not a size", BackupID: "20261203T020000Z-odd"},
		}},
		want: []tenancyv1alpha1.RestoreVolume{
			{Source: "db", Claim: "db", BackupID: "20261204T020000Z-db", Storage: resource.MustParse("10Gi")},
			{Source: "odd", Claim: "odd", BackupID: "20261203T020000Z-odd", Storage: resource.MustParse("1Gi")},
		},
		wantSkipped: []string{"db-restored"},
	}, {
		name: "a record from before the mover: every volume from the workspace's last backup",
		purge: tenancyv1alpha1.WorkspacePurgeSpec{LastBackupID: "20261204T020000Z", Volumes: []tenancyv1alpha1.PurgeVolume{
			{Name: "db", Storage: "10Gi"}, {Name: "media", Storage: "3Gi"},
		}},
		want: []tenancyv1alpha1.RestoreVolume{
			{Source: "db", Claim: "db", BackupID: "20261204T020000Z", Storage: resource.MustParse("10Gi")},
			{Source: "media", Claim: "media", BackupID: "20261204T020000Z", Storage: resource.MustParse("3Gi")},
		},
	}, {
		name:        "never backed up at all",
		purge:       tenancyv1alpha1.WorkspacePurgeSpec{Volumes: []tenancyv1alpha1.PurgeVolume{{Name: "db", Storage: "1Gi"}}},
		wantSkipped: []string{"db"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := undeleteVolumes(&tenancyv1alpha1.WorkspacePurge{Spec: tc.purge})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSkipped, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRestoreRunName(t *testing.T) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 63), UID: "uid-1"}}
	a, b := restoreRunName(ws, "undelete/x"), restoreRunName(ws, "spec.restore/y")
	if a == b || len(a) > 63 || a != restoreRunName(ws, "undelete/x") {
		t.Errorf("names %q and %q: want distinct per request, stable, at most 63 characters", a, b)
	}
	again := ws.DeepCopy()
	again.UID = "uid-2"
	if restoreRunName(again, "undelete/x") == a {
		t.Error("a workspace of the same name, recreated, would find the old run")
	}
}

var _ = Describe("Restores through the data mover", func() {
	const moverNamespace = "workspace-operator-mover"

	// A Workspace that exists only here: the operator under test never sees it, so this
	// reconciler, configured for the mover, is the only one acting for it.
	newMoverReconciler := func() *WorkspaceReconciler {
		config := testConfig()
		config.Backup.MoverNamespace = moverNamespace
		return &WorkspaceReconciler{Client: k8sClient, APIReader: k8sClient, Recorder: events.NewFakeRecorder(10), Config: config, Clock: fakeClock}
	}
	finishRun := func(name string, phase tenancyv1alpha1.RestoreRunPhase, message string) {
		run := &tenancyv1alpha1.WorkspaceRestore{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: moverNamespace, Name: name}, run)).To(Succeed())
		run.Status.Phase = phase
		meta.SetStatusCondition(&run.Status.Conditions, metav1.Condition{Type: tenancyv1alpha1.ConditionComplete, Status: metav1.ConditionTrue, Reason: string(phase), Message: message})
		Expect(k8sClient.Status().Update(ctx, run)).To(Succeed())
	}

	It("undelete asks for one run restoring each recorded volume from its own last backup, and creates no claim itself", func() {
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moverNamespace}}))).To(Succeed())
		tenant := "ws-phoenix"
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}})).To(Succeed())
		ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "phoenix", UID: "phoenix-uid"}}
		setCondition(ws, tenancyv1alpha1.ConditionEncryptionReady, metav1.ConditionTrue, "KeysReady", "")
		setCondition(ws, tenancyv1alpha1.ConditionBucketReady, metav1.ConditionTrue, "BucketsReady", "")
		purge := &tenancyv1alpha1.WorkspacePurge{
			ObjectMeta: metav1.ObjectMeta{Name: "phoenix-1"},
			Spec: tenancyv1alpha1.WorkspacePurgeSpec{
				Workspace: "phoenix", WorkspaceUID: "old-uid", Namespace: tenant,
				DeletedAt: metav1.Now(), PurgeAfter: metav1.NewTime(time.Now().Add(7 * 24 * time.Hour)),
				LastBackupID: "20261204T020000Z",
				Volumes: []tenancyv1alpha1.PurgeVolume{
					{Name: "db", Storage: "10Gi", BackupID: "20261204T020000Z-db"},
					{Name: "media", Storage: "2Gi", BackupID: "20261203T020000Z-media"},
				},
			},
		}
		Expect(k8sClient.Create(ctx, purge)).To(Succeed())
		r := newMoverReconciler()

		Expect(r.reconcileUndelete(ctx, ws, tenant, purge)).To(Succeed())
		var runs tenancyv1alpha1.WorkspaceRestoreList
		Expect(k8sClient.List(ctx, &runs, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "phoenix"})).To(Succeed())
		Expect(runs.Items).To(HaveLen(1))
		run := runs.Items[0]
		want, _ := undeleteVolumes(purge)
		Expect(run.Spec.Volumes).To(Equal(want))
		Expect(run.Spec.Volumes[1].BackupID).To(Equal("20261203T020000Z-media"), "a volume comes back from its own last backup")
		Expect(run.OwnerReferences).To(ConsistOf(HaveField("UID", ws.UID)))
		var claims corev1.PersistentVolumeClaimList
		Expect(k8sClient.List(ctx, &claims, client.InNamespace(tenant))).To(Succeed())
		Expect(claims.Items).To(BeEmpty(), "the mover creates the claims, bound only once written")
		Expect(condition(ws, tenancyv1alpha1.ConditionRestored).Reason).To(Equal("Restoring"))
		Expect(condition(ws, tenancyv1alpha1.ConditionRestored).Message).To(ContainSubstring("kubectl describe workspacerestore -n " + moverNamespace + " " + run.Name))

		By("asking again finds the same run, and reports its outcome")
		finishRun(run.Name, tenancyv1alpha1.RestoreRunPartiallyFailed, "1 volumes restored, failed: media (see status.volumes)")
		Expect(r.reconcileUndelete(ctx, ws, tenant, purge)).To(Succeed())
		Expect(k8sClient.List(ctx, &runs, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "phoenix"})).To(Succeed())
		Expect(runs.Items).To(HaveLen(1))
		restored := condition(ws, tenancyv1alpha1.ConditionRestored)
		Expect(restored.Status).To(Equal(metav1.ConditionFalse))
		Expect(restored.Reason).To(Equal("RestoreFailed"))
		Expect(restored.Message).To(ContainSubstring("failed: media"))
		Expect(restored.Message).To(ContainSubstring("delete it to retry"))

		finishRun(run.Name, tenancyv1alpha1.RestoreRunSucceeded, "all restored")
		Expect(r.reconcileUndelete(ctx, ws, tenant, purge)).To(Succeed())
		Expect(condition(ws, tenancyv1alpha1.ConditionRestored).Status).To(Equal(metav1.ConditionTrue))
	})

	It("spec.restore restores under the target's name, one run per distinct request", func() {
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moverNamespace}}))).To(Succeed())
		tenant := "ws-selfservice"
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}})).To(Succeed())
		Expect(k8sClient.Create(ctx, pvc(tenant, "db", tenant+"-encrypted"))).To(Succeed())
		ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "selfservice", UID: "selfservice-uid"}}
		ws.Spec.Restore = &tenancyv1alpha1.RestoreSpec{BackupID: "20261205T020000Z", Volumes: []string{"db"},
			Targets: []tenancyv1alpha1.RestoreTarget{{Volume: "db", Claim: "db-yesterday"}}}
		r := newMoverReconciler()
		Expect(r.reconcileRestore(ctx, ws, tenant)).To(Succeed())
		Expect(r.reconcileRestore(ctx, ws, tenant)).To(Succeed())
		var runs tenancyv1alpha1.WorkspaceRestoreList
		Expect(k8sClient.List(ctx, &runs, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "selfservice"})).To(Succeed())
		Expect(runs.Items).To(HaveLen(1))
		Expect(runs.Items[0].Spec.Volumes).To(Equal([]tenancyv1alpha1.RestoreVolume{
			{Source: "db", Claim: "db-yesterday", BackupID: "20261205T020000Z", Storage: resource.MustParse("1Gi")},
		}), "the size of the live claim of that name")

		By("starting another run for another request")
		ws.Spec.Restore.Targets[0].Claim = "db-before-upgrade"
		Expect(r.reconcileRestore(ctx, ws, tenant)).To(Succeed())
		Expect(k8sClient.List(ctx, &runs, client.InNamespace(moverNamespace), client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: "selfservice"})).To(Succeed())
		Expect(runs.Items).To(HaveLen(2))

		By("stalling, naming the field, when a volume's size cannot be known")
		ws.Spec.Restore = &tenancyv1alpha1.RestoreSpec{BackupID: "20261205T020000Z", Volumes: []string{"deleted-long-ago"}}
		err := r.reconcileRestore(ctx, ws, tenant)
		Expect(isTerminal(err)).To(BeTrue())
		Expect(err.Error()).To(ContainSubstring("spec.restore.targets"))
	})
})
