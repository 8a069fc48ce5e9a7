// Package cloud is the operator's only AWS code: per-workspace KMS keys and S3 buckets,
// through aws-sdk-go-v2. Every operation is idempotent: resources have deterministic
// names (aliases, bucket names) and carry tags naming the cluster and workspace, so a
// retry, a restart or a crash half way through adopts what exists instead of creating
// a second one.
package cloud
