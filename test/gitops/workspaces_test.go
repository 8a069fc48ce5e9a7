package gitops

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// A Workspace as the API server returns it, in one of the states the operator leaves it in.
// The statuses follow controllers/status.go (summarize) and controllers/workspace_controller.go
// (finish): Ready summarises the concerns and carries the first failing one's reason and
// message; Reconciling is present and True while progressing, Stalled present and True when
// a human must act, and neither once Ready; observedGeneration moves on only when a reconcile
// ends without a transient error.
type workspaceState struct {
	name string
	ws   *tenancyv1alpha1.Workspace
}

var created = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func newWorkspace(generation int64) *tenancyv1alpha1.Workspace {
	return &tenancyv1alpha1.Workspace{
		TypeMeta: metav1.TypeMeta{APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "Workspace"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "acme", Generation: generation, UID: "0b9a1a8e-3c59-4d0e-9a57-3d9c1f0e5a11",
			CreationTimestamp: created,
		},
		Spec: tenancyv1alpha1.WorkspaceSpec{
			Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice@acme.example"}},
			Quota:  tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.SmallTier},
		},
	}
}

func cond(t string, status metav1.ConditionStatus, reason, message string, generation int64) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason, Message: message,
		ObservedGeneration: generation, LastTransitionTime: created}
}

// Messages the operator writes, as in controllers/.
const (
	readyMessage         = "the workspace is isolated, within quota, accessible to its owners and served over HTTPS where requested"
	issuingMessage       = "waiting for cert-manager to issue Certificate ws-acme/workspace-tls"
	networkFailMessage   = "apply NetworkPolicy ws-acme/default-deny: the server is currently unable to handle the request"
	conflictMessage      = "namespace ws-acme already exists and does not belong to this workspace; delete it or set spec.namespace to another name"
	terminatingMessage   = "namespace ws-acme is being deleted outside the operator; it is recreated empty once deletion finishes"
	namespaceOKMessage   = "namespace ws-acme exists with the restricted Pod Security profile"
	networkOKMessage     = "default-deny firewall with 3 NetworkPolicies"
	quotaOKMessage       = "tier small"
	accessOKMessage      = "1 owner bound to workspace-owner"
	certificateOKMessage = "spec.tls is not set: the workspace serves no public hosts and needs no certificate"
)

// allTrue are the concern conditions of a workspace where everything is in place.
func allTrue(generation int64) []metav1.Condition {
	return []metav1.Condition{
		cond(tenancyv1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, "NamespaceCreated", namespaceOKMessage, generation),
		cond(tenancyv1alpha1.ConditionNetworkIsolated, metav1.ConditionTrue, "PoliciesApplied", networkOKMessage, generation),
		cond(tenancyv1alpha1.ConditionQuotaApplied, metav1.ConditionTrue, "QuotaApplied", quotaOKMessage, generation),
		cond(tenancyv1alpha1.ConditionAccessGranted, metav1.ConditionTrue, "OwnersBound", accessOKMessage, generation),
		cond(tenancyv1alpha1.ConditionCertificateReady, metav1.ConditionTrue, "NotRequested", certificateOKMessage, generation),
	}
}

// with replaces or adds conditions.
func with(conditions []metav1.Condition, replace ...metav1.Condition) []metav1.Condition {
	out := append([]metav1.Condition(nil), conditions...)
	for _, r := range replace {
		found := false
		for i := range out {
			if out[i].Type == r.Type {
				out[i], found = r, true
			}
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}

func readyWorkspace(generation, observed int64) *tenancyv1alpha1.Workspace {
	ws := newWorkspace(generation)
	ws.Finalizers = []string{tenancyv1alpha1.WorkspaceFinalizer}
	ws.Status = tenancyv1alpha1.WorkspaceStatus{
		Phase: tenancyv1alpha1.PhaseReady, Namespace: "ws-acme", ObservedGeneration: observed,
		Conditions: with(allTrue(observed),
			cond(tenancyv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready", readyMessage, observed)),
	}
	return ws
}

// Names of the states, used by both tools' tables.
const (
	stateNew                 = "new, no status"
	stateProvisioning        = "Provisioning, Reconciling=True"
	stateFirstReconcileError = "first reconcile failed transiently, no observedGeneration"
	stateReady               = "Ready, observedGeneration current"
	stateBehind              = "Ready, observedGeneration behind"
	stateDegraded            = "Degraded, Reconciling=True"
	stateStalled             = "Failed, Stalled=True"
	stateStalledOldSpec      = "Stalled=True for an older generation"
	stateNamespaceDeleted    = "namespace deleted behind the operator's back"
	stateDeleting            = "Deleting, deletionTimestamp set"
	stateSuspended           = "Suspended, spec.suspend set"
)

func workspaceStates() []workspaceState {
	var states []workspaceState
	add := func(name string, ws *tenancyv1alpha1.Workspace) {
		states = append(states, workspaceState{name: name, ws: ws})
	}

	// Just applied: the operator has not reconciled it yet.
	add(stateNew, newWorkspace(1))

	// First reconcile done, the certificate is being issued: finish(nil) records the
	// generation, summarize sets Reconciling.
	ws := newWorkspace(1)
	ws.Finalizers = []string{tenancyv1alpha1.WorkspaceFinalizer}
	ws.Spec.TLS = &tenancyv1alpha1.TLSSpec{Hosts: []string{"app.acme.example"}}
	ws.Status = tenancyv1alpha1.WorkspaceStatus{
		Phase: tenancyv1alpha1.PhaseProvisioning, Namespace: "ws-acme", ObservedGeneration: 1,
		Conditions: with(allTrue(1),
			cond(tenancyv1alpha1.ConditionCertificateReady, metav1.ConditionFalse, "Issuing", issuingMessage, 1),
			cond(tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "Issuing", "CertificateReady: "+issuingMessage, 1),
			cond(tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting for CertificateReady: "+issuingMessage, 1)),
	}
	add(stateProvisioning, ws)

	// First reconcile hit a transient error: finish does not record the generation.
	ws = newWorkspace(1)
	ws.Finalizers = []string{tenancyv1alpha1.WorkspaceFinalizer}
	ws.Status = tenancyv1alpha1.WorkspaceStatus{
		Phase: tenancyv1alpha1.PhaseProvisioning, Namespace: "ws-acme",
		Conditions: with(allTrue(1),
			cond(tenancyv1alpha1.ConditionNetworkIsolated, metav1.ConditionFalse, "NetworkPolicyFailed", networkFailMessage, 1),
			cond(tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "NetworkPolicyFailed", "NetworkIsolated: "+networkFailMessage, 1),
			cond(tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting for NetworkIsolated: "+networkFailMessage, 1)),
	}
	add(stateFirstReconcileError, ws)

	add(stateReady, readyWorkspace(3, 3))

	// The spec changed (generation 4) and the operator has not reconciled it yet.
	add(stateBehind, readyWorkspace(4, 3))

	// A concern that was satisfied no longer is; the operator is retrying.
	ws = readyWorkspace(3, 3)
	ws.Status.Phase = tenancyv1alpha1.PhaseDegraded
	ws.Status.Conditions = with(ws.Status.Conditions,
		cond(tenancyv1alpha1.ConditionNetworkIsolated, metav1.ConditionFalse, "NetworkPolicyFailed", networkFailMessage, 3),
		cond(tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "NetworkPolicyFailed", "NetworkIsolated: "+networkFailMessage, 3),
		cond(tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting for NetworkIsolated: "+networkFailMessage, 3))
	add(stateDegraded, ws)

	// A terminal error: finish records the generation, summarize sets Stalled and phase Failed.
	ws = newWorkspace(2)
	ws.Finalizers = []string{tenancyv1alpha1.WorkspaceFinalizer}
	ws.Status = tenancyv1alpha1.WorkspaceStatus{
		Phase: tenancyv1alpha1.PhaseFailed, ObservedGeneration: 2,
		Conditions: []metav1.Condition{
			cond(tenancyv1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, "NamespaceConflict", conflictMessage, 2),
			cond(tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "NamespaceConflict", "NamespaceReady: "+conflictMessage, 2),
			cond(tenancyv1alpha1.ConditionStalled, metav1.ConditionTrue, "NamespaceConflict", conflictMessage, 2),
		},
	}
	add(stateStalled, ws)

	// Someone fixed the spec of a stalled Workspace; the operator has not looked yet.
	ws = stateByName(states, stateStalled).DeepCopy()
	ws.Generation = 3
	add(stateStalledOldSpec, ws)

	// The namespace was deleted outside the operator: it waits to recreate it.
	ws = readyWorkspace(3, 3)
	ws.Status.Phase = tenancyv1alpha1.PhaseDegraded
	ws.Status.Conditions = with(ws.Status.Conditions,
		cond(tenancyv1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, "NamespaceTerminating", terminatingMessage, 3),
		cond(tenancyv1alpha1.ConditionReady, metav1.ConditionFalse, "NamespaceTerminating", "NamespaceReady: "+terminatingMessage, 3),
		cond(tenancyv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting for NamespaceReady: "+terminatingMessage, 3))
	add(stateNamespaceDeleted, ws)

	// Deleted: the finalizer holds it until the namespace is gone.
	ws = readyWorkspace(3, 3)
	deleted := metav1.NewTime(created.Add(time.Hour))
	ws.DeletionTimestamp = &deleted
	ws.Status.Phase = tenancyv1alpha1.PhaseDeleting
	add(stateDeleting, ws)

	// Suspended: the operator observed the spec and left the last conditions as they were.
	ws = readyWorkspace(4, 4)
	ws.Spec.Suspend = true
	ws.Status.Phase = tenancyv1alpha1.PhaseSuspended
	ws.Status.Conditions = with(ws.Status.Conditions,
		cond(tenancyv1alpha1.ConditionSuspended, metav1.ConditionTrue, "Suspended", "spec.suspend is true", 4))
	add(stateSuspended, ws)

	return states
}

func stateByName(states []workspaceState, name string) *tenancyv1alpha1.Workspace {
	for _, s := range states {
		if s.name == name {
			return s.ws
		}
	}
	panic("no state " + name)
}

// toUnstructured is the Workspace as a GitOps tool reads it from the API server: JSON, with
// omitempty fields (observedGeneration 0, an empty status) left out, and the defaults of
// the CRD in config/crd/bases applied, as the API server applies them on every read.
func toUnstructured(t *testing.T, ws *tenancyv1alpha1.Workspace) *unstructured.Unstructured {
	t.Helper()
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ws)
	if err != nil {
		t.Fatalf("convert Workspace: %v", err)
	}
	// The Go type always encodes a status, empty or not; the API server holds none until
	// the operator writes one (the status subresource drops it on create).
	if status, ok := content["status"].(map[string]any); ok && len(status) == 0 {
		delete(content, "status")
	}
	defaulting.Default(content, workspaceSchema(t))
	return &unstructured.Unstructured{Object: content}
}

// workspaceSchema is the structural schema of the Workspace CRD's v1alpha1.
func workspaceSchema(t *testing.T) *structuralschema.Structural {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.OperatorCRDDir(), "tenancy.workspace-operator.io_workspaces.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("decode the Workspace CRD: %v", err)
	}
	for _, version := range crd.Spec.Versions {
		if version.Name != tenancyv1alpha1.GroupVersion.Version || version.Schema == nil {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(version.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			t.Fatalf("convert the Workspace schema: %v", err)
		}
		structural, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatalf("the Workspace schema is not structural: %v", err)
		}
		return structural
	}
	t.Fatalf("the Workspace CRD has no %s schema", tenancyv1alpha1.GroupVersion.Version)
	return nil
}

// TestStatesCovered fails when a state has no expectation in one of the tools' tables.
func TestStatesCovered(t *testing.T) {
	for _, s := range workspaceStates() {
		if _, ok := kstatusExpectations[s.name]; !ok {
			t.Errorf("state %q has no kstatus expectation", s.name)
		}
		if _, ok := argoExpectations[s.name]; !ok {
			t.Errorf("state %q has no Argo CD expectation", s.name)
		}
	}
}
