package main

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// CacheFootprint is the size, as JSON, of the objects the operator's informers hold: the
// kinds it watches, selected as controllers.CacheOptions selects them. Decoded into Go
// structs they take a few times more; the figure explains the heap, not equals it.
type CacheFootprint struct {
	Objects int `json:"objects"`
	Bytes   int `json:"bytes"`
	// BytesWithoutManagedFields is what a cache that strips managedFields would hold.
	BytesWithoutManagedFields int            `json:"bytesWithoutManagedFields"`
	BytesByKind               map[string]int `json:"bytesByResource"`
	// Unscoped is what the same informers would hold with no label selector: the
	// unrelated objects of watched kinds, and every namespace's default ServiceAccount.
	UnscopedObjects int `json:"unscopedObjects"`
	UnscopedBytes   int `json:"unscopedBytes"`
}

// watchedResource is a kind the operator watches and how its cache selects it.
type watchedResource struct {
	gvr      schema.GroupVersionResource
	selector string // label selector; empty for everything
	field    string // field selector
}

func operatorInformers() []watchedResource {
	managed := labels.SelectorFromSet(labels.Set{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}).String()
	tenancy := tenancyv1alpha1.GroupVersion
	resources := []watchedResource{
		{gvr: tenancy.WithResource("workspaces")},
		{gvr: schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}},
		{gvr: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, field: "metadata.name=workspace-owner"},
		{gvr: tenancy.WithResource("workspacepurges"), selector: managed},
		{gvr: schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}, selector: managed},
	}
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "namespaces"},
		{Version: "v1", Resource: "serviceaccounts"},
		{Version: "v1", Resource: "resourcequotas"},
		{Version: "v1", Resource: "limitranges"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "batch", Version: "v1", Resource: "cronjobs"},
		{Group: "batch", Version: "v1", Resource: "jobs"},
	} {
		resources = append(resources, watchedResource{gvr: gvr, selector: managed})
	}
	return resources
}

func (e *env) cacheFootprint(ctx context.Context) (CacheFootprint, error) {
	c := CacheFootprint{BytesByKind: map[string]int{}}
	for _, r := range operatorInformers() {
		err := e.listPages(ctx, r.gvr, metav1.ListOptions{LabelSelector: r.selector, FieldSelector: r.field}, func(obj *unstructured.Unstructured) {
			size := jsonSize(obj.Object)
			c.Objects++
			c.Bytes += size
			c.BytesByKind[r.gvr.Resource] += size
			unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
			c.BytesWithoutManagedFields += jsonSize(obj.Object)
		})
		if err != nil {
			return c, err
		}
		if r.selector == "" {
			continue
		}
		// Everything the label selector keeps out.
		others := tenancyv1alpha1.ManagedByLabel + "!=" + tenancyv1alpha1.ManagedByValue
		err = e.listPages(ctx, r.gvr, metav1.ListOptions{LabelSelector: others, FieldSelector: r.field}, func(obj *unstructured.Unstructured) {
			c.UnscopedObjects++
			c.UnscopedBytes += jsonSize(obj.Object)
		})
		if err != nil {
			return c, err
		}
	}
	c.UnscopedObjects += c.Objects
	c.UnscopedBytes += c.Bytes
	return c, nil
}

// listPages lists a resource a page at a time, so that the bench never holds a list of
// large objects whole.
func (e *env) listPages(ctx context.Context, gvr schema.GroupVersionResource, opts metav1.ListOptions, fn func(*unstructured.Unstructured)) error {
	opts.Limit = 25
	for {
		list, err := e.dynamic.Resource(gvr).List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			fn(&list.Items[i])
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return nil
		}
	}
}
