package awsemu

import (
	"net/http"
	"net/url"
	"strings"
)

// subresource maps a bucket or object sub-resource query key to the AWS
// operation names used for it per HTTP method.
type subresource struct {
	query                  string
	get, put, delete, post string
}

// bucketSubresources lists the bucket sub-resources S3 knows. Requests for
// any of them must never reach gofakes3, which ignores unknown query keys
// and would, for example, treat PUT /bucket?acl as CreateBucket.
var bucketSubresources = []subresource{
	{query: "encryption", get: "GetBucketEncryption", put: "PutBucketEncryption", delete: "DeleteBucketEncryption"},
	{query: "publicAccessBlock", get: "GetPublicAccessBlock", put: "PutPublicAccessBlock", delete: "DeletePublicAccessBlock"},
	{query: "policyStatus", get: "GetBucketPolicyStatus"},
	{query: "policy", get: "GetBucketPolicy", put: "PutBucketPolicy", delete: "DeleteBucketPolicy"},
	{query: "ownershipControls", get: "GetBucketOwnershipControls", put: "PutBucketOwnershipControls", delete: "DeleteBucketOwnershipControls"},
	{query: "lifecycle", get: "GetBucketLifecycleConfiguration", put: "PutBucketLifecycleConfiguration", delete: "DeleteBucketLifecycle"},
	{query: "replication", get: "GetBucketReplication", put: "PutBucketReplication", delete: "DeleteBucketReplication"},
	{query: "tagging", get: "GetBucketTagging", put: "PutBucketTagging", delete: "DeleteBucketTagging"},
	{query: "versioning", get: "GetBucketVersioning", put: "PutBucketVersioning"},
	{query: "location", get: "GetBucketLocation"},
	{query: "cors", get: "GetBucketCors", put: "PutBucketCors", delete: "DeleteBucketCors"},
	{query: "acl", get: "GetBucketAcl", put: "PutBucketAcl"},
	{query: "website", get: "GetBucketWebsite", put: "PutBucketWebsite", delete: "DeleteBucketWebsite"},
	{query: "logging", get: "GetBucketLogging", put: "PutBucketLogging"},
	{query: "notification", get: "GetBucketNotificationConfiguration", put: "PutBucketNotificationConfiguration"},
	{query: "object-lock", get: "GetObjectLockConfiguration", put: "PutObjectLockConfiguration"},
	{query: "accelerate", get: "GetBucketAccelerateConfiguration", put: "PutBucketAccelerateConfiguration"},
	{query: "requestPayment", get: "GetBucketRequestPayment", put: "PutBucketRequestPayment"},
	{query: "analytics", get: "GetBucketAnalyticsConfiguration", put: "PutBucketAnalyticsConfiguration", delete: "DeleteBucketAnalyticsConfiguration"},
	{query: "metrics", get: "GetBucketMetricsConfiguration", put: "PutBucketMetricsConfiguration", delete: "DeleteBucketMetricsConfiguration"},
	{query: "inventory", get: "GetBucketInventoryConfiguration", put: "PutBucketInventoryConfiguration", delete: "DeleteBucketInventoryConfiguration"},
	{query: "intelligent-tiering", get: "GetBucketIntelligentTieringConfiguration", put: "PutBucketIntelligentTieringConfiguration", delete: "DeleteBucketIntelligentTieringConfiguration"},
	{query: "metadataTable", get: "GetBucketMetadataTableConfiguration", post: "CreateBucketMetadataTableConfiguration", delete: "DeleteBucketMetadataTableConfiguration"},
}

// objectSubresources lists the object sub-resources S3 knows; gofakes3
// implements none of them and would mistake PUT /bucket/key?tagging for
// PutObject.
var objectSubresources = []subresource{
	{query: "tagging", get: "GetObjectTagging", put: "PutObjectTagging", delete: "DeleteObjectTagging"},
	{query: "acl", get: "GetObjectAcl", put: "PutObjectAcl"},
	{query: "attributes", get: "GetObjectAttributes"},
	{query: "retention", get: "GetObjectRetention", put: "PutObjectRetention"},
	{query: "legal-hold", get: "GetObjectLegalHold", put: "PutObjectLegalHold"},
	{query: "torrent", get: "GetObjectTorrent"},
	{query: "restore", post: "RestoreObject"},
	{query: "select", post: "SelectObjectContent"},
	{query: "renameObject", put: "RenameObject"},
}

func (s subresource) operation(method string) string {
	switch method {
	case http.MethodGet:
		return s.get
	case http.MethodPut:
		return s.put
	case http.MethodDelete:
		return s.delete
	case http.MethodPost:
		return s.post
	}
	return ""
}

// findSubresource returns the sub-resource a request addresses, if any.
func findSubresource(table []subresource, q url.Values) (subresource, bool) {
	for _, s := range table {
		if q.Has(s.query) {
			return s, true
		}
	}
	return subresource{}, false
}

// unknownOperation names requests that match no S3 operation (e.g. DELETE
// on ?versioning); they are answered MethodNotAllowed.
const unknownOperation = "Unknown"

// splitS3Path splits a path-style request path into bucket and key.
func splitS3Path(p string) (bucket, key string) {
	bucket, key, _ = strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return bucket, key
}

// s3Operation names a path-style S3 request the way AWS does (PutObject,
// PutBucketEncryption, UploadPart, ...), from its method, path, query and,
// for copies, the x-amz-copy-source header.
func s3Operation(r *http.Request) string {
	bucket, key := splitS3Path(r.URL.Path)
	q := r.URL.Query()
	if bucket == "" {
		if r.Method == http.MethodGet {
			return "ListBuckets"
		}
		return unknownOperation
	}
	table, isObject := bucketSubresources, key != ""
	if isObject {
		table = objectSubresources
	}
	if sub, ok := findSubresource(table, q); ok {
		if op := sub.operation(r.Method); op != "" {
			return op
		}
		return unknownOperation
	}
	if isObject {
		return objectOperation(r.Method, q, r.Header.Get("X-Amz-Copy-Source") != "")
	}
	return bucketOperation(r.Method, q)
}

func bucketOperation(method string, q url.Values) string {
	switch method {
	case http.MethodGet:
		switch {
		case q.Has("versions"):
			return "ListObjectVersions"
		case q.Has("uploads"):
			return "ListMultipartUploads"
		case q.Get("list-type") == "2":
			return "ListObjectsV2"
		default:
			return "ListObjects"
		}
	case http.MethodPut:
		return "CreateBucket"
	case http.MethodDelete:
		return "DeleteBucket"
	case http.MethodHead:
		return "HeadBucket"
	case http.MethodPost:
		if q.Has("delete") {
			return "DeleteObjects"
		}
		return "PostObject"
	}
	return unknownOperation
}

func objectOperation(method string, q url.Values, isCopy bool) string {
	multipart := q.Has("uploadId")
	switch method {
	case http.MethodGet:
		if multipart {
			return "ListParts"
		}
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodPut:
		switch {
		case multipart && isCopy:
			return "UploadPartCopy"
		case multipart:
			return "UploadPart"
		case isCopy:
			return "CopyObject"
		default:
			return "PutObject"
		}
	case http.MethodDelete:
		if multipart {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case multipart:
			return "CompleteMultipartUpload"
		}
	}
	return unknownOperation
}
