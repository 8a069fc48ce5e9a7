package main

import (
	"slices"
	"testing"

	"github.com/workspace-operator/workspace-operator/internal/datamover"
)

// The report splits the full path at the first poll that saw each milestone; a volume's
// status.step is the last step confirmed, and one status write may confirm several.
func TestMilestonesReached(t *testing.T) {
	for _, tc := range []struct {
		step string
		want []int
	}{
		{"", nil},
		{datamover.StepHooks, nil},
		{datamover.StepSnapshot, []int{0}},
		{datamover.StepExposeSnapshot, []int{0}},
		{datamover.StepClone, []int{0, 1}},
		{datamover.StepMove, []int{0, 1, 2}},
		{datamover.StepCleanup, []int{0, 1, 2}},
		{datamover.StepDone, []int{0, 1, 2}},
	} {
		if got := slices.Collect(milestonesReached(tc.step)); !slices.Equal(got, tc.want) {
			t.Errorf("step %q: milestones %v, want %v", tc.step, got, tc.want)
		}
	}
}
