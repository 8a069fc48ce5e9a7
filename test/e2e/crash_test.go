package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// killOperator kills the operator without warning, as a node failure or an OOM kill
// would, and starts a new one.
func killOperator() {
	Expect(operator.Kill()).To(Succeed())
	startOperator()
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

	purgeKillSpecs()
}

// purgeKillSpecs register, inside crashSafetySpecs, the spec that kills the operator while
// it destroys the data of deleted workspaces. The suite moves the operator's and AWS's
// clocks past purgeAfter; the API server stays on real time.
func purgeKillSpecs() {
	// Enough records that the purges overlap and kills land inside them; few enough to
	// keep the spec short.
	const (
		workspaces = 10
		// objectsPerBucket gives each purge versions to delete before the bucket.
		objectsPerBucket = 10
		maxKills         = 12
		// maxBucketsPerKill keeps several kills inside the purges of the 40 buckets.
		maxBucketsPerKill = 10
	)
	names := make([]string, workspaces)
	for i := range names {
		names[i] = fmt.Sprintf("purgekill-%d", i)
	}

	It("purges every deleted workspace completely although the operator is killed while it purges", func() {
		for _, name := range names {
			ws := &tenancyv1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       tenancyv1alpha1.WorkspaceSpec{Owners: []tenancyv1alpha1.Owner{{Kind: tenancyv1alpha1.UserOwner, Name: "alice"}}},
			}
			Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		}
		By("filling every bucket of every workspace")
		for _, name := range names {
			ws := expectReady(name)
			Expect(ws.Status.Storage.Buckets).To(HaveLen(2))
			Expect(ws.Status.Backup.Locations).To(HaveLen(2))
			for _, b := range ws.Status.Storage.Buckets {
				fillBucket(b.Region, b.Name, objectsPerBucket)
			}
			for _, l := range ws.Status.Backup.Locations {
				fillBucket(l.Region, l.Bucket, objectsPerBucket)
			}
		}

		By("deleting them: keys pending deletion, buckets closed, one record each awaiting its purge")
		for _, name := range names {
			Expect(k8sClient.Delete(ctx, &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
		}
		records := map[string]tenancyv1alpha1.WorkspacePurge{}
		var latest time.Time
		for _, name := range names {
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, key("", name), &tenancyv1alpha1.Workspace{}))
			}, namespaceTimeout, interval).Should(BeTrue(), "Workspace %s is still there", name)
			var purges tenancyv1alpha1.WorkspacePurgeList
			Expect(k8sClient.List(ctx, &purges, client.MatchingLabels{tenancyv1alpha1.WorkspaceLabel: name})).To(Succeed())
			Expect(purges.Items).To(HaveLen(1), "purge records of %s", name)
			purge := purges.Items[0]
			Expect(purge.Status.State).To(Equal(tenancyv1alpha1.PurgePending))
			Expect(purge.Spec.Keys).To(HaveLen(2))
			Expect(purge.Spec.Buckets).To(HaveLen(4))
			records[name] = purge
			if purge.Spec.PurgeAfter.After(latest) {
				latest = purge.Spec.PurgeAfter.Time
			}
		}

		By("moving the operator's and AWS's clocks past every purgeAfter")
		setClockOffset(time.Until(latest) + time.Minute)
		DeferCleanup(func() {
			// The later specs run on real time; a restart reconciles every workspace on it.
			setClockOffset(0)
			killOperator()
		})

		By("killing the operator at random points while it purges: each time once it has deleted a random number of buckets")
		// The running operator saw the records last a week before purgeAfter and waits: each
		// start from here on finds them due and purges them at once, while it starts.
		Expect(operator.Kill()).To(Succeed())
		left := map[string]bool{}
		for _, record := range records {
			for _, b := range record.Spec.Buckets {
				left[b.Name] = true
			}
		}
		kills, interrupted := 0, 0
		for kills < maxKills {
			starting := operatorOptions
			starting.NoWait = true
			var err error
			operator, err = stack.StartOperator(ctx, starting)
			Expect(err).NotTo(HaveOccurred())
			if len(left) > 0 {
				awaitBucketDeletions(left, 1+rand.IntN(min(len(left), maxBucketsPerKill)))
			} else {
				// Only status writes can be left: kill at any moment of the start.
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			}
			Expect(operator.Kill()).To(Succeed())
			kills++
			purged, caught := purgeProgress(records)
			interrupted += caught
			fmt.Fprintf(GinkgoWriter, "kill %d: %d buckets left, %d records purged, %d caught half done\n", kills, len(left), purged, caught)
			if purged == len(records) {
				break
			}
		}
		startOperator()
		AddReportEntry("purge kills", fmt.Sprintf("%d kills, %d purges caught half done", kills, interrupted))
		Expect(interrupted).To(BeNumerically(">", 0), "no kill caught a purge half done: the spec would not see a purge that cannot resume")

		By("finishing every purge with its evidence: every bucket deleted, every key deleted by KMS")
		for name, record := range records {
			Eventually(func(g Gomega) {
				live := &tenancyv1alpha1.WorkspacePurge{}
				g.Expect(k8sClient.Get(ctx, key("", record.Name), live)).To(Succeed())
				g.Expect(live.Status.State).To(Equal(tenancyv1alpha1.PurgePurged), "conditions: %+v", live.Status.Conditions)
				g.Expect(live.Status.PurgedAt).NotTo(BeNil())
				g.Expect(live.Status.Evidence).To(HaveLen(len(record.Spec.Buckets)+len(record.Spec.Keys)+1), "evidence of %s", name)
				g.Expect(live.Status.Evidence).To(ContainElement(HavePrefix("cluster: no VolumeSnapshotContent, PersistentVolume or data mover run of workspace " + name)))
				for _, b := range record.Spec.Buckets {
					g.Expect(live.Status.Evidence).To(ContainElement(And(ContainSubstring("bucket "+b.Name+" ("+b.Region+")"), HaveSuffix("bucket deleted"))))
				}
				for _, k := range record.Spec.Keys {
					// Deleted, not merely pending: KMS's clock passed the deletion date too.
					g.Expect(live.Status.Evidence).To(ContainElement(Equal("key " + k.ARN + " (" + k.Region + "): deleted by KMS")))
				}
				records[name] = *live
			}, readyTimeout, interval).Should(Succeed(), "purge of %s", name)
		}

		By("holding nothing of them in AWS: no bucket, no key, no alias, nothing untracked")
		for name, record := range records {
			for _, b := range record.Spec.Buckets {
				_, err := s3.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, b.Region), awsemu.UsePathStyle).
					HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.Name)})
				Expect(cloud.ErrorCode(err)).To(Equal("NotFound"), "bucket %s of %s", b.Name, name)
			}
			for _, k := range record.Spec.Keys {
				_, err := kms.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, k.Region)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.ARN)})
				Expect(cloud.ErrorCode(err)).To(Equal("NotFoundException"), "key %s of %s", k.ARN, name)
			}
			for _, region := range []string{awsRegion, replicaRegion} {
				_, err := kms.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, region)).
					DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/workspace-operator/default/" + name)})
				Expect(cloud.ErrorCode(err)).To(Equal("NotFoundException"), "alias of %s in %s", name, region)
			}
		}
		keys, buckets := awsHoldings(Default)
		for _, k := range keys {
			Expect(records).NotTo(HaveKey(k.Tags[cloud.TagWorkspace]), "key %s (%s) outlived the purge", k.ARN, k.State)
		}
		for _, b := range buckets {
			Expect(records).NotTo(HaveKey(b.Tags[cloud.TagWorkspace]), "bucket %s outlived the purge", b.Name)
		}

		By("purging each record once: another start leaves every record as it was")
		killOperator()
		Consistently(func(g Gomega) {
			for _, record := range records {
				live := &tenancyv1alpha1.WorkspacePurge{}
				g.Expect(k8sClient.Get(ctx, key("", record.Name), live)).To(Succeed())
				g.Expect(live.Status.State).To(Equal(tenancyv1alpha1.PurgePurged))
				g.Expect(live.Status.PurgedAt).To(Equal(record.Status.PurgedAt))
				g.Expect(live.Status.Evidence).To(Equal(record.Status.Evidence))
			}
		}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	})
}

// purgeRoundTimeout bounds how long a kill waits for the purges to delete buckets.
const purgeRoundTimeout = 10 * time.Second

// startOperator starts the operator after a spec killed it.
func startOperator() {
	var err error
	operator, err = stack.StartOperator(ctx, operatorOptions)
	Expect(err).NotTo(HaveOccurred())
}

// fillBucket writes objects into a workspace bucket, as its workloads and backups would.
func fillBucket(region, bucket string, objects int) {
	c := s3.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, region), awsemu.UsePathStyle)
	for i := range objects {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("data/%d", i)), Body: strings.NewReader("customer data"),
		})
		Expect(err).NotTo(HaveOccurred(), "fill bucket %s", bucket)
	}
}

// awaitBucketDeletions waits until n of the buckets left are gone from AWS, and forgets
// those. It gives up after purgeRoundTimeout: a purge that cannot resume deletes nothing.
func awaitBucketDeletions(left map[string]bool, n int) {
	c := s3.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, awsRegion), awsemu.UsePathStyle)
	for deadline, gone := time.Now().Add(purgeRoundTimeout), 0; gone < n && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		list, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		Expect(err).NotTo(HaveOccurred())
		held := map[string]bool{}
		for _, b := range list.Buckets {
			held[aws.ToString(b.Name)] = true
		}
		for name := range left {
			if !held[name] {
				delete(left, name)
				gone++
			}
		}
	}
}

// purgeProgress reads, while no operator runs, how many records are Purged and how many
// purges a kill interrupted half done: not Purged, yet a bucket of theirs already deleted
// in AWS. (An emptied bucket says nothing: the buckets' own lifecycle, on AWS's clock,
// expires objects too.)
func purgeProgress(records map[string]tenancyv1alpha1.WorkspacePurge) (purged, halfDone int) {
	for _, record := range records {
		live := &tenancyv1alpha1.WorkspacePurge{}
		Expect(k8sClient.Get(ctx, key("", record.Name), live)).To(Succeed())
		if live.Status.State == tenancyv1alpha1.PurgePurged {
			purged++
			continue
		}
		for _, b := range record.Spec.Buckets {
			_, err := s3.NewFromConfig(awsemu.NewAWSConfig(emulatorURL, b.Region), awsemu.UsePathStyle).
				HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.Name)})
			if cloud.ErrorCode(err) == "NotFound" {
				halfDone++
				break
			}
			Expect(err).NotTo(HaveOccurred())
		}
	}
	return purged, halfDone
}
