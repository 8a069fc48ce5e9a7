package gitops

import (
	"strings"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
)

// kstatusExpectation is what Flux's kstatus computes for a state: the test pins it so that
// a change in either the operator or kstatus is noticed.
type kstatusExpectation struct {
	status  status.Status
	message string // a substring of kstatus' message
}

var kstatusExpectations = map[string]kstatusExpectation{
	// The CRD defaults status.observedGeneration to 0, so a Workspace the operator has not
	// reconciled yet is in progress, not current.
	stateNew:                 {status: status.InProgressStatus, message: "Workspace generation is 1, but latest observed generation is 0"},
	stateProvisioning:        {status: status.InProgressStatus, message: "waiting for CertificateReady"},
	stateFirstReconcileError: {status: status.InProgressStatus, message: "waiting for NetworkIsolated"},
	stateReady:               {status: status.CurrentStatus, message: "Resource is Ready"},
	stateBehind:              {status: status.InProgressStatus, message: "Workspace generation is 4, but latest observed generation is 3"},
	stateDegraded:            {status: status.InProgressStatus, message: "waiting for NetworkIsolated"},
	stateStalled:             {status: status.FailedStatus, message: "does not belong to this workspace"},
	stateStalledOldSpec:      {status: status.InProgressStatus, message: "Workspace generation is 3, but latest observed generation is 2"},
	stateNamespaceDeleted:    {status: status.InProgressStatus, message: "waiting for NamespaceReady"},
	stateDeleting:            {status: status.TerminatingStatus, message: "Resource scheduled for deletion"},
	// Flux health checks pass on a suspended Workspace whose last state was Ready.
	stateSuspended: {status: status.CurrentStatus, message: "Resource is Ready"},
}

func TestKstatus(t *testing.T) {
	for _, s := range workspaceStates() {
		t.Run(s.name, func(t *testing.T) {
			want, ok := kstatusExpectations[s.name]
			if !ok {
				t.Fatalf("no kstatus expectation for state %q", s.name)
			}
			res, err := status.Compute(toUnstructured(t, s.ws))
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			if res.Status != want.status {
				t.Fatalf("kstatus reports %s (%q), want %s", res.Status, res.Message, want.status)
			}
			if !strings.Contains(res.Message, want.message) {
				t.Errorf("kstatus message %q, want it to contain %q", res.Message, want.message)
			}
		})
	}
}
