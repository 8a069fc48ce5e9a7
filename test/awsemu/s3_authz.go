package awsemu

import (
	"net/http"
	"strconv"
	"strings"
)

// s3Actions maps the operations whose IAM action is not "s3:" and the operation name.
var s3Actions = map[string]string{
	"HeadBucket":                      "s3:ListBucket",
	"ListObjects":                     "s3:ListBucket",
	"ListObjectsV2":                   "s3:ListBucket",
	"ListObjectVersions":              "s3:ListBucketVersions",
	"ListMultipartUploads":            "s3:ListBucketMultipartUploads",
	"HeadObject":                      "s3:GetObject",
	"CopyObject":                      "s3:PutObject",
	"CreateMultipartUpload":           "s3:PutObject",
	"UploadPart":                      "s3:PutObject",
	"CompleteMultipartUpload":         "s3:PutObject",
	"DeleteObjects":                   "s3:DeleteObject",
	"GetBucketEncryption":             "s3:GetEncryptionConfiguration",
	"PutBucketEncryption":             "s3:PutEncryptionConfiguration",
	"GetPublicAccessBlock":            "s3:GetBucketPublicAccessBlock",
	"PutPublicAccessBlock":            "s3:PutBucketPublicAccessBlock",
	"GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
	"PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
	"GetBucketReplication":            "s3:GetReplicationConfiguration",
	"PutBucketReplication":            "s3:PutReplicationConfiguration",
}

// rootOnlyExempt are the actions the root user of the bucket's account may always take,
// whatever the bucket policy denies: AWS's way out of a policy that locks everyone out.
var rootOnlyExempt = map[string]bool{"s3:GetBucketPolicy": true, "s3:PutBucketPolicy": true, "s3:DeleteBucketPolicy": true}

// s3ActionOf is the IAM action and resource ARN a request is authorized as.
func s3ActionOf(c *s3Call) (action, resource string) {
	action = s3Actions[c.req.operation]
	if action == "" {
		action = "s3:" + c.req.operation
	}
	versioned := versionFromQuery(c.r) != ""
	switch {
	case versioned && action == "s3:GetObject":
		action = "s3:GetObjectVersion"
	case versioned && action == "s3:DeleteObject" && c.req.operation == "DeleteObject":
		action = "s3:DeleteObjectVersion"
	}
	resource = "arn:aws:s3:::" + c.bucket
	switch {
	case c.key != "":
		resource += "/" + c.key
	case c.req.operation == "DeleteObjects":
		resource += "/*"
	}
	return action, resource
}

// authorize evaluates the bucket policy as S3 does for a request the caller's IAM
// policies allow (the emulator grants every IAM permission): an explicit Deny refuses,
// except the bucket policy actions for the owner account's root user; another account
// needs an explicit Allow.
func (s *s3Service) authorize(c *s3Call, st *bucketState) error {
	action, resource := s3ActionOf(c)
	p := c.req.principal
	context := map[string]string{
		"aws:SecureTransport":  strconv.FormatBool(c.req.secure),
		"aws:PrincipalArn":     p.arn,
		"aws:PrincipalAccount": p.account,
	}
	for _, h := range []string{"X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"} {
		if v := c.r.Header.Get(h); v != "" {
			context["s3:"+strings.ToLower(h)] = v
		}
	}
	s.mu.Lock()
	doc := st.configs["policy"]
	owner := st.account
	s.mu.Unlock()

	decision := noDecision
	if doc != nil {
		if policy, err := parsePolicy(doc); err == nil {
			decision = policy.evaluate(authzRequest{principal: p, action: action, resource: resource, context: context})
		}
	}
	sameAccount := p.account == owner
	switch {
	case decision == denied && sameAccount && p.isRoot() && rootOnlyExempt[action]:
		return nil
	case decision == denied, !sameAccount && decision != allowed:
		return newError(http.StatusForbidden, "AccessDenied", "Access Denied")
	}
	return nil
}
