package controllers

import (
	"context"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	utilruntime.Must(snapshotv1.AddToScheme(scheme))
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
			// Backup runs may be created by hand (kubectl create), without the label.
			&tenancyv1alpha1.WorkspaceBackup{}:  {Label: labels.Everything()},
			&tenancyv1alpha1.WorkspaceRestore{}: {Label: labels.Everything()},
			// Every class, not only the operator's: each workspace quota gives all others zero storage.
			&storagev1.StorageClass{}: {Label: labels.Everything()},
			&rbacv1.ClusterRole{}: {
				Label: labels.Everything(),
				Field: fields.OneTermEqualSelector("metadata.name", cfg.OwnerClusterRole),
			},
		},
	}
}

// dropManagedFieldSets keeps, of each cached object's managedFields, the entry of its last
// writer with its time (drift attribution reads that, see lastWriter) but not the sets of
// fields each manager owns: those are over 40 % of what the cache would hold, and the
// operator never reads them. Objects read from the cache must not be written back with
// this hollow entry, which the API server would take as the new field ownership: the
// reconcilers' clients are wrapped in keepServerManagedFields for that.
func dropManagedFieldSets(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	last := latestWrite(o.GetManagedFields())
	if last == nil {
		o.SetManagedFields(nil)
		return obj, nil
	}
	o.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: last.Manager, Operation: last.Operation, Time: last.Time}})
	return obj, nil
}

// keepServerManagedFields sends updates without managedFields, which makes the API server
// keep the object's own (an update that carries them replaces them).
type keepServerManagedFields struct{ client.Client }

func (c keepServerManagedFields) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	obj.SetManagedFields(nil)
	return c.Client.Update(ctx, obj, opts...)
}
