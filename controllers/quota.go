package controllers

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Names of the quota objects in a workspace namespace.
const (
	resourceQuotaName = "workspace-quota"
	limitRangeName    = "workspace-limits"
	customTier        = "custom"
)

// tiers are the built-in quota tiers. The CRD's enum lists the same names.
var tiers = map[tenancyv1alpha1.QuotaTier]tenancyv1alpha1.QuotaLimits{
	tenancyv1alpha1.SmallTier:  {CPU: resource.MustParse("2"), Memory: resource.MustParse("4Gi"), Storage: resource.MustParse("20Gi"), Pods: 20},
	tenancyv1alpha1.MediumTier: {CPU: resource.MustParse("8"), Memory: resource.MustParse("16Gi"), Storage: resource.MustParse("100Gi"), Pods: 50},
	tenancyv1alpha1.LargeTier:  {CPU: resource.MustParse("32"), Memory: resource.MustParse("64Gi"), Storage: resource.MustParse("500Gi"), Pods: 200},
}

// Per-container defaults for pods that set no requests or limits, so that quota'd
// namespaces still accept them. They shrink to the quota when it is smaller.
var (
	defaultContainerRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}
	defaultContainerLimits   = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")}
)

// quotaLimits resolves spec.quota to limits and the tier name shown in status.
func quotaLimits(ws *tenancyv1alpha1.Workspace) (tenancyv1alpha1.QuotaLimits, string) {
	if ws.Spec.Quota.Limits != nil {
		return *ws.Spec.Quota.Limits, customTier
	}
	tier := ws.Spec.Quota.Tier
	if tier == "" {
		tier = tenancyv1alpha1.SmallTier
	}
	return tiers[tier], string(tier)
}

// desiredResourceQuota caps the namespace's totals. It forbids LoadBalancer and NodePort
// services (a workspace is reached only through the ingress controller) and gives the
// cluster's other StorageClasses zero storage, so that no volume falls back to an
// unencrypted class even if the admission policy were missing.
func desiredResourceQuota(ws *tenancyv1alpha1.Workspace, namespace string, otherClasses []string) *corev1.ResourceQuota {
	limits, _ := quotaLimits(ws)
	zero := resource.MustParse("0")
	hard := corev1.ResourceList{
		corev1.ResourceRequestsCPU:           limits.CPU,
		corev1.ResourceLimitsCPU:             limits.CPU,
		corev1.ResourceRequestsMemory:        limits.Memory,
		corev1.ResourceLimitsMemory:          limits.Memory,
		corev1.ResourceRequestsStorage:       limits.Storage,
		corev1.ResourcePods:                  *resource.NewQuantity(int64(limits.Pods), resource.DecimalSI),
		corev1.ResourceServicesLoadBalancers: zero,
		corev1.ResourceServicesNodePorts:     zero,
	}
	for _, class := range otherClasses {
		hard[corev1.ResourceName(class+".storageclass.storage.k8s.io/requests.storage")] = zero
		hard[corev1.ResourceName(class+".storageclass.storage.k8s.io/persistentvolumeclaims")] = zero
	}
	return &corev1.ResourceQuota{
		ObjectMeta: objectMeta(ws, namespace, resourceQuotaName),
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}
}

// otherStorageClasses lists the cluster's StorageClasses that are not a workspace's own:
// the unencrypted ones a claim could otherwise fall back to. Other workspaces' classes are
// left out on purpose: the admission policy already refuses them, and listing them would
// make every quota, and the status that copies it, grow with the number of workspaces.
func (r *WorkspaceReconciler) otherStorageClasses(ctx context.Context) ([]string, error) {
	var classes storagev1.StorageClassList
	// Only the names are read, so the cache need not copy the classes it matches; and the
	// workspaces' own classes are filtered out before any copy, as every reconcile runs
	// this list and they are one per workspace.
	if err := r.List(ctx, &classes, notWorkspaceClass, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list StorageClasses: %w", err)
	}
	others := make([]string, 0, len(classes.Items))
	for _, class := range classes.Items {
		others = append(others, class.Name)
	}
	sort.Strings(others)
	return others, nil
}

// desiredLimitRange gives containers defaults within the quota and caps a single container
// at the whole quota.
func desiredLimitRange(ws *tenancyv1alpha1.Workspace, namespace string) *corev1.LimitRange {
	limits, _ := quotaLimits(ws)
	ceiling := corev1.ResourceList{corev1.ResourceCPU: limits.CPU, corev1.ResourceMemory: limits.Memory}
	return &corev1.LimitRange{
		ObjectMeta: objectMeta(ws, namespace, limitRangeName),
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:           corev1.LimitTypeContainer,
			Max:            ceiling,
			Default:        capped(defaultContainerLimits, ceiling),
			DefaultRequest: capped(defaultContainerRequests, ceiling),
		}}},
	}
}

// capped is want with every quantity lowered to at most ceiling's.
func capped(want, ceiling corev1.ResourceList) corev1.ResourceList {
	out := want.DeepCopy()
	for name, quantity := range out {
		if limit, ok := ceiling[name]; ok && quantity.Cmp(limit) > 0 {
			out[name] = limit.DeepCopy()
		}
	}
	return out
}

// reconcileQuota applies the ResourceQuota and the LimitRange.
func (r *WorkspaceReconciler) reconcileQuota(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	otherClasses, err := r.otherStorageClasses(ctx)
	if err != nil {
		return failed("ResourceQuotaFailed", err)
	}
	quota := desiredResourceQuota(ws, namespace, otherClasses)
	err = apply(ctx, r, ws, quota, func(live *corev1.ResourceQuota) {
		mergeLabels(live, quota.Labels)
		live.Spec = quota.Spec
	})
	if err != nil {
		return failed("ResourceQuotaFailed", fmt.Errorf("apply ResourceQuota %s/%s: %w", namespace, quota.Name, err))
	}
	limitRange := desiredLimitRange(ws, namespace)
	err = apply(ctx, r, ws, limitRange, func(live *corev1.LimitRange) {
		mergeLabels(live, limitRange.Labels)
		live.Spec = limitRange.Spec
	})
	if err != nil {
		return failed("LimitRangeFailed", fmt.Errorf("apply LimitRange %s/%s: %w", namespace, limitRange.Name, err))
	}

	_, tier := quotaLimits(ws)
	hard := make(map[string]resource.Quantity, len(quota.Spec.Hard))
	for name, quantity := range quota.Spec.Hard {
		hard[string(name)] = quantity
	}
	ws.Status.Quota = &tenancyv1alpha1.QuotaStatus{Tier: tier, Hard: hard}
	setCondition(ws, tenancyv1alpha1.ConditionQuotaApplied, metav1.ConditionTrue, "QuotaApplied",
		fmt.Sprintf("%s quota in force: cpu %s, memory %s, storage %s, pods %s",
			tier, quota.Spec.Hard.Name(corev1.ResourceRequestsCPU, resource.DecimalSI),
			quota.Spec.Hard.Name(corev1.ResourceRequestsMemory, resource.BinarySI),
			quota.Spec.Hard.Name(corev1.ResourceRequestsStorage, resource.BinarySI),
			quota.Spec.Hard.Pods()))
	return nil
}

// notWorkspaceClass selects the StorageClasses without the operator's managed-by label.
var notWorkspaceClass = func() client.MatchingLabelsSelector {
	requirement, err := labels.NewRequirement(tenancyv1alpha1.ManagedByLabel, selection.NotEquals, []string{tenancyv1alpha1.ManagedByValue})
	if err != nil {
		panic(err) // the label and value are constants
	}
	return client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*requirement)}
}()
