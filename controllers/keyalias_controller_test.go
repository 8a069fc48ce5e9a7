package controllers

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// keyOfCluster is the workspace's key in region as the emulator holds it, for one cluster.
func keyOfCluster(g Gomega, region, cluster, workspace string) awsemu.KeySnapshot {
	var found []awsemu.KeySnapshot
	for _, k := range keysOf(region, workspace) {
		if k.Tags["workspace-operator.io/cluster"] == cluster {
			found = append(found, k)
		}
	}
	g.Expect(found).To(HaveLen(1), "keys of cluster %s, workspace %s in %s", cluster, workspace, region)
	return found[0]
}

// createLegacyKey creates a key as an operator did before the alias named the cluster.
func createLegacyKey(region, cluster, workspace string) string {
	c := kms.NewFromConfig(emu.AWSConfig(region))
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{Tags: []kmstypes.Tag{
		{TagKey: aws.String("workspace-operator.io/managed-by"), TagValue: aws.String("workspace-operator")},
		{TagKey: aws.String("workspace-operator.io/cluster"), TagValue: aws.String(cluster)},
		{TagKey: aws.String("workspace-operator.io/workspace"), TagValue: aws.String(workspace)},
	}})
	Expect(err).NotTo(HaveOccurred())
	_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: out.KeyMetadata.KeyId})
	Expect(err).NotTo(HaveOccurred())
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace-operator/" + workspace), TargetKeyId: out.KeyMetadata.KeyId})
	Expect(err).NotTo(HaveOccurred())
	return aws.ToString(out.KeyMetadata.Arn)
}

var _ = Describe("Key aliases that name the cluster", func() {
	It("gives a workspace its own key beside another cluster's of the same name, and deletes only its own", func() {
		blue := createLegacyKey(primaryRegion, "blue", "bluegreen")
		ws := newWorkspace("bluegreen")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady(ws.Name)

		ours := keyOfCluster(Default, primaryRegion, "envtest", "bluegreen")
		Expect(ours.ARN).NotTo(Equal(blue))
		Expect(ours.Aliases).To(ConsistOf("alias/workspace-operator/envtest/bluegreen"))
		Expect(ws.Status.Encryption.Keys[0].ARN).To(Equal(ours.ARN))
		Expect(ws.Status.Encryption.Keys[0].Alias).To(Equal("alias/workspace-operator/envtest/bluegreen"))

		deleteWorkspace(ws.Name)
		for _, region := range []string{primaryRegion, replicaRegion} {
			Expect(keyOfCluster(Default, region, "envtest", "bluegreen").State).To(Equal("PendingDeletion"), region)
		}
		other := keyOfCluster(Default, primaryRegion, "blue", "bluegreen")
		Expect(other.State).To(Equal("Enabled"), "the other cluster's key")
		Expect(other.Aliases).To(ConsistOf("alias/workspace-operator/bluegreen"))
	})

	It("adds the new alias to a key created under the old one, found by tag or by the ARN in status", func() {
		By("adopting a key behind the old alias, tagged for this cluster and workspace, when status names none")
		legacy := createLegacyKey(primaryRegion, "envtest", "legacy")
		ws := newWorkspace("legacy")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		ws = expectReady(ws.Name)
		key := keyOfCluster(Default, primaryRegion, "envtest", "legacy")
		Expect(key.ARN).To(Equal(legacy))
		Expect(key.Aliases).To(ConsistOf("alias/workspace-operator/legacy", "alias/workspace-operator/envtest/legacy"))
		Expect(ws.Status.Encryption.Keys[0]).To(Equal(tenancyv1alpha1.KeyStatus{
			Region: primaryRegion, ARN: legacy, Alias: "alias/workspace-operator/envtest/legacy", State: "Enabled"}))

		By("adding the new alias to the key recorded in status under the old one")
		replica := keyOfCluster(Default, replicaRegion, "envtest", "legacy")
		c := kms.NewFromConfig(emu.AWSConfig(replicaRegion))
		_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/workspace-operator/envtest/legacy")})
		Expect(err).NotTo(HaveOccurred())
		_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace-operator/legacy"), TargetKeyId: aws.String(replica.KeyID)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "legacy")
			base := ws.DeepCopy()
			g.Expect(ws.Status.Encryption.Keys[1].Region).To(Equal(replicaRegion))
			ws.Status.Encryption.Keys[1].Alias = "alias/workspace-operator/legacy"
			g.Expect(k8sClient.Status().Patch(ctx, ws, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))).To(Succeed())
		}, timeout, interval).Should(Succeed())
		requestReconcile("legacy", "migrate")
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, "legacy")
			g.Expect(ws.Status.LastHandledReconcileAt).To(Equal("migrate"))
			g.Expect(ws.Status.Encryption.Keys[1]).To(Equal(tenancyv1alpha1.KeyStatus{
				Region: replicaRegion, ARN: replica.ARN, Alias: "alias/workspace-operator/envtest/legacy", State: "Enabled"}))
		}, timeout, interval).Should(Succeed())
		Expect(keyOfCluster(Default, replicaRegion, "envtest", "legacy").Aliases).To(
			ConsistOf("alias/workspace-operator/legacy", "alias/workspace-operator/envtest/legacy"))

		By("scheduling the deletion of the migrated keys by their ARN")
		deleteWorkspace("legacy")
		for _, region := range []string{primaryRegion, replicaRegion} {
			Expect(keysOf(region, "legacy")).To(HaveLen(1), "a second key in %s", region)
			Expect(keyOfCluster(Default, region, "envtest", "legacy").State).To(Equal("PendingDeletion"), region)
		}
	})
})
