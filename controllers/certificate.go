package controllers

import (
	"context"
	"fmt"
	"strings"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// certificateName names both the workspace's Certificate and the Secret it is issued into.
const certificateName = "workspace-tls"

// desiredCertificate asks cert-manager for a certificate covering the workspace's hosts.
func desiredCertificate(ws *tenancyv1alpha1.Workspace, namespace string, defaultIssuer tenancyv1alpha1.IssuerReference) *cmv1.Certificate {
	issuer := defaultIssuer
	if ws.Spec.TLS.IssuerRef != nil {
		issuer = *ws.Spec.TLS.IssuerRef
	}
	return &cmv1.Certificate{
		ObjectMeta: objectMeta(ws, namespace, certificateName),
		Spec: cmv1.CertificateSpec{
			SecretName:     certificateName,
			SecretTemplate: &cmv1.CertificateSecretTemplate{Labels: managedLabels(ws)},
			DNSNames:       ws.Spec.TLS.Hosts,
			IssuerRef:      cmmeta.IssuerReference{Name: issuer.Name, Kind: string(issuer.Kind), Group: issuer.Group},
			PrivateKey: &cmv1.CertificatePrivateKey{
				Algorithm:      cmv1.ECDSAKeyAlgorithm,
				Size:           256,
				RotationPolicy: cmv1.RotationPolicyAlways,
			},
		},
	}
}

// certificateCondition mirrors cert-manager's Ready condition of cert onto CertificateReady.
// A Ready condition observed for an older generation of the Certificate is not trusted.
func certificateCondition(cert *cmv1.Certificate) (metav1.ConditionStatus, string, string) {
	for _, c := range cert.Status.Conditions {
		if c.Type != cmv1.CertificateConditionReady {
			continue
		}
		switch {
		case c.ObservedGeneration < cert.Generation:
			return metav1.ConditionFalse, "Issuing", "cert-manager has not yet processed the latest change to Certificate " + objectRef(cert)
		case c.Status == cmmeta.ConditionTrue:
			return metav1.ConditionTrue, "Issued", fmt.Sprintf("certificate for %s issued into Secret %s", strings.Join(cert.Spec.DNSNames, ", "), cert.Spec.SecretName)
		default:
			reason := c.Reason
			if reason == "" {
				reason = "NotReady"
			}
			return metav1.ConditionFalse, reason, fmt.Sprintf("cert-manager: %s (kubectl describe certificate -n %s %s)", c.Message, cert.Namespace, cert.Name)
		}
	}
	return metav1.ConditionFalse, "Issuing", fmt.Sprintf("waiting for cert-manager to issue Certificate %s", objectRef(cert))
}

// reconcileCertificate requests the workspace's HTTPS certificate and reports whether
// cert-manager has issued it. Without cert-manager the rest of the workspace still works.
func (r *WorkspaceReconciler) reconcileCertificate(ctx context.Context, ws *tenancyv1alpha1.Workspace, namespace string) error {
	if ws.Spec.TLS == nil {
		ws.Status.Certificate = nil
		if err := r.watchCertificates(); err == nil {
			if err := prune(ctx, r, ws, namespace, &cmv1.CertificateList{}, func(client.Object) bool { return false }); err != nil {
				return failed("CertificateFailed", err)
			}
		}
		setCondition(ws, tenancyv1alpha1.ConditionCertificateReady, metav1.ConditionTrue, "NotRequested",
			"spec.tls is not set: the workspace serves no public hosts and needs no certificate")
		return nil
	}
	if err := r.watchCertificates(); meta.IsNoMatchError(err) {
		return stalled("CertManagerNotInstalled",
			"cert-manager's CRDs are not installed, so no certificate can be issued for %s; install cert-manager (the rest of the workspace works without it)",
			strings.Join(ws.Spec.TLS.Hosts, ", "))
	} else if err != nil {
		return failed("CertificateFailed", err)
	}

	desired := desiredCertificate(ws, namespace, r.Config.DefaultIssuer)
	live := desired.DeepCopy()
	err := apply(ctx, r, ws, desired, func(cert *cmv1.Certificate) {
		mergeLabels(cert, desired.Labels)
		cert.Spec = desired.Spec
		live = cert
	})
	if err != nil {
		return failed("CertificateFailed", fmt.Errorf("apply Certificate %s: %w", objectRef(desired), err))
	}

	ws.Status.Certificate = &tenancyv1alpha1.CertificateStatus{Name: live.Name, SecretName: live.Spec.SecretName, NotAfter: live.Status.NotAfter}
	status, reason, message := certificateCondition(live)
	setCondition(ws, tenancyv1alpha1.ConditionCertificateReady, status, reason, message)
	return nil
}

// watchCertificates starts watching cert-manager Certificates once their CRD exists, so that
// the operator starts without cert-manager and picks it up when it is installed later. It
// returns a no-match error while the CRD is missing.
func (r *WorkspaceReconciler) watchCertificates() error {
	r.certificateWatch.Lock()
	defer r.certificateWatch.Unlock()
	if r.certificateWatch.started {
		return nil
	}
	if _, err := r.RESTMapper().RESTMapping(cmv1.SchemeGroupVersion.WithKind(cmv1.CertificateKind).GroupKind(), cmv1.SchemeGroupVersion.Version); err != nil {
		return err
	}
	err := r.controller.Watch(source.Kind(r.cache, client.Object(&cmv1.Certificate{}), handler.EnqueueRequestsFromMapFunc(workspaceForObject)))
	if err != nil {
		return fmt.Errorf("watch cert-manager Certificates: %w", err)
	}
	r.certificateWatch.started = true
	return nil
}
