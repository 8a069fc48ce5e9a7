package awsemu

import (
	"encoding/xml"
	"net/http"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
	"k8s.io/utils/clock"
)

// s3Service is the S3 front layer. The S3 protocol for objects, listing,
// versioning and multipart uploads is gofakes3's, over memBackend; this
// layer routes what gofakes3 lacks, normalises request bodies and metadata
// on the way in, and amends responses on the way out.
type s3Service struct {
	accountID string
	kms       *kmsService
	backend   *memBackend
	fake      http.Handler

	mu      sync.Mutex
	buckets map[string]*bucketState
	// uploads remembers the encryption of in-progress multipart uploads,
	// which S3 echoes on UploadPart and CompleteMultipartUpload but gofakes3
	// does not expose.
	uploads map[string]sseSettings
}

func newS3Service(clk clock.PassiveClock, accountID string, kmsSvc *kmsService) *s3Service {
	backend := newMemBackend(clk)
	fake := gofakes3.New(backend,
		gofakes3.WithTimeSource(clk),
		// The injected clock may be far from the client's: never reject
		// requests as skewed.
		gofakes3.WithTimeSkewLimit(0),
	)
	return &s3Service{
		accountID: accountID,
		kms:       kmsSvc,
		backend:   backend,
		fake:      fake.Server(),
		buckets:   map[string]*bucketState{},
		uploads:   map[string]sseSettings{},
	}
}

// s3Call is one S3 request with its decoded payload.
type s3Call struct {
	w           http.ResponseWriter
	r           *http.Request
	req         request
	bucket, key string
	body        []byte
	checksum    *checksum // verified flexible checksum of body, if sent
}

func (s *s3Service) serveHTTP(w http.ResponseWriter, r *http.Request, req request) {
	body, sum, err := readS3Body(r)
	if err != nil {
		writeS3Error(w, r, err)
		return
	}
	replaceBody(r, body)
	nameNullVersion(r)
	c := &s3Call{w: w, r: r, req: req, body: body, checksum: sum}
	c.bucket, c.key = splitS3Path(r.URL.Path)
	w.Header().Set("X-Amz-Request-Id", newRequestID())
	if c.bucket != "" {
		s.expireObjects(c.bucket)
	}
	if err := s.route(c); err != nil {
		writeS3Error(w, r, err)
	}
}

func (s *s3Service) route(c *s3Call) error {
	switch c.req.operation {
	case unknownOperation:
		return newError(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	case "ListBuckets":
		return s.listBuckets(c)
	case "CreateBucket":
		return s.createBucket(c)
	case "GetBucketLocation":
		return s.getBucketLocation(c)
	}
	st, err := s.bucket(c)
	if err != nil {
		return err
	}
	if err := s.authorize(c, st); err != nil {
		return err
	}
	q := c.r.URL.Query()
	if c.key == "" {
		if sub, ok := findSubresource(bucketSubresources, q); ok {
			if kind, ok := bucketConfigKinds[sub.query]; ok {
				return s.serveConfig(c, st, sub.query, kind)
			}
			if sub.query != "versioning" {
				return errNotImplemented(c.req.operation)
			}
		}
	} else if _, ok := findSubresource(objectSubresources, q); ok {
		return errNotImplemented(c.req.operation)
	}
	switch c.req.operation {
	case "HeadBucket":
		return s.headBucket(c, st)
	case "DeleteBucket":
		return s.deleteBucket(c)
	case "PutObject", "CopyObject", "CreateMultipartUpload":
		return s.writeObject(c, st)
	case "GetObject", "HeadObject":
		return s.readObject(c, st)
	case "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload":
		return s.multipartStep(c)
	case "UploadPartCopy":
		return errNotImplemented(c.req.operation)
	}
	s.reply(c, s.forward(c.r))
	return nil
}

// forward serves r with gofakes3 into a buffer, so the caller can amend the
// response before the client sees it.
func (s *s3Service) forward(r *http.Request) *responseBuffer {
	buf := newResponseBuffer()
	s.fake.ServeHTTP(buf, r)
	return buf
}

// reply sends a buffered gofakes3 response, recording its error code.
func (s *s3Service) reply(c *s3Call, buf *responseBuffer) {
	if buf.statusCode() >= http.StatusMultipleChoices {
		if code := errorCodeOf(buf.body.Bytes()); code != "" {
			noteErrorCode(c.w, code)
		}
	}
	buf.copyTo(c.w)
}

// writeObject handles PutObject, CopyObject and CreateMultipartUpload: it
// settles the object's encryption, keeps only real metadata headers, and
// echoes the encryption like S3.
func (s *s3Service) writeObject(c *s3Call, st *bucketState) error {
	sse, err := s.objectSSE(c.r.Header, st)
	if err != nil {
		return err
	}
	op := c.req.operation
	keepOnlyMetadataHeaders(c.r.Header)
	sse.storeIn(c.r.Header)
	if c.checksum != nil && op == "PutObject" {
		c.r.Header.Set(c.checksum.header, c.checksum.value)
	}
	buf := s.forward(c.r)
	if buf.statusCode() == http.StatusOK {
		sse.echoIn(buf.header)
		switch {
		case op == "PutObject" && c.checksum != nil:
			buf.header.Set(c.checksum.header, c.checksum.value)
		case op == "CreateMultipartUpload":
			var result struct {
				UploadID string `xml:"UploadId"`
			}
			if xml.Unmarshal(buf.body.Bytes(), &result) == nil && result.UploadID != "" {
				s.mu.Lock()
				s.uploads[result.UploadID] = sse
				s.mu.Unlock()
			}
		}
	}
	s.reply(c, buf)
	return nil
}

// objectMetadata returns the stored metadata of an object (or of one of its
// versions), and false if there is no such object.
func (s *s3Service) objectMetadata(bucket, key, versionID string) (map[string]string, bool) {
	var (
		obj *gofakes3.Object
		err error
	)
	if versionID != "" {
		obj, err = s.backend.HeadObjectVersion(bucket, key, gofakes3.VersionID(versionID))
	} else {
		obj, err = s.backend.HeadObject(bucket, key)
	}
	if err != nil {
		return nil, false
	}
	return obj.Metadata, true
}

// keepOnlyMetadataHeaders drops the x-amz-* request headers that are protocol
// (dates, checksums, SDK hints) rather than object metadata, because gofakes3
// stores every x-amz-* header on the object and echoes it on GET.
func keepOnlyMetadataHeaders(h http.Header) {
	for name := range h {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-") {
			continue
		}
		switch {
		case strings.HasPrefix(lower, "x-amz-meta-"),
			strings.HasPrefix(lower, "x-amz-server-side-encryption"),
			strings.HasPrefix(lower, "x-amz-copy-source"),
			lower == "x-amz-storage-class",
			lower == "x-amz-website-redirect-location",
			lower == "x-amz-metadata-directive":
		default:
			delete(h, name)
		}
	}
}

// versionFromQuery returns the versionId a request addresses.
func versionFromQuery(r *http.Request) string {
	return r.URL.Query().Get("versionId")
}

// nameNullVersion rewrites versionId=null, which gofakes3 reads as "no
// version" (so GET would return the current version and DELETE would stack
// a delete marker), to an alias that gofakes3 passes through to memBackend
// as a version ID.
func nameNullVersion(r *http.Request) {
	q := r.URL.Query()
	if q.Get("versionId") == "null" {
		q.Set("versionId", nullVersionAlias)
		r.URL.RawQuery = q.Encode()
	}
}

// readObject handles GetObject and HeadObject.
func (s *s3Service) readObject(c *s3Call, st *bucketState) error {
	if c.req.operation == "GetObject" {
		if err := s.checkReadable(c, st); err != nil {
			return err
		}
	}
	r := c.r
	head := r.Method == http.MethodHead
	if head && versionFromQuery(r) != "" {
		// gofakes3 answers HEAD with the latest version whatever versionId
		// says; a GET of the version, minus the body, is exact.
		r = r.Clone(r.Context())
		r.Method = http.MethodGet
	}
	buf := s.forward(r)
	if head {
		buf.body.Reset()
	}
	// S3 returns the stored checksum only when asked (x-amz-checksum-mode:
	// ENABLED) and only for whole objects; the SDK then validates the body
	// against it.
	wantChecksum := strings.EqualFold(c.r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") && c.r.Header.Get("Range") == ""
	hasChecksum := false
	for name := range buf.header {
		if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") {
			hasChecksum = true
			if !wantChecksum {
				delete(buf.header, name)
			}
		}
	}
	if hasChecksum && wantChecksum {
		buf.header.Set("X-Amz-Checksum-Type", "FULL_OBJECT")
	}
	s.reply(c, buf)
	return nil
}

// multipartStep handles UploadPart, CompleteMultipartUpload and
// AbortMultipartUpload, echoing the upload's encryption and the part
// checksum as S3 does.
func (s *s3Service) multipartStep(c *s3Call) error {
	uploadID := c.r.URL.Query().Get("uploadId")
	op := c.req.operation
	buf := s.forward(c.r)
	if status := buf.statusCode(); status < http.StatusMultipleChoices {
		s.mu.Lock()
		sse := s.uploads[uploadID]
		if op != "UploadPart" {
			delete(s.uploads, uploadID)
		}
		s.mu.Unlock()
		if op != "AbortMultipartUpload" {
			sse.echoIn(buf.header)
		}
		if op == "UploadPart" && c.checksum != nil {
			buf.header.Set(c.checksum.header, c.checksum.value)
		}
	}
	s.reply(c, buf)
	return nil
}
