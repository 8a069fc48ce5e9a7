package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestOwnWritesBehind(t *testing.T) {
	workspace := func(uid, resourceVersion string) *tenancyv1alpha1.Workspace {
		return &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), ResourceVersion: resourceVersion}}
	}
	tests := []struct {
		name    string
		written string
		cached  string
		want    bool
	}{
		{name: "cache older than the write", written: "1200", cached: "1199", want: true},
		{name: "older by a digit", written: "1000", cached: "999", want: true},
		{name: "cache has the write", written: "1200", cached: "1200", want: false},
		{name: "cache has a later write by someone else", written: "1200", cached: "1300", want: false},
		{name: "versions that are not comparable", written: "abc", cached: "def", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOwnWrites()
			w.record(workspace("a", tt.written))
			if got := w.behind(workspace("a", tt.cached)); got != tt.want {
				t.Errorf("behind = %t, want %t", got, tt.want)
			}
			if w.behind(workspace("b", "1")) {
				t.Error("a workspace never written is behind")
			}
		})
	}

	t.Run("forgets a write once the cache has it", func(t *testing.T) {
		w := newOwnWrites()
		w.record(workspace("a", "20"))
		w.behind(workspace("a", "20"))
		if len(w.versions) != 0 {
			t.Errorf("still remembered: %v", w.versions)
		}
	})
}
