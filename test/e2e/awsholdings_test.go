package e2e

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/gomega"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// heldKey is a KMS key as the emulator holds it.
type heldKey struct {
	ARN, State string
	Tags       map[string]string
	Aliases    []string
}

// heldBucket is an S3 bucket as the emulator holds it.
type heldBucket struct {
	Name, Region string
	Tags         map[string]string
}

// awsHoldings reads, through the AWS APIs, every key (with its tags and aliases) and
// every bucket (with its tags) the emulator holds in the suite's regions: crash safety is
// judged by what AWS holds, not by what the operator recorded.
func awsHoldings(g Gomega) ([]heldKey, []heldBucket) {
	var keys []heldKey
	var buckets []heldBucket
	for _, region := range []string{awsRegion, replicaRegion} {
		cfg := awsemu.NewAWSConfig(emulatorURL, region)
		kc := kms.NewFromConfig(cfg)
		aliases := map[string][]string{}
		for pages := kms.NewListAliasesPaginator(kc, &kms.ListAliasesInput{}); pages.HasMorePages(); {
			page, err := pages.NextPage(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			for _, a := range page.Aliases {
				if id := aws.ToString(a.TargetKeyId); id != "" {
					aliases[id] = append(aliases[id], aws.ToString(a.AliasName))
				}
			}
		}
		for pages := kms.NewListKeysPaginator(kc, &kms.ListKeysInput{}); pages.HasMorePages(); {
			page, err := pages.NextPage(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			for _, entry := range page.Keys {
				meta, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: entry.KeyId})
				g.Expect(err).NotTo(HaveOccurred())
				tags, err := kc.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: entry.KeyId})
				g.Expect(err).NotTo(HaveOccurred())
				k := heldKey{ARN: aws.ToString(meta.KeyMetadata.Arn), State: string(meta.KeyMetadata.KeyState), Tags: map[string]string{},
					Aliases: aliases[aws.ToString(entry.KeyId)]}
				for _, t := range tags.Tags {
					k.Tags[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
				}
				keys = append(keys, k)
			}
		}
		sc := s3.NewFromConfig(cfg, awsemu.UsePathStyle)
		list, err := sc.ListBuckets(ctx, &s3.ListBucketsInput{BucketRegion: aws.String(region)})
		g.Expect(err).NotTo(HaveOccurred())
		for _, b := range list.Buckets {
			held := heldBucket{Name: aws.ToString(b.Name), Region: region, Tags: map[string]string{}}
			tagging, err := sc.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b.Name})
			if cloud.ErrorCode(err) != "NoSuchTagSet" {
				g.Expect(err).NotTo(HaveOccurred())
				for _, t := range tagging.TagSet {
					held.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
			}
			buckets = append(buckets, held)
		}
	}
	return keys, buckets
}
