package controllers

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	purge := &tenancyv1alpha1.WorkspacePurge{Spec: tenancyv1alpha1.WorkspacePurgeSpec{
		LastBackupID: "20261204T020000Z",
		Volumes: []tenancyv1alpha1.PurgeVolume{
			{Name: "db", Storage: "10Gi", BackupID: "20261204T020000Z-db"},
			{Name: "legacy", Storage: "3Gi"},
			{Name: "odd", Storage: "not a size", BackupID: "20261203T020000Z-odd"},
		},
	}}
	want := []tenancyv1alpha1.RestoreVolume{
		{Source: "db", Claim: "db", BackupID: "20261204T020000Z-db", Storage: resource.MustParse("10Gi")},
		{Source: "legacy", Claim: "legacy", BackupID: "20261204T020000Z", Storage: resource.MustParse("3Gi")},
		{Source: "odd", Claim: "odd", BackupID: "20261203T020000Z-odd", Storage: resource.MustParse("1Gi")},
	}
	if diff := cmp.Diff(want, undeleteVolumes(purge)); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	purge.Spec.LastBackupID = ""
	if got := undeleteVolumes(purge); len(got) != 2 {
		t.Errorf("a volume never backed up is not restorable, got %+v", got)
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
