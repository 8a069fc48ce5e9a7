package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func q(s string) resource.Quantity { return resource.MustParse(s) }

func TestDesiredResourceQuota(t *testing.T) {
	tests := []struct {
		name     string
		quota    tenancyv1alpha1.QuotaSpec
		wantTier string
		wantHard corev1.ResourceList
	}{
		{
			name:     "no quota is the small tier",
			wantTier: "small",
			wantHard: corev1.ResourceList{
				"requests.cpu": q("2"), "limits.cpu": q("2"), "requests.memory": q("4Gi"), "limits.memory": q("4Gi"),
				"requests.storage": q("20Gi"), "pods": q("20"), "services.loadbalancers": q("0"), "services.nodeports": q("0"),
			},
		},
		{
			name:     "large tier",
			quota:    tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.LargeTier},
			wantTier: "large",
			wantHard: corev1.ResourceList{
				"requests.cpu": q("32"), "limits.cpu": q("32"), "requests.memory": q("64Gi"), "limits.memory": q("64Gi"),
				"requests.storage": q("500Gi"), "pods": q("200"), "services.loadbalancers": q("0"), "services.nodeports": q("0"),
			},
		},
		{
			name:     "explicit limits",
			quota:    tenancyv1alpha1.QuotaSpec{Limits: &tenancyv1alpha1.QuotaLimits{CPU: q("500m"), Memory: q("1Gi"), Storage: q("5Gi"), Pods: 3}},
			wantTier: "custom",
			wantHard: corev1.ResourceList{
				"requests.cpu": q("500m"), "limits.cpu": q("500m"), "requests.memory": q("1Gi"), "limits.memory": q("1Gi"),
				"requests.storage": q("5Gi"), "pods": q("3"), "services.loadbalancers": q("0"), "services.nodeports": q("0"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Quota = tt.quota
			got := desiredResourceQuota(ws, "ws-acme", nil)
			if diff := cmp.Diff(tt.wantHard, got.Spec.Hard, cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })); diff != "" {
				t.Errorf("hard (-want +got):\n%s", diff)
			}
			if _, tier := quotaLimits(ws); tier != tt.wantTier {
				t.Errorf("tier = %q, want %q", tier, tt.wantTier)
			}
			if got.Name != resourceQuotaName || got.Namespace != "ws-acme" {
				t.Errorf("name = %s/%s", got.Namespace, got.Name)
			}
		})
	}
}

func TestDesiredResourceQuotaZeroesOtherStorageClasses(t *testing.T) {
	got := desiredResourceQuota(newTestWorkspace("acme"), "ws-acme", []string{"gp2", "standard"})
	for _, name := range []corev1.ResourceName{
		"gp2.storageclass.storage.k8s.io/requests.storage", "gp2.storageclass.storage.k8s.io/persistentvolumeclaims",
		"standard.storageclass.storage.k8s.io/requests.storage", "standard.storageclass.storage.k8s.io/persistentvolumeclaims",
	} {
		if quantity, ok := got.Spec.Hard[name]; !ok || !quantity.IsZero() {
			t.Errorf("%s = %v (set %t), want 0", name, quantity, ok)
		}
	}
	if _, ok := got.Spec.Hard["ws-acme-encrypted.storageclass.storage.k8s.io/requests.storage"]; ok {
		t.Error("the workspace's own class is capped at zero")
	}
}

func TestDesiredLimitRangeDefaultsFitTheQuota(t *testing.T) {
	tests := []struct {
		name                     string
		quota                    tenancyv1alpha1.QuotaSpec
		wantDefault, wantRequest corev1.ResourceList
	}{
		{
			name:        "defaults below the quota are kept",
			quota:       tenancyv1alpha1.QuotaSpec{Tier: tenancyv1alpha1.SmallTier},
			wantDefault: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("512Mi")},
			wantRequest: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("128Mi")},
		},
		{
			name:        "defaults above a tiny quota shrink to it",
			quota:       tenancyv1alpha1.QuotaSpec{Limits: &tenancyv1alpha1.QuotaLimits{CPU: q("50m"), Memory: q("256Mi"), Storage: q("1Gi"), Pods: 1}},
			wantDefault: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("256Mi")},
			wantRequest: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("128Mi")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.Quota = tt.quota
			item := desiredLimitRange(ws, "ws-acme").Spec.Limits[0]
			equal := cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })
			if diff := cmp.Diff(tt.wantDefault, item.Default, equal); diff != "" {
				t.Errorf("default (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRequest, item.DefaultRequest, equal); diff != "" {
				t.Errorf("defaultRequest (-want +got):\n%s", diff)
			}
			if item.Type != corev1.LimitTypeContainer {
				t.Errorf("type = %s, want Container", item.Type)
			}
		})
	}
}

func TestTiersMatchTheCRDEnum(t *testing.T) {
	for _, tier := range []tenancyv1alpha1.QuotaTier{tenancyv1alpha1.SmallTier, tenancyv1alpha1.MediumTier, tenancyv1alpha1.LargeTier} {
		if _, ok := tiers[tier]; !ok {
			t.Errorf("tier %q has no limits", tier)
		}
	}
}
