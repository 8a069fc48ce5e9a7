package controllers

import (
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

func TestDesiredCertificate(t *testing.T) {
	defaultIssuer := tenancyv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer", Group: "cert-manager.io"}
	tests := []struct {
		name       string
		issuer     *tenancyv1alpha1.IssuerReference
		wantIssuer cmmeta.IssuerReference
	}{
		{
			name:       "default issuer",
			wantIssuer: cmmeta.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer", Group: "cert-manager.io"},
		},
		{
			name:       "the spec's issuer",
			issuer:     &tenancyv1alpha1.IssuerReference{Name: "acme-ca", Kind: "Issuer", Group: "cert-manager.io"},
			wantIssuer: cmmeta.IssuerReference{Name: "acme-ca", Kind: "Issuer", Group: "cert-manager.io"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace("acme")
			ws.Spec.TLS = &tenancyv1alpha1.TLSSpec{Hosts: []string{"app.acme.example", "*.acme.example"}, IssuerRef: tt.issuer}
			got := desiredCertificate(ws, "ws-acme", defaultIssuer)
			want := cmv1.CertificateSpec{
				SecretName:     "workspace-tls",
				SecretTemplate: &cmv1.CertificateSecretTemplate{Labels: managedLabels(ws)},
				DNSNames:       []string{"app.acme.example", "*.acme.example"},
				IssuerRef:      tt.wantIssuer,
				PrivateKey:     &cmv1.CertificatePrivateKey{Algorithm: cmv1.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmv1.RotationPolicyAlways},
			}
			if diff := cmp.Diff(want, got.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCertificateCondition(t *testing.T) {
	ready := func(status cmmeta.ConditionStatus, reason string, observed int64) []cmv1.CertificateCondition {
		return []cmv1.CertificateCondition{{Type: cmv1.CertificateConditionReady, Status: status, Reason: reason, Message: "msg", ObservedGeneration: observed}}
	}
	tests := []struct {
		name       string
		conditions []cmv1.CertificateCondition
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{name: "no condition yet", wantStatus: metav1.ConditionFalse, wantReason: "Issuing"},
		{name: "issued", conditions: ready(cmmeta.ConditionTrue, "Ready", 2), wantStatus: metav1.ConditionTrue, wantReason: "Issued"},
		{name: "ready for an older generation", conditions: ready(cmmeta.ConditionTrue, "Ready", 1), wantStatus: metav1.ConditionFalse, wantReason: "Issuing"},
		{name: "cert-manager's failure reason", conditions: ready(cmmeta.ConditionFalse, "DoesNotExist", 2), wantStatus: metav1.ConditionFalse, wantReason: "DoesNotExist"},
		{name: "failure without a reason", conditions: ready(cmmeta.ConditionFalse, "", 2), wantStatus: metav1.ConditionFalse, wantReason: "NotReady"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := &cmv1.Certificate{
				ObjectMeta: metav1.ObjectMeta{Name: "workspace-tls", Namespace: "ws-acme", Generation: 2},
				Spec:       cmv1.CertificateSpec{SecretName: "workspace-tls", DNSNames: []string{"app.acme.example"}},
				Status:     cmv1.CertificateStatus{Conditions: tt.conditions},
			}
			status, reason, message := certificateCondition(cert)
			if status != tt.wantStatus || reason != tt.wantReason {
				t.Errorf("got %s/%s, want %s/%s", status, reason, tt.wantStatus, tt.wantReason)
			}
			if message == "" {
				t.Error("empty message")
			}
		})
	}
}
