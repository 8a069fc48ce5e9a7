package awsemu

import (
	"errors"
	"net/http"
	"strings"
)

// Canonical names of the SSE headers, as gofakes3 stores them in object
// metadata and echoes them on GET and HEAD.
const (
	hdrSSE          = "X-Amz-Server-Side-Encryption"
	hdrSSEKMSKeyID  = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
	hdrSSEContext   = "X-Amz-Server-Side-Encryption-Context"
	hdrSSEBucketKey = "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"

	sseAES256  = "AES256"
	sseKMS     = "aws:kms"
	sseKMSDSSE = "aws:kms:dsse"
)

// sseSettings is how an object is encrypted at rest.
type sseSettings struct {
	algorithm string // "", AES256, aws:kms or aws:kms:dsse
	keyID     string // for aws:kms*: the key ARN once resolved
	context   string
	bucketKey bool
}

func (sse sseSettings) usesKMS() bool {
	return sse.algorithm == sseKMS || sse.algorithm == sseKMSDSSE
}

// objectSSE decides the encryption of an object being written: what the
// request asks for, else the bucket's default encryption. For SSE-KMS it
// resolves the key in the bucket's region (key ID, key ARN, alias name or
// alias ARN) and checks it is usable, failing like S3 does with the KMS
// error code prefixed by "KMS.". The resolved key ARN is what S3 records.
func (s *s3Service) objectSSE(h http.Header, st *bucketState) (sseSettings, error) {
	sse := sseSettings{
		algorithm: h.Get(hdrSSE),
		keyID:     h.Get(hdrSSEKMSKeyID),
		context:   h.Get(hdrSSEContext),
		bucketKey: strings.EqualFold(h.Get(hdrSSEBucketKey), "true"),
	}
	if sse.algorithm == "" {
		if sse.keyID != "" {
			return sse, errInvalidArgument("Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms")
		}
		sse = s.defaultSSE(st)
	}
	switch {
	case sse.algorithm == "":
	case sse.algorithm == sseAES256:
		if sse.keyID != "" {
			return sse, errInvalidArgument("x-amz-server-side-encryption-aws-kms-key-id is only valid with aws:kms encryption")
		}
		sse.bucketKey = false
	case sse.usesKMS():
		// Without a key ID, S3 would use the AWS managed key aws/s3, which
		// the emulator does not model; the object records no key.
		if sse.keyID == "" {
			break
		}
		arn, err := s.kms.usableKeyARN(st.region, sse.keyID)
		if err != nil {
			return sse, kmsErrorForS3(err)
		}
		sse.keyID = arn
	default:
		return sse, errInvalidArgument("The encryption method specified is not supported")
	}
	return sse, nil
}

// storeIn sets the SSE headers gofakes3 records as object metadata. Absent
// settings are written as empty values, which memBackend does not store:
// they stop gofakes3's CopyObject from carrying over the source object's
// encryption, since a copy is encrypted per request or bucket default.
func (sse sseSettings) storeIn(h http.Header) {
	bucketKey := ""
	if sse.bucketKey && sse.usesKMS() {
		bucketKey = "true"
	}
	h[hdrSSE] = []string{sse.algorithm}
	h[hdrSSEKMSKeyID] = []string{sse.keyID}
	h[hdrSSEContext] = []string{sse.context}
	h[hdrSSEBucketKey] = []string{bucketKey}
}

// echoIn adds the SSE response headers S3 returns on writes.
func (sse sseSettings) echoIn(h http.Header) {
	if sse.algorithm == "" {
		return
	}
	h.Set(hdrSSE, sse.algorithm)
	if sse.keyID != "" {
		h.Set(hdrSSEKMSKeyID, sse.keyID)
	}
	if sse.context != "" {
		h.Set(hdrSSEContext, sse.context)
	}
	if sse.bucketKey && sse.usesKMS() {
		h.Set(hdrSSEBucketKey, "true")
	}
}

// checkReadable refuses to serve an SSE-KMS object whose key can no longer
// decrypt (disabled, pending deletion, deleted), as S3 does: that is what
// crypto-shredding relies on. Objects that do not exist are left for gofakes3
// to report.
func (s *s3Service) checkReadable(c *s3Call, st *bucketState) error {
	meta, ok := s.objectMetadata(c.bucket, c.key, versionFromQuery(c.r))
	if !ok || !strings.HasPrefix(meta[hdrSSE], sseKMS) || meta[hdrSSEKMSKeyID] == "" {
		return nil
	}
	if _, err := s.kms.usableKeyARN(st.region, meta[hdrSSEKMSKeyID]); err != nil {
		return kmsErrorForS3(err)
	}
	return nil
}

// kmsErrorForS3 turns a KMS error into the error S3 relays for it: HTTP 400
// with the KMS code prefixed, e.g. KMS.DisabledException.
func kmsErrorForS3(err error) error {
	var apiErr *apiError
	if !errors.As(err, &apiErr) {
		return err
	}
	return newError(http.StatusBadRequest, "KMS."+apiErr.Code, "%s", apiErr.Message)
}
