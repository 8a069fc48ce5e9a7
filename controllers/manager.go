package controllers

import (
	"context"

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
// policies and bindings never enter the operator's memory, and of its own objects the
// cache drops the managed field sets.
func CacheOptions(cfg Config) cache.Options {
	return cache.Options{
		DefaultTransform:     dropManagedFieldSets,
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

// dropManagedFieldSets keeps, of each cached object's managedFields, who wrote it and when
// (drift attribution reads that, see lastWriter) but not the sets of fields each manager
// owns. Those are over 40 % of what the cache would hold and the operator never reads
// them. Objects read from the cache must not be written back with these hollow entries:
// the API server would take them as the new field ownership. The reconcilers' clients
// are wrapped in keepServerManagedFields for that.
func dropManagedFieldSets(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		entries := o.GetManagedFields()
		for i := range entries {
			entries[i].FieldsV1 = nil
		}
	}
	return obj, nil
}

// keepServerManagedFields sends updates without managedFields, which makes the API server
// keep the object's own (an update that carries them replaces them).
type keepServerManagedFields struct{ client.Client }

func (c keepServerManagedFields) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	obj.SetManagedFields(nil)
	return c.Client.Update(ctx, obj, opts...)
}
