// Package v1alpha1 contains the tenancy.workspace-operator.io/v1alpha1 API: the Workspace,
// a customer's isolated, encrypted, backed-up slice of the cluster.
// +kubebuilder:object:generate=true
// +groupName=tenancy.workspace-operator.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "tenancy.workspace-operator.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
