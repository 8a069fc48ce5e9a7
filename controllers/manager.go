package controllers

import (
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Scheme holds every kind the operator reads or writes.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(scheme))
	utilruntime.Must(cmv1.AddToScheme(scheme))
	return scheme
}

// CacheOptions scope the informers to what the operator manages: Workspaces, the owner
// ClusterRole and objects carrying the managed-by label. A cluster's unrelated namespaces,
// policies and bindings never enter the operator's memory.
func CacheOptions(cfg Config) cache.Options {
	return cache.Options{
		DefaultLabelSelector: labels.SelectorFromSet(labels.Set{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}),
		ByObject: map[client.Object]cache.ByObject{
			&tenancyv1alpha1.Workspace{}: {Label: labels.Everything()},
			// Every class, not only the operator's: each workspace quota gives all others zero storage.
			&storagev1.StorageClass{}: {Label: labels.Everything()},
			&rbacv1.ClusterRole{}: {
				Label: labels.Everything(),
				Field: fields.OneTermEqualSelector("metadata.name", cfg.OwnerClusterRole),
			},
		},
	}
}
