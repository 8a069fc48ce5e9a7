package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

func setDefaultProtection(value string) {
	policy := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: testenv.OperatorNamespace, Name: "workspace-operator-policy"}, policy)).To(Succeed())
	policy.Data["defaultDeletionProtection"] = value
	Expect(k8sClient.Update(ctx, policy)).To(Succeed())
}

// expectDeleteRefused waits for the admission policy, which the API server loads
// asynchronously, to refuse deleting the Workspace with a message saying how to proceed.
func expectDeleteRefused(name string) {
	Eventually(func(g Gomega) {
		err := k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.DryRunAll)
		g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "delete = %v", err)
		g.Expect(err.Error()).To(ContainSubstring(`kubectl patch workspace ` + name + ` --type merge -p '{"spec":{"deletionProtection":false}}'`))
	}, timeout, interval).Should(Succeed())
}

// unprotect turns protection off, retrying while the operator updates the Workspace too.
func unprotect(name string) {
	Eventually(func(g Gomega) {
		ws := getWorkspace(g, name)
		ws.Spec.DeletionProtection = ptr.To(false)
		g.Expect(k8sClient.Update(ctx, ws)).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("Deletion protection", func() {
	It("refuses to delete a protected Workspace until protection is turned off", func() {
		ws := newWorkspace("protected")
		ws.Spec.DeletionProtection = ptr.To(true)
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		expectDeleteRefused("protected")

		unprotect("protected")
		Eventually(func() error {
			return k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "protected"}}, client.DryRunAll)
		}, timeout, interval).Should(Succeed())
		deleteWorkspace("protected")
	})

	It("protects Workspaces that say nothing when the operator's default says so", func() {
		setDefaultProtection("true")
		DeferCleanup(setDefaultProtection, "false")
		ws := newWorkspace("default-protected")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		expectDeleteRefused("default-protected")

		unprotect("default-protected")
		Eventually(func() error {
			return k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "default-protected"}}, client.DryRunAll)
		}, timeout, interval).Should(Succeed())
		deleteWorkspace("default-protected")
	})
})

var _ = Describe("Backup retention policy", func() {
	It("refuses a retention above the operator's maximum, naming the field", func() {
		ws := newWorkspace("long-retention")
		ws.Spec.Backup.RetentionDays = 10
		Eventually(func(g Gomega) {
			err := k8sClient.Create(ctx, ws.DeepCopy(), client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create = %v", err)
			g.Expect(err.Error()).To(ContainSubstring("spec.backup.retentionDays is 10 but the operator keeps backups at most 7 days"))
		}, timeout, interval).Should(Succeed())

		ws.Spec.Backup.RetentionDays = 7
		Expect(k8sClient.Create(ctx, ws, client.DryRunAll)).To(Succeed())
	})
})
