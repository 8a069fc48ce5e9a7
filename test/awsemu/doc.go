// Package awsemu is an in-process emulator of the slice of AWS KMS and Amazon
// S3 that the workspace operator uses. It speaks the real wire protocols (KMS
// JSON 1.1, S3 REST/XML) so that tests exercise the genuine aws-sdk-go-v2
// clients, including their retry, checksum and error-mapping middleware,
// without network access to AWS.
//
// One listener serves every region: the region of a request is read from the
// credential scope of its SigV4 Authorization header (signatures themselves
// are never verified, the emulator holds no secrets). KMS keys and aliases are
// per region; S3 buckets live in one global namespace and remember the region
// they were created in, like the real service.
//
// Object storage is delegated to gofakes3 with its in-memory backend. A front
// layer decodes aws-chunked bodies, validates checksums, applies SSE-KMS
// (resolving and checking keys against the emulated KMS), and serves the
// bucket sub-resources gofakes3 does not implement.
//
// Typical use in a Go test:
//
//	srv, err := awsemu.Start(awsemu.Options{Clock: fakeClock})
//	...
//	defer srv.Close()
//	cfg := srv.AWSConfig("eu-west-1")
//	kmsClient := kms.NewFromConfig(cfg)
//	s3Client := s3.NewFromConfig(cfg, awsemu.UsePathStyle) // S3 needs path-style addressing
//
// Tests can inject faults (Server.Inject), count calls per operation
// (Server.Calls) and inspect state (Server.Keys, Server.Buckets). The binary
// in cmd/awsemu exposes the same emulator to out-of-process consumers.
//
// Deliberate differences from AWS:
//
//   - Signatures are not verified and any credentials are accepted; the access
//     key ID alone names the caller (principals.go: the operator, the backup
//     agent, the volume driver, the account root, and the root of a second
//     account that owns buckets of its own). IAM policies are not evaluated: every principal of
//     the account holds every permission. Bucket policies are evaluated as S3
//     does after IAM allowed a request (an explicit Deny wins, the owner
//     account's root user may always get, put and delete the bucket policy,
//     another account needs an explicit Allow), with aws:SecureTransport,
//     aws:PrincipalArn, aws:PrincipalAccount and the SSE condition keys.
//     Over plain HTTP, aws:SecureTransport is true unless
//     Options.StrictTransport. Key policies are evaluated by KMS's lockout
//     safety check on CreateKey and PutKeyPolicy, and for the volume driver's
//     DescribeKey, Encrypt, Decrypt and GenerateDataKey* (a Deny wins; without
//     an Allow for the role or the account root the request is refused); the
//     other principals' KMS requests are not evaluated, so tests may leave a
//     key with a policy AWS would lock them out of. No request carries
//     kms:ViaService or kms:GrantIsForAWSResource: EC2 calling KMS for a
//     volume is not emulated.
//   - KMS keys are symmetric AWS_KMS keys only: no grants, ReEncrypt,
//     multi-Region replicas, imported material or custom key stores.
//     Rotation is recorded but key material never rotates. ListAliases does
//     not list the predefined alias/aws/* aliases.
//   - New buckets have no default encryption, public access block or
//     ownership controls (AWS now applies SSE-S3, a full public access block
//     and BucketOwnerEnforced by default), so their Get operations report
//     the "not found" errors.
//   - Lifecycle rules are executed on the injected clock at the first request
//     to the bucket after they are due (S3 runs them asynchronously, up to a
//     day or two late): current versions expire after Days, noncurrent ones
//     NoncurrentDays after they stopped being current, each rounded up to
//     midnight UTC, and delete markers left alone are removed. Rules filtered
//     by tag or size, Expiration by Date, transitions and
//     AbortIncompleteMultipartUpload are stored, not executed. Replication is
//     stored, not executed: objects are never replicated.
//   - SSE is bookkeeping: objects are held in plaintext. SSE-KMS without a
//     key ID (the AWS managed aws/s3 key) records no key.
//   - Object tagging, ACLs, CORS, website, logging, notifications, object
//     lock and UploadPartCopy answer NotImplemented.
package awsemu
