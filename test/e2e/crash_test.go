package e2e

import (
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// killOperator kills the operator without warning, as a node failure or an OOM kill
// would, and starts a new one.
func killOperator() {
	Expect(operator.Kill()).To(Succeed())
	var err error
	operator, err = stack.StartOperator(ctx, operatorOptions)
	Expect(err).NotTo(HaveOccurred())
}

// crashSafetySpecs register, inside the suite's ordered container and before the uninstall
// spec, the specs that kill the operator.
func crashSafetySpecs() {
	const workspaces = 3
	names := make([]string, workspaces)
	for i := range names {
		names[i] = fmt.Sprintf("crash-%d", i)
	}

	It("provisions and securely deletes workspaces although the operator is killed at random points", func() {
		for _, name := range names {
			ws := &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}}},
			}
			Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		}
		By("killing the operator while it provisions")
		for range 3 {
			time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
			killOperator()
		}
		for _, name := range names {
			expectReady(name)
		}

		By("killing the operator while it deletes")
		for _, name := range names {
			Expect(k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
		}
		for range 5 {
			time.Sleep(time.Duration(100+rand.IntN(1500)) * time.Millisecond)
			killOperator()
		}

		By("finishing every deletion, each recorded once, with every key scheduled for deletion")
		for _, name := range names {
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, key("", name), &tenancyv1alpha1.Workspace{}))
			}, namespaceTimeout, interval).Should(BeTrue(), "Workspace %s is still there", name)
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key("", "ws-"+name), &corev1.Namespace{}))).To(BeTrue())

			var purges tenancyv1alpha1.WorkspacePurgeList
			Expect(k8sClient.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: name})).To(Succeed())
			Expect(purges.Items).To(HaveLen(1), "purge records of %s", name)
			purge := purges.Items[0]
			Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgePending))
			Expect(purge.Spec.Keys).To(HaveLen(2), "one key per region, never a second one after a crash")
			for _, k := range purge.Spec.Keys {
				Expect(k.DeletionDate).NotTo(BeNil())
				Expect(k.DeletionDate.Time).NotTo(BeTemporally(">", purge.Spec.PurgeAfter.Time))
			}
			Expect(purge.Spec.Buckets).To(HaveLen(4), "the files and backup buckets of both regions")
		}
	})
}
