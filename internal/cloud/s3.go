package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 is the part of the S3 API the operator uses, with *s3.Client's signatures.
type S3 interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, optFns ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, optFns ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
	PutBucketTagging(ctx context.Context, in *s3.PutBucketTaggingInput, optFns ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error)
	GetPublicAccessBlock(ctx context.Context, in *s3.GetPublicAccessBlockInput, optFns ...func(*s3.Options)) (*s3.GetPublicAccessBlockOutput, error)
	PutPublicAccessBlock(ctx context.Context, in *s3.PutPublicAccessBlockInput, optFns ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	GetBucketOwnershipControls(ctx context.Context, in *s3.GetBucketOwnershipControlsInput, optFns ...func(*s3.Options)) (*s3.GetBucketOwnershipControlsOutput, error)
	PutBucketOwnershipControls(ctx context.Context, in *s3.PutBucketOwnershipControlsInput, optFns ...func(*s3.Options)) (*s3.PutBucketOwnershipControlsOutput, error)
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, optFns ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	PutBucketVersioning(ctx context.Context, in *s3.PutBucketVersioningInput, optFns ...func(*s3.Options)) (*s3.PutBucketVersioningOutput, error)
	GetBucketEncryption(ctx context.Context, in *s3.GetBucketEncryptionInput, optFns ...func(*s3.Options)) (*s3.GetBucketEncryptionOutput, error)
	PutBucketEncryption(ctx context.Context, in *s3.PutBucketEncryptionInput, optFns ...func(*s3.Options)) (*s3.PutBucketEncryptionOutput, error)
	GetBucketPolicy(ctx context.Context, in *s3.GetBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error)
	PutBucketPolicy(ctx context.Context, in *s3.PutBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error)
	GetBucketLifecycleConfiguration(ctx context.Context, in *s3.GetBucketLifecycleConfigurationInput, optFns ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
	PutBucketLifecycleConfiguration(ctx context.Context, in *s3.PutBucketLifecycleConfigurationInput, optFns ...func(*s3.Options)) (*s3.PutBucketLifecycleConfigurationOutput, error)
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, optFns ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, optFns ...func(*s3.Options)) (*s3.DeleteBucketOutput, error)
	GetBucketReplication(ctx context.Context, in *s3.GetBucketReplicationInput, optFns ...func(*s3.Options)) (*s3.GetBucketReplicationOutput, error)
	PutBucketReplication(ctx context.Context, in *s3.PutBucketReplicationInput, optFns ...func(*s3.Options)) (*s3.PutBucketReplicationOutput, error)
}

// Buckets manages the S3 buckets that hold a workspace's uploaded files.
type Buckets struct {
	clients map[string]S3
	prefix  string
}

// NewBuckets manages buckets through one client per region; prefix starts every bucket
// name, which S3 requires to be unique across all accounts.
func NewBuckets(clients map[string]S3, prefix string) *Buckets {
	return &Buckets{clients: clients, prefix: prefix}
}

// Name is the deterministic name of a workspace's files bucket in a region. A hash of the
// cluster, workspace and region keeps it unique per cluster while the readable part shows
// whose it is.
func (b *Buckets) Name(owner Owner, region string) string {
	return b.name(owner, region, "")
}

// BackupName is the deterministic name of a workspace's backup bucket in a region.
func (b *Buckets) BackupName(owner Owner, region string) string {
	return b.name(owner, region, "bk")
}

func (b *Buckets) name(owner Owner, region, kind string) string {
	sum := sha256.Sum256([]byte(owner.Cluster + "/" + owner.Workspace + "/" + region + "/" + kind))
	suffix := hex.EncodeToString(sum[:])[:10]
	if kind != "" {
		suffix = kind + "-" + suffix
	}
	readable := owner.Workspace
	if room := 63 - len(b.prefix) - len(suffix) - 2; len(readable) > room {
		readable = readable[:room]
	}
	return fmt.Sprintf("%s-%s-%s", b.prefix, readable, suffix)
}

// BucketRequest asks for a workspace bucket in a region, encrypted with KeyARN (a key in
// the same region).
type BucketRequest struct {
	Owner  Owner
	Name   string
	Region string
	KeyARN string
	// Replication, when set, replicates every object to another bucket.
	Replication *Replication
	// ExpireAfterDays, when set, makes S3 itself delete objects that age and every
	// noncurrent version a day later, whether or not anything else cleans up.
	ExpireAfterDays int32
}

// Replication copies a bucket's objects to a bucket in another region, re-encrypted there
// with that region's workspace key.
type Replication struct {
	RoleARN           string
	DestinationBucket string
	DestinationKeyARN string
}

// Bucket is a workspace bucket as S3 reports it.
type Bucket struct {
	Name    string
	Region  string
	Created bool
	// Repaired lists settings found changed outside the operator and restored.
	Repaired []string
}

func (b *Buckets) client(region string) (S3, error) {
	c, ok := b.clients[region]
	if !ok {
		return nil, terminalf("RegionNotConfigured", "no S3 client for region %s", region)
	}
	return c, nil
}

// Ensure creates the workspace's bucket if needed and makes every security setting match:
// public access blocked, bucket owner enforced, versioning on, SSE-KMS with the workspace
// key and bucket keys, a policy refusing plain HTTP and uploads under any other key, and
// replication when requested. Settings that already match are only read.
func (b *Buckets) Ensure(ctx context.Context, req BucketRequest) (Bucket, error) {
	c, err := b.client(req.Region)
	if err != nil {
		return Bucket{}, err
	}
	bucket := Bucket{Name: req.Name, Region: req.Region}
	if bucket.Created, err = b.createOrAdopt(ctx, c, req, bucket.Name); err != nil {
		return Bucket{}, err
	}
	name := aws.String(bucket.Name)

	settings := []bucketSetting{
		publicAccessBlock(), ownership(), versioning(), encryption(req.KeyARN), policy(bucketPolicy(bucket.Name, req.KeyARN)),
	}
	if req.Replication != nil {
		settings = append(settings, replication(req.Replication))
	}
	if req.ExpireAfterDays > 0 {
		settings = append(settings, lifecycle(req.ExpireAfterDays))
	}
	for _, s := range settings {
		var err error
		switch {
		case bucket.Created && s.setAtCreation:
			continue
		case bucket.Created:
			// A bucket just created has none of the settings: reading them back would
			// only cost calls.
			err = s.put(ctx, c, name)
		default:
			var changed bool
			if changed, err = s.ensure(ctx, c, name); changed {
				bucket.Repaired = append(bucket.Repaired, s.what)
			}
		}
		if err != nil && s.what == "bucket policy" && hasCode(err, "AccessDenied") {
			return Bucket{}, terminalf("BucketPolicyLocked",
				"bucket %s refuses the operator's s3:PutBucketPolicy (%v): a closed-bucket policy written by an earlier operator version denies it to every principal but the account's root user; have the root user delete it (aws s3api delete-bucket-policy --bucket %s), or grant the operator's role s3:PutBucketPolicy",
				bucket.Name, err, bucket.Name)
		}
		if err != nil {
			return Bucket{}, fmt.Errorf("bucket %s %s: %w", bucket.Name, s.what, err)
		}
	}
	return bucket, nil
}

// bucketSetting is one security setting of a bucket: how to tell that it is in place, and
// how to put it in place.
type bucketSetting struct {
	what string
	// setAtCreation settings are part of CreateBucket.
	setAtCreation bool
	inPlace       func(ctx context.Context, c S3, bucket *string) (bool, error)
	put           func(ctx context.Context, c S3, bucket *string) error
}

// createOrAdopt creates the bucket, or checks that an existing one is this workspace's.
func (b *Buckets) createOrAdopt(ctx context.Context, c S3, req BucketRequest, name string) (bool, error) {
	_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
	// A 403 carries no body, hence no code but "Forbidden": the bucket is another
	// account's, or our own under a policy that refuses us. CreateBucket tells which.
	forbidden := hasCode(err, "Forbidden", "AccessDenied")
	switch {
	case err == nil:
		return false, b.checkOwned(ctx, c, req.Owner, name)
	case !forbidden && !hasCode(err, "NotFound", "NoSuchBucket"):
		return false, fmt.Errorf("head bucket %s: %w", name, err)
	}

	in := &s3.CreateBucketInput{Bucket: aws.String(name), ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
	if req.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(req.Region)}
	}
	_, err = c.CreateBucket(ctx, in)
	switch {
	case forbidden && hasCode(err, "BucketAlreadyOwnedByYou"):
		return false, terminalf("BucketAccessDenied", "bucket %s is this account's but refuses the operator's s3:ListBucket; check the bucket policy and the operator's IAM role", name)
	case hasCode(err, "BucketAlreadyOwnedByYou"):
		// An earlier attempt created it but did not get as far as tagging it.
	case hasCode(err, "BucketAlreadyExists"):
		return false, terminalf("BucketNameTaken", "bucket name %s is taken by another AWS account; change the operator's bucket prefix", name)
	case err != nil:
		return false, fmt.Errorf("create bucket %s in %s: %w", name, req.Region, err)
	}
	if err := tagBucket(ctx, c, req.Owner, name); err != nil {
		return false, err
	}
	return true, nil
}

func tagBucket(ctx context.Context, c S3, owner Owner, name string) error {
	tagging := &s3types.Tagging{}
	for _, t := range kmsTags(owner.tags()) {
		tagging.TagSet = append(tagging.TagSet, s3types.Tag{Key: t.TagKey, Value: t.TagValue})
	}
	if _, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name), Tagging: tagging}); err != nil {
		return fmt.Errorf("tag bucket %s: %w", name, err)
	}
	return nil
}

// checkOwned refuses an existing bucket that is not tagged for this workspace. An untagged
// bucket of our own account is one an earlier attempt created and could not tag yet.
func (b *Buckets) checkOwned(ctx context.Context, c S3, owner Owner, name string) error {
	out, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
	if hasCode(err, "NoSuchTagSet") {
		// Tagged now, so that it is never left untagged (eventual consistency can fail
		// the PutBucketTagging right after CreateBucket).
		return tagBucket(ctx, c, owner, name)
	}
	if err != nil {
		return fmt.Errorf("read tags of bucket %s: %w", name, err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if !owner.owns(tags) {
		return terminalf("BucketOwnedElsewhere", "bucket %s exists but is not tagged for workspace %s of cluster %s; the operator will not use it",
			name, owner.Workspace, owner.Cluster)
	}
	return nil
}

// ensure puts the setting in place unless it already is, and reports whether it had to.
func (s bucketSetting) ensure(ctx context.Context, c S3, bucket *string) (bool, error) {
	inPlace, err := s.inPlace(ctx, c, bucket)
	if err != nil || inPlace {
		return false, err
	}
	return true, s.put(ctx, c, bucket)
}

func publicAccessBlock() bucketSetting {
	return bucketSetting{
		what: "public access block",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: bucket})
			if hasCode(err, "NoSuchPublicAccessBlockConfiguration") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			got := out.PublicAccessBlockConfiguration
			return aws.ToBool(got.BlockPublicAcls) && aws.ToBool(got.IgnorePublicAcls) && aws.ToBool(got.BlockPublicPolicy) && aws.ToBool(got.RestrictPublicBuckets), nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: bucket, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
				BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
				BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true),
			}})
			return err
		},
	}
}

func ownership() bucketSetting {
	return bucketSetting{
		what:          "object ownership",
		setAtCreation: true,
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: bucket})
			if hasCode(err, "OwnershipControlsNotFoundError") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return out.OwnershipControls != nil && len(out.OwnershipControls.Rules) == 1 &&
				out.OwnershipControls.Rules[0].ObjectOwnership == s3types.ObjectOwnershipBucketOwnerEnforced, nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: bucket, OwnershipControls: &s3types.OwnershipControls{
				Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}},
			}})
			return err
		},
	}
}

func versioning() bucketSetting {
	return bucketSetting{
		what: "versioning",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
			if err != nil {
				return false, err
			}
			return out.Status == s3types.BucketVersioningStatusEnabled, nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket, VersioningConfiguration: &s3types.VersioningConfiguration{
				Status: s3types.BucketVersioningStatusEnabled,
			}})
			return err
		},
	}
}

func encryption(keyARN string) bucketSetting {
	return bucketSetting{
		what: "default encryption",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: bucket})
			if hasCode(err, "ServerSideEncryptionConfigurationNotFoundError") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if out.ServerSideEncryptionConfiguration == nil || len(out.ServerSideEncryptionConfiguration.Rules) != 1 {
				return false, nil
			}
			got := out.ServerSideEncryptionConfiguration.Rules[0]
			d := got.ApplyServerSideEncryptionByDefault
			return d != nil && d.SSEAlgorithm == s3types.ServerSideEncryptionAwsKms &&
				aws.ToString(d.KMSMasterKeyID) == keyARN && aws.ToBool(got.BucketKeyEnabled), nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: bucket, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
				Rules: []s3types.ServerSideEncryptionRule{{
					ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{
						SSEAlgorithm:   s3types.ServerSideEncryptionAwsKms,
						KMSMasterKeyID: aws.String(keyARN),
					},
					BucketKeyEnabled: aws.Bool(true),
				}},
			}})
			return err
		},
	}
}

func policy(document string) bucketSetting {
	return bucketSetting{
		what: "bucket policy",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bucket})
			if hasCode(err, "NoSuchBucketPolicy") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return samePolicy(aws.ToString(out.Policy), document), nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bucket, Policy: aws.String(document)})
			return err
		},
	}
}

func replication(r *Replication) bucketSetting {
	want := &s3types.ReplicationConfiguration{
		Role: aws.String(r.RoleARN),
		Rules: []s3types.ReplicationRule{{
			ID:                      aws.String("workspace-replica"),
			Priority:                aws.Int32(1),
			Status:                  s3types.ReplicationRuleStatusEnabled,
			Filter:                  &s3types.ReplicationRuleFilter{Prefix: aws.String("")},
			DeleteMarkerReplication: &s3types.DeleteMarkerReplication{Status: s3types.DeleteMarkerReplicationStatusEnabled},
			SourceSelectionCriteria: &s3types.SourceSelectionCriteria{SseKmsEncryptedObjects: &s3types.SseKmsEncryptedObjects{Status: s3types.SseKmsEncryptedObjectsStatusEnabled}},
			Destination: &s3types.Destination{
				Bucket:                  aws.String("arn:aws:s3:::" + r.DestinationBucket),
				EncryptionConfiguration: &s3types.EncryptionConfiguration{ReplicaKmsKeyID: aws.String(r.DestinationKeyARN)},
			},
		}},
	}
	return bucketSetting{
		what: "replication",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: bucket})
			if hasCode(err, "ReplicationConfigurationNotFoundError") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return sameReplication(out.ReplicationConfiguration, want), nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: bucket, ReplicationConfiguration: want})
			return err
		},
	}
}

// expiryRules make S3 enforce retention on its own: current objects expire after days,
// noncurrent versions a day after they stop being current, expired delete markers are
// removed and incomplete multipart uploads are aborted after a day.
func expiryRules(days int32) []s3types.LifecycleRule {
	return []s3types.LifecycleRule{
		{
			ID:                             aws.String("expire-backups"),
			Status:                         s3types.ExpirationStatusEnabled,
			Filter:                         &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
			Expiration:                     &s3types.LifecycleExpiration{Days: aws.Int32(days)},
			NoncurrentVersionExpiration:    &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(1)},
			AbortIncompleteMultipartUpload: &s3types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)},
		},
		{
			ID:         aws.String("remove-expired-delete-markers"),
			Status:     s3types.ExpirationStatusEnabled,
			Filter:     &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
			Expiration: &s3types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(true)},
		},
	}
}

func lifecycle(days int32) bucketSetting {
	want := expiryRules(days)
	return bucketSetting{
		what: "lifecycle",
		inPlace: func(ctx context.Context, c S3, bucket *string) (bool, error) {
			out, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: bucket})
			if hasCode(err, "NoSuchLifecycleConfiguration") {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return sameLifecycle(out.Rules, want), nil
		},
		put: func(ctx context.Context, c S3, bucket *string) error {
			_, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: bucket,
				LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: want}})
			return err
		},
	}
}

// sameLifecycle compares rules by what S3 does with them, whatever form S3 returns them
// in: rules in any order, an empty filter or the legacy rule-level prefix.
func sameLifecycle(got, want []s3types.LifecycleRule) bool {
	if len(got) != len(want) {
		return false
	}
	byID := map[string]lifecycleRule{}
	for _, r := range got {
		byID[aws.ToString(r.ID)] = normaliseRule(r)
	}
	for _, r := range want {
		if g, ok := byID[aws.ToString(r.ID)]; !ok || g != normaliseRule(r) {
			return false
		}
	}
	return true
}

type lifecycleRule struct {
	status                        s3types.ExpirationStatus
	prefix                        string
	days                          int32
	expiredDeleteMarker           bool
	noncurrentDays, abortDays     int32
	hasNoncurrent, hasAbortUpload bool
}

func normaliseRule(r s3types.LifecycleRule) lifecycleRule {
	n := lifecycleRule{status: r.Status, prefix: aws.ToString(r.Prefix)} //nolint:staticcheck // S3 still answers rules written with the legacy rule-level prefix
	if r.Filter != nil {
		n.prefix += aws.ToString(r.Filter.Prefix)
	}
	if e := r.Expiration; e != nil {
		n.days, n.expiredDeleteMarker = aws.ToInt32(e.Days), aws.ToBool(e.ExpiredObjectDeleteMarker)
	}
	if v := r.NoncurrentVersionExpiration; v != nil {
		n.hasNoncurrent, n.noncurrentDays = true, aws.ToInt32(v.NoncurrentDays)
	}
	if a := r.AbortIncompleteMultipartUpload; a != nil {
		n.hasAbortUpload, n.abortDays = true, aws.ToInt32(a.DaysAfterInitiation)
	}
	return n
}

func sameReplication(got, want *s3types.ReplicationConfiguration) bool {
	if got == nil || len(got.Rules) != 1 || aws.ToString(got.Role) != aws.ToString(want.Role) {
		return false
	}
	g, w := got.Rules[0], want.Rules[0]
	return g.Status == w.Status && g.Destination != nil && g.Destination.EncryptionConfiguration != nil &&
		aws.ToString(g.Destination.Bucket) == aws.ToString(w.Destination.Bucket) &&
		aws.ToString(g.Destination.EncryptionConfiguration.ReplicaKmsKeyID) == aws.ToString(w.Destination.EncryptionConfiguration.ReplicaKmsKeyID)
}

// Close makes a deleted workspace's bucket refuse every new write while its data awaits
// the purge: the TLS-only policy plus a deny of uploads. Reopening it is Ensure, which
// restores the normal policy.
func (b *Buckets) Close(ctx context.Context, region, name string) error {
	c, err := b.client(region)
	if err != nil {
		return err
	}
	_, err = policy(closedBucketPolicy(name)).ensure(ctx, c, aws.String(name))
	if hasCode(err, "NoSuchBucket") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("close bucket %s: %w", name, err)
	}
	return nil
}

// HoldBackups makes S3 keep every backup in a deleted workspace's backup bucket for days
// from now at least: its expiry lifecycle, which would otherwise go on expiring backups at
// the retention age during the purge window, is lengthened to days. An undelete's Ensure
// puts the retention back; the purge deletes everything at purgeAfter.
func (b *Buckets) HoldBackups(ctx context.Context, region, name string, days int32) error {
	c, err := b.client(region)
	if err != nil {
		return err
	}
	_, err = lifecycle(days).ensure(ctx, c, aws.String(name))
	if hasCode(err, "NoSuchBucket") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hold the backups of bucket %s for %d days: %w", name, days, err)
	}
	return nil
}

// Purge deletes every version and delete marker in a bucket, then the bucket itself, and
// returns how many versions it deleted. A bucket that no longer exists is purged.
func (b *Buckets) Purge(ctx context.Context, region, name string) (int, error) {
	c, err := b.client(region)
	if err != nil {
		return 0, err
	}
	deleted := 0
	pages := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if hasCode(err, "NoSuchBucket") {
			return deleted, nil
		}
		if err != nil {
			return deleted, fmt.Errorf("list versions in bucket %s: %w", name, err)
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return deleted, fmt.Errorf("delete versions in bucket %s: %w", name, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return deleted, fmt.Errorf("delete %s version %s in bucket %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.VersionId), name, aws.ToString(e.Code), aws.ToString(e.Message))
		}
		deleted += len(ids)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil && !hasCode(err, "NoSuchBucket") {
		return deleted, fmt.Errorf("delete bucket %s: %w", name, err)
	}
	return deleted, nil
}

// Exists reports whether a bucket still exists, for the purge's evidence.
func (b *Buckets) Exists(ctx context.Context, region, name string) (bool, error) {
	c, err := b.client(region)
	if err != nil {
		return false, err
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
	if hasCode(err, "NotFound", "NoSuchBucket") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("head bucket %s: %w", name, err)
	}
	return true, nil
}

// closedBucketPolicy denies every write of data. It does not deny s3:PutBucketPolicy:
// AWS lets only the account's root user past such a deny, so the operator could never
// reopen the bucket for an undelete. Who may change the policy is IAM's to say: the
// operator's role, not the workloads'.
func closedBucketPolicy(bucket string) string {
	bucketARN := "arn:aws:s3:::" + bucket
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			denyInsecureTransport(bucketARN),
			{
				"Sid": "WorkspaceDeletedDenyWrites", "Effect": "Deny", "Principal": "*",
				"Action":   []string{"s3:PutObject", "s3:RestoreObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:ReplicateObject"},
				"Resource": []string{bucketARN + "/*"},
			},
		},
	})
}

func denyInsecureTransport(bucketARN string) map[string]any {
	return map[string]any{
		"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
		"Resource":  []string{bucketARN, bucketARN + "/*"},
		"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}},
	}
}

func mustJSON(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal policy: %v", err)) // static shapes; cannot fail
	}
	return string(out)
}

// bucketPolicy denies any request over plain HTTP and any upload that names an encryption
// other than SSE-KMS with the workspace key. Uploads that name none get the bucket's
// default encryption, which is that key. A condition key missing from the request
// satisfies StringNotEquals and ...IfExists alike in AWS, hence the Null conditions: without
// them every upload without encryption headers would be denied. SSE-KMS without a key ID
// is denied, as S3 would use the AWS managed key aws/s3 for it.
func bucketPolicy(bucket, keyARN string) string {
	bucketARN := "arn:aws:s3:::" + bucket
	named := map[string]string{"s3:x-amz-server-side-encryption": "false"}
	return mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			denyInsecureTransport(bucketARN),
			{
				"Sid": "DenyUploadsNotEncryptedWithKMS", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
				"Resource":  bucketARN + "/*",
				"Condition": map[string]any{"StringNotEquals": map[string]string{"s3:x-amz-server-side-encryption": "aws:kms"}, "Null": named},
			},
			{
				"Sid": "DenyUploadsUnderOtherKeys", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
				"Resource":  bucketARN + "/*",
				"Condition": map[string]any{"StringNotEquals": map[string]string{"s3:x-amz-server-side-encryption-aws-kms-key-id": keyARN}, "Null": named},
			},
		},
	})
}

// samePolicy compares two policy documents as IAM reads them. AWS hands a policy back
// normalised (one-element arrays as strings, Principal "*" as {"AWS":"*"}, its own order),
// and none of that is drift.
func samePolicy(got, want string) bool {
	g, okG := canonicalPolicy(got)
	w, okW := canonicalPolicy(want)
	if !okG || !okW {
		return sameJSON(got, want)
	}
	return g == w
}

func canonicalPolicy(doc string) (string, bool) {
	var p struct {
		Version   string
		Statement []map[string]json.RawMessage
	}
	if json.Unmarshal([]byte(doc), &p) != nil {
		return "", false
	}
	statements := make([]string, 0, len(p.Statement))
	for _, st := range p.Statement {
		canonical := map[string]any{}
		for field, raw := range st {
			switch field {
			case "Action", "NotAction", "Resource", "NotResource":
				canonical[field] = stringSet(raw)
			case "Principal", "NotPrincipal":
				var star string
				if json.Unmarshal(raw, &star) == nil {
					canonical[field] = map[string][]string{"AWS": {star}}
					continue
				}
				byType := map[string]json.RawMessage{}
				_ = json.Unmarshal(raw, &byType)
				sets := map[string][]string{}
				for k, v := range byType {
					sets[k] = stringSet(v)
				}
				canonical[field] = sets
			case "Condition":
				operators := map[string]map[string]json.RawMessage{}
				_ = json.Unmarshal(raw, &operators)
				sets := map[string]map[string][]string{}
				for op, keys := range operators {
					sets[op] = map[string][]string{}
					for k, v := range keys {
						sets[op][k] = stringSet(v)
					}
				}
				canonical[field] = sets
			default:
				var v any
				_ = json.Unmarshal(raw, &v)
				canonical[field] = v
			}
		}
		statements = append(statements, mustJSON(canonical))
	}
	slices.Sort(statements)
	return p.Version + "\n" + strings.Join(statements, "\n"), true
}

// stringSet reads a policy value that is a string or an array of strings, sorted.
func stringSet(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	slices.Sort(many)
	return many
}
