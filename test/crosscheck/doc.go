// Package crosscheck runs the operator's real AWS clients (internal/cloud,
// internal/backup, through aws-sdk-go-v2, their endpoints given as the operator's
// are: AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL_S3) against servers this project
// did not write: local-kms for KMS and MinIO for S3.
//
// test/awsemu was written by the same hands as the clients, so both share one
// reading of AWS. These servers were not: where the clients and a third-party
// server agree, that reading is confirmed by someone else; where the server
// differs from AWS, the difference is in the tables of known differences
// (kmsDifferences, s3Differences), each one probed and asserted, so that a
// server release that changes its behaviour fails here instead of silently
// changing what the suite proves.
//
// The binaries come from hack/crosscheck.sh (built once from the Go module
// proxy, cached by version); `make test` passes their paths in LOCAL_KMS and
// MINIO. Without those variables the suite runs the script itself. It skips,
// saying why, only when a server cannot be built, and fails instead when
// WORKSPACE_OPERATOR_CROSSCHECK=required (CI, .ci/run).
package crosscheck
