package awsemu

import (
	"encoding/xml"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
)

const (
	usEast1 = "us-east-1"
	s3Xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"
)

var bucketNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// bucketState is what the front layer knows about a bucket beyond its
// objects: the region it lives in and the sub-resource documents gofakes3
// cannot store. Guarded by s3Service.mu.
type bucketState struct {
	region  string
	account string            // the owner
	configs map[string][]byte // by sub-resource query key
}

// validateBucketName applies S3's general-purpose bucket naming rules.
func validateBucketName(name string) error {
	if !bucketNamePattern.MatchString(name) || strings.Contains(name, "..") || net.ParseIP(name) != nil {
		return newError(http.StatusBadRequest, "InvalidBucketName", "The specified bucket is not valid.")
	}
	return nil
}

type createBucketConfiguration struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// createBucket creates a bucket in the region named by LocationConstraint
// (us-east-1 when absent) and enforces S3's rules: the constraint must match
// the region the request was signed for, us-east-1 is never spelled out, and
// re-creating an owned bucket is BucketAlreadyOwnedByYou except for the
// legacy us-east-1 behaviour of answering 200.
func (s *s3Service) createBucket(c *s3Call) error {
	if err := validateBucketName(c.bucket); err != nil {
		return err
	}
	var cfg createBucketConfiguration
	if len(c.body) > 0 {
		if err := decodeXML(c.body, &cfg); err != nil {
			return err
		}
	}
	region := cfg.LocationConstraint
	switch region {
	case "":
		region = usEast1
	case "EU":
		region = "eu-west-1"
	case usEast1:
		return newError(http.StatusBadRequest, "InvalidLocationConstraint", "The specified location-constraint is not valid")
	}
	if c.req.region != "" && c.req.region != region {
		constraint := cfg.LocationConstraint
		if constraint == "" {
			constraint = "unspecified"
		}
		return newError(http.StatusBadRequest, "IllegalLocationConstraintException",
			"The %s location constraint is incompatible for the region specific endpoint this request was sent to.", constraint)
	}
	ownership := c.r.Header.Get("X-Amz-Object-Ownership")
	if ownership != "" && !validObjectOwnership(ownership) {
		return errInvalidArgument("Invalid x-amz-object-ownership header: %s", ownership)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if existing := s.buckets[c.bucket]; existing != nil {
		if existing.account != c.req.principal.account {
			return newError(http.StatusConflict, "BucketAlreadyExists",
				"The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.")
		}
		if existing.region == usEast1 && region == usEast1 {
			c.w.Header().Set("Location", "/"+c.bucket)
			return nil
		}
		return newError(http.StatusConflict, "BucketAlreadyOwnedByYou",
			"Your previous request to create the named bucket succeeded and you already own it.")
	}
	if err := s.backend.CreateBucket(c.bucket); err != nil {
		return err
	}
	st := &bucketState{region: region, account: c.req.principal.account, configs: map[string][]byte{}}
	if ownership != "" {
		st.configs["ownershipControls"] = ownershipControlsDocument(ownership)
	}
	s.buckets[c.bucket] = st
	c.w.Header().Set("Location", "/"+c.bucket)
	return nil
}

// bucket returns the state of an existing bucket and checks that the
// request was signed for the bucket's region. S3 answers a request for the
// wrong region with 301 PermanentRedirect and the bucket's region in
// x-amz-bucket-region, which is how SDK users discover misconfigured
// clients.
func (s *s3Service) bucket(c *s3Call) (*bucketState, error) {
	s.mu.Lock()
	st := s.buckets[c.bucket]
	s.mu.Unlock()
	if st == nil {
		return nil, errNoSuchBucket()
	}
	if c.req.region != "" && c.req.region != st.region {
		c.w.Header().Set("X-Amz-Bucket-Region", st.region)
		return nil, newError(http.StatusMovedPermanently, "PermanentRedirect",
			"The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.")
	}
	return st, nil
}

// getBucketLocation works from any region, like in S3; us-east-1 is reported
// as an empty constraint.
func (s *s3Service) getBucketLocation(c *s3Call) error {
	s.mu.Lock()
	st := s.buckets[c.bucket]
	s.mu.Unlock()
	if st == nil {
		return errNoSuchBucket()
	}
	if st.account != c.req.principal.account {
		return newError(http.StatusForbidden, "AccessDenied", "Access Denied")
	}
	constraint := st.region
	if constraint == usEast1 {
		constraint = ""
	}
	return writeXML(c.w, struct {
		XMLName            xml.Name `xml:"LocationConstraint"`
		Xmlns              string   `xml:"xmlns,attr"`
		LocationConstraint string   `xml:",chardata"`
	}{Xmlns: s3Xmlns, LocationConstraint: constraint})
}

func (s *s3Service) headBucket(c *s3Call, st *bucketState) error {
	c.w.Header().Set("X-Amz-Bucket-Region", st.region)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// deleteBucket removes an empty bucket and everything the front layer kept
// about it. In a versioned bucket, noncurrent versions and delete markers
// count as content, as in S3.
func (s *s3Service) deleteBucket(c *s3Call) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.backend.DeleteBucket(c.bucket); err != nil {
		if gofakes3.HasErrorCode(err, gofakes3.ErrBucketNotEmpty) {
			return newError(http.StatusConflict, "BucketNotEmpty", "The bucket you tried to delete is not empty")
		}
		return err
	}
	delete(s.buckets, c.bucket)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

type listedBucket struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion"`
}

// listBuckets answers ListBuckets sorted by name, as S3 does (gofakes3 would
// list in map order), honouring the prefix and bucket-region filters.
func (s *s3Service) listBuckets(c *s3Call) error {
	infos, err := s.backend.ListBuckets()
	if err != nil {
		return err
	}
	created := map[string]time.Time{}
	for _, info := range infos {
		created[info.Name] = info.CreationDate.Time
	}
	q := c.r.URL.Query()
	s.mu.Lock()
	var listed []listedBucket
	for _, name := range slices.Sorted(maps.Keys(s.buckets)) {
		region := s.buckets[name].region
		if s.buckets[name].account != c.req.principal.account {
			continue
		}
		if !strings.HasPrefix(name, q.Get("prefix")) || (q.Has("bucket-region") && q.Get("bucket-region") != region) {
			continue
		}
		listed = append(listed, listedBucket{
			Name:         name,
			CreationDate: created[name].UTC().Format(s3TimeFormat),
			BucketRegion: region,
		})
	}
	s.mu.Unlock()
	return writeXML(c.w, struct {
		XMLName xml.Name       `xml:"ListAllMyBucketsResult"`
		Xmlns   string         `xml:"xmlns,attr"`
		OwnerID string         `xml:"Owner>ID"`
		Buckets []listedBucket `xml:"Buckets>Bucket"`
		Prefix  string         `xml:"Prefix,omitempty"`
	}{Xmlns: s3Xmlns, OwnerID: s.accountID, Buckets: listed, Prefix: q.Get("prefix")})
}

// s3TimeFormat is the ISO 8601 form S3 uses in XML documents.
const s3TimeFormat = "2006-01-02T15:04:05.000Z"

func writeXML(w http.ResponseWriter, doc any) error {
	body, err := xml.Marshal(doc)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
	return nil
}

// BucketSnapshot is a copy of a bucket's configuration for test assertions.
type BucketSnapshot struct {
	Name   string
	Region string
	// Versioning is "", "Enabled" or "Suspended".
	Versioning string
	// Configs holds the stored sub-resource documents, verbatim as the
	// client sent them, keyed by sub-resource: encryption,
	// publicAccessBlock, policy, ownershipControls, lifecycle, replication,
	// tagging.
	Configs map[string]string
}

// Buckets returns all buckets sorted by name.
func (h *Handler) Buckets() []BucketSnapshot {
	s := h.s3
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BucketSnapshot, 0, len(s.buckets))
	for _, name := range slices.Sorted(maps.Keys(s.buckets)) {
		st := s.buckets[name]
		snap := BucketSnapshot{Name: name, Region: st.region, Configs: map[string]string{}}
		if cfg, err := s.backend.VersioningConfiguration(name); err == nil {
			snap.Versioning = string(cfg.Status)
		}
		for k, doc := range st.configs {
			snap.Configs[k] = string(doc)
		}
		out = append(out, snap)
	}
	return out
}
