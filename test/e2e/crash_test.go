package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
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
	// Enough workspaces that kills land in every step of provisioning and deletion.
	const workspaces = 20
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

		By("holding in AWS what the records list and nothing else: one key pending deletion per workspace and region, behind its alias; no untracked key; no leaked bucket")
		crashed := map[string]bool{}
		trackedKeys, trackedBuckets := map[string]string{}, map[string]bool{}
		for _, name := range names {
			crashed[name] = true
			var purges tenancyv1alpha1.WorkspacePurgeList
			Expect(k8sClient.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: name})).To(Succeed())
			for _, k := range purges.Items[0].Spec.Keys {
				trackedKeys[k.ARN] = name
			}
			for _, b := range purges.Items[0].Spec.Buckets {
				trackedBuckets[b.Name] = true
			}
		}
		keys, buckets := awsHoldings(Default)
		perRegion := map[string]int{}
		for _, k := range keys {
			name := k.Tags[cloud.TagWorkspace]
			if !crashed[name] {
				continue // another spec's
			}
			Expect(trackedKeys).To(HaveKeyWithValue(k.ARN, name), "key %s of %s is in no purge record", k.ARN, name)
			Expect(k.State).To(Equal("PendingDeletion"), "key %s of %s", k.ARN, name)
			Expect(k.Aliases).To(ConsistOf("alias/workspace-operator/default/"+name), "aliases of key %s", k.ARN)
			region := strings.Split(k.ARN, ":")[3]
			perRegion[name+" in "+region]++
		}
		for _, name := range names {
			for _, region := range []string{awsRegion, replicaRegion} {
				Expect(perRegion[name+" in "+region]).To(Equal(1), "keys of %s in %s", name, region)
			}
		}
		held := map[string]bool{}
		for _, b := range buckets {
			if name := b.Tags[cloud.TagWorkspace]; crashed[name] {
				Expect(trackedBuckets).To(HaveKey(b.Name), "bucket %s of %s is in no purge record", b.Name, name)
				held[b.Name] = true
			}
		}
		for name := range trackedBuckets {
			Expect(held).To(HaveKey(name), "bucket %s of a purge record is not in AWS (or not tagged)", name)
		}
	})
}
