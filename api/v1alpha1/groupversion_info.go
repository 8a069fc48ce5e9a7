// Package v1alpha1 contains the tenancy.workspace-operator.io/v1alpha1 API: the Workspace,
// a customer's isolated, encrypted, backed-up slice of the cluster.
// +kubebuilder:object:generate=true
// +groupName=tenancy.workspace-operator.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "tenancy.workspace-operator.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &Workspace{}, &WorkspaceList{}, &WorkspacePurge{}, &WorkspacePurgeList{},
		&WorkspaceBackup{}, &WorkspaceBackupList{}, &WorkspaceRestore{}, &WorkspaceRestoreList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
