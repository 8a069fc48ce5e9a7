// Package gitops checks how GitOps tools read a Workspace's health: Flux through kstatus
// (github.com/fluxcd/cli-utils/pkg/kstatus) and Argo CD through the Lua health check the
// chart ships in charts/workspace-operator/argocd. Both run on the same Workspaces, one per
// state the operator can leave a Workspace in (workspaces_test.go), so that a change to the
// status the operator writes, or to either tool, shows up as a test failure naming the
// state that now reads differently.
//
// It is a test-only package under test/ rather than internal/health because nothing in
// the operator computes health itself: the operator writes conditions and these tests pin
// down how third-party tools interpret them. It needs no control plane and runs in -short.
package gitops
