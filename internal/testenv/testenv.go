// Package testenv locates what the envtest and end-to-end suites, and the local dev stack,
// install into their API server: the operator's CRDs, cert-manager's CRDs and the owner role.
package testenv

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
)

// CertManagerModule is the Go module whose deploy/crds holds cert-manager's CRDs. go.mod
// pins its version, so the CRDs match the API types the operator is compiled against.
const CertManagerModule = "github.com/cert-manager/cert-manager"

// RepoRoot is the root of this repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// OperatorCRDDir holds the operator's generated CRDs.
func OperatorCRDDir() string {
	return filepath.Join(RepoRoot(), "config", "crd", "bases")
}

// OwnerRoleFile is the workspace-owner ClusterRole manifest.
func OwnerRoleFile() string {
	return filepath.Join(RepoRoot(), "config", "rbac", "workspace_owner_role.yaml")
}

// StorageClassPolicyFile is the ValidatingAdmissionPolicy that keeps workspace volumes on
// the workspace's encrypted StorageClass.
func StorageClassPolicyFile() string {
	return filepath.Join(RepoRoot(), "config", "admission", "storage_class_policy.yaml")
}

// DeletionProtectionPolicyFile is the ValidatingAdmissionPolicy that refuses to delete a
// protected Workspace, with the ConfigMap holding its default.
func DeletionProtectionPolicyFile() string {
	return filepath.Join(RepoRoot(), "config", "admission", "deletion_protection_policy.yaml")
}

// BackupRetentionPolicyFile is the ValidatingAdmissionPolicy that refuses a backup
// retention above the operator's maximum, read from the policy ConfigMap.
func BackupRetentionPolicyFile() string {
	return filepath.Join(RepoRoot(), "config", "admission", "backup_retention_policy.yaml")
}

// OperatorNamespace is where config/ installs the operator and its policy ConfigMap.
const OperatorNamespace = "workspace-operator-system"

// OperatorNamespaceFile is the manifest of OperatorNamespace.
func OperatorNamespaceFile() string {
	return filepath.Join(RepoRoot(), "config", "manager", "namespace.yaml")
}

// SamplesFile holds the sample Workspaces.
func SamplesFile() string {
	return filepath.Join(RepoRoot(), "config", "samples", "tenancy_v1alpha1_workspace.yaml")
}

// CertManagerCRDDir is deploy/crds of the cert-manager module in the module cache,
// downloading the module if needed.
func CertManagerCRDDir() (string, error) {
	dir, err := moduleDir(CertManagerModule)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "deploy", "crds"), nil
}

// SnapshotModule is the Go module of the CSI snapshot API types; its config/crd holds the
// snapshot.storage.k8s.io CRDs the snapshot-controller serves, at the version go.mod pins.
const SnapshotModule = "github.com/kubernetes-csi/external-snapshotter/client/v8"

// SnapshotCRDFiles are the VolumeSnapshot, VolumeSnapshotContent and VolumeSnapshotClass
// CRDs of SnapshotModule (not the group snapshot ones, which the operator does not use).
func SnapshotCRDFiles() ([]string, error) {
	dir, err := moduleDir(SnapshotModule)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, kind := range []string{"volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"} {
		files = append(files, filepath.Join(dir, "config", "crd", "snapshot.storage.k8s.io_"+kind+".yaml"))
	}
	return files, nil
}

// moduleDir is the directory of a module in the module cache, at the version go.mod
// requires, downloading it if needed.
func moduleDir(module string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("download module %s: %w", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("parse location of module %s: %w", module, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("module %s has no directory in %q", module, out)
	}
	return m.Dir, nil
}

// SnapshotCRDDir is the directory of every CRD of SnapshotModule, the group snapshot ones
// included, which a snapshot-controller watches (the local node runs one).
func SnapshotCRDDir() (string, error) {
	dir, err := moduleDir(SnapshotModule)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "config", "crd"), nil
}
