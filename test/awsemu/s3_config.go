package awsemu

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// bucketConfigKind describes a bucket sub-resource that gofakes3 lacks and
// the front layer stores itself. Documents are validated on PUT and kept
// verbatim: the SDK's PUT body has the same root element and shape as the
// GET response it expects, so returning it unchanged is exact.
type bucketConfigKind struct {
	missingCode, missingMessage string // GET on a bucket without the document
	putStatus                   int
	contentType                 string
	validate                    func(s *s3Service, bucket string, body []byte) error
}

// bucketConfigKinds is keyed by sub-resource query key.
var bucketConfigKinds = map[string]bucketConfigKind{
	"encryption": {
		missingCode: "ServerSideEncryptionConfigurationNotFoundError", missingMessage: "The server side encryption configuration was not found",
		putStatus: http.StatusOK, contentType: "application/xml", validate: validateEncryption,
	},
	"publicAccessBlock": {
		missingCode: "NoSuchPublicAccessBlockConfiguration", missingMessage: "The public access block configuration was not found",
		putStatus: http.StatusOK, contentType: "application/xml", validate: validatePublicAccessBlock,
	},
	"policy": {
		missingCode: "NoSuchBucketPolicy", missingMessage: "The bucket policy does not exist",
		putStatus: http.StatusNoContent, contentType: "application/json", validate: validateBucketPolicy,
	},
	"ownershipControls": {
		missingCode: "OwnershipControlsNotFoundError", missingMessage: "The bucket ownership controls were not found",
		putStatus: http.StatusOK, contentType: "application/xml", validate: validateOwnershipControls,
	},
	"lifecycle": {
		missingCode: "NoSuchLifecycleConfiguration", missingMessage: "The lifecycle configuration does not exist",
		putStatus: http.StatusOK, contentType: "application/xml", validate: validateLifecycle,
	},
	"replication": {
		missingCode: "ReplicationConfigurationNotFoundError", missingMessage: "The replication configuration was not found",
		putStatus: http.StatusOK, contentType: "application/xml", validate: validateReplication,
	},
	"tagging": {
		missingCode: "NoSuchTagSet", missingMessage: "The TagSet does not exist",
		putStatus: http.StatusNoContent, contentType: "application/xml", validate: validateBucketTagging,
	},
}

// serveConfig implements Get/Put/Delete of a stored bucket sub-resource.
func (s *s3Service) serveConfig(c *s3Call, st *bucketState, query string, kind bucketConfigKind) error {
	switch c.r.Method {
	case http.MethodGet:
		s.mu.Lock()
		doc, ok := st.configs[query]
		s.mu.Unlock()
		if !ok {
			return newError(http.StatusNotFound, kind.missingCode, "%s", kind.missingMessage)
		}
		c.w.Header().Set("Content-Type", kind.contentType)
		_, _ = c.w.Write(doc)
	case http.MethodPut:
		if len(c.body) == 0 {
			return newError(http.StatusBadRequest, "MissingRequestBodyError", "Request Body is empty")
		}
		if err := kind.validate(s, c.bucket, c.body); err != nil {
			return err
		}
		s.mu.Lock()
		st.configs[query] = slices.Clone(c.body)
		s.mu.Unlock()
		c.w.WriteHeader(kind.putStatus)
	case http.MethodDelete:
		s.mu.Lock()
		delete(st.configs, query)
		s.mu.Unlock()
		c.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func decodeXML(body []byte, into any) error {
	if err := xml.Unmarshal(body, into); err != nil {
		return errMalformedXML(err)
	}
	return nil
}

type encryptionConfiguration struct {
	XMLName xml.Name `xml:"ServerSideEncryptionConfiguration"`
	Rules   []struct {
		Default *struct {
			SSEAlgorithm   string `xml:"SSEAlgorithm"`
			KMSMasterKeyID string `xml:"KMSMasterKeyID"`
		} `xml:"ApplyServerSideEncryptionByDefault"`
		BucketKeyEnabled bool `xml:"BucketKeyEnabled"`
	} `xml:"Rule"`
}

func parseEncryption(body []byte) (encryptionConfiguration, error) {
	var cfg encryptionConfiguration
	return cfg, decodeXML(body, &cfg)
}

func validateEncryption(_ *s3Service, _ string, body []byte) error {
	cfg, err := parseEncryption(body)
	if err != nil {
		return err
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0].Default == nil {
		return errMalformedXML(errors.New("exactly one Rule with ApplyServerSideEncryptionByDefault is required"))
	}
	def := cfg.Rules[0].Default
	switch def.SSEAlgorithm {
	case sseAES256:
		if def.KMSMasterKeyID != "" {
			return errInvalidArgument("a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse")
		}
	case sseKMS, sseKMSDSSE:
	default:
		return errMalformedXML(errors.New("unsupported SSEAlgorithm " + def.SSEAlgorithm))
	}
	return nil
}

// defaultSSE is the bucket's default encryption, unresolved.
func (s *s3Service) defaultSSE(st *bucketState) sseSettings {
	s.mu.Lock()
	doc, ok := st.configs["encryption"]
	s.mu.Unlock()
	if !ok {
		return sseSettings{}
	}
	// Stored documents passed validateEncryption, so they parse and have
	// exactly one rule with a default.
	cfg, _ := parseEncryption(doc)
	rule := cfg.Rules[0]
	return sseSettings{algorithm: rule.Default.SSEAlgorithm, keyID: rule.Default.KMSMasterKeyID, bucketKey: rule.BucketKeyEnabled}
}

func validatePublicAccessBlock(_ *s3Service, _ string, body []byte) error {
	var cfg struct {
		XMLName               xml.Name `xml:"PublicAccessBlockConfiguration"`
		BlockPublicAcls       bool     `xml:"BlockPublicAcls"`
		IgnorePublicAcls      bool     `xml:"IgnorePublicAcls"`
		BlockPublicPolicy     bool     `xml:"BlockPublicPolicy"`
		RestrictPublicBuckets bool     `xml:"RestrictPublicBuckets"`
	}
	return decodeXML(body, &cfg)
}

func validateBucketPolicy(_ *s3Service, _ string, body []byte) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return newError(http.StatusBadRequest, "MalformedPolicy", "Policies must be valid JSON and the first byte must be '{'")
	}
	if _, ok := doc["Statement"]; !ok {
		return newError(http.StatusBadRequest, "MalformedPolicy", "Missing required field Statement")
	}
	return nil
}

func validateOwnershipControls(_ *s3Service, _ string, body []byte) error {
	var cfg struct {
		XMLName xml.Name `xml:"OwnershipControls"`
		Rules   []struct {
			ObjectOwnership string `xml:"ObjectOwnership"`
		} `xml:"Rule"`
	}
	if err := decodeXML(body, &cfg); err != nil {
		return err
	}
	if len(cfg.Rules) != 1 || !validObjectOwnership(cfg.Rules[0].ObjectOwnership) {
		return errMalformedXML(errors.New("exactly one Rule with ObjectOwnership BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter is required"))
	}
	return nil
}

func validObjectOwnership(v string) bool {
	return v == "BucketOwnerEnforced" || v == "BucketOwnerPreferred" || v == "ObjectWriter"
}

func ownershipControlsDocument(ownership string) []byte {
	return []byte(`<OwnershipControls xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ObjectOwnership>` +
		ownership + `</ObjectOwnership></Rule></OwnershipControls>`)
}

// presence detects whether an optional XML element was sent.
type presence struct {
	XMLName xml.Name
}

func validateLifecycle(_ *s3Service, _ string, body []byte) error {
	var cfg struct {
		XMLName xml.Name `xml:"LifecycleConfiguration"`
		Rules   []struct {
			ID         string `xml:"ID"`
			Status     string `xml:"Status"`
			Expiration *struct {
				Days *int `xml:"Days"`
			} `xml:"Expiration"`
			Transitions                    []presence `xml:"Transition"`
			NoncurrentVersionExpiration    *presence  `xml:"NoncurrentVersionExpiration"`
			NoncurrentVersionTransitions   []presence `xml:"NoncurrentVersionTransition"`
			AbortIncompleteMultipartUpload *presence  `xml:"AbortIncompleteMultipartUpload"`
		} `xml:"Rule"`
	}
	if err := decodeXML(body, &cfg); err != nil {
		return err
	}
	if len(cfg.Rules) == 0 || len(cfg.Rules) > 1000 {
		return errMalformedXML(errors.New("a lifecycle configuration has 1 to 1000 rules"))
	}
	ids := map[string]bool{}
	for _, rule := range cfg.Rules {
		if rule.Status != "Enabled" && rule.Status != "Disabled" {
			return errMalformedXML(errors.New("rule Status must be Enabled or Disabled"))
		}
		if len(rule.ID) > 255 {
			return errInvalidArgument("ID length should not exceed allowed limit of 255")
		}
		if rule.ID != "" {
			if ids[rule.ID] {
				return errInvalidArgument("Rule ID must be unique. Found same ID for more than one rule")
			}
			ids[rule.ID] = true
		}
		if rule.Expiration == nil && len(rule.Transitions) == 0 && rule.NoncurrentVersionExpiration == nil &&
			len(rule.NoncurrentVersionTransitions) == 0 && rule.AbortIncompleteMultipartUpload == nil {
			return errInvalidRequest("At least one action needs to be specified in a rule")
		}
		if rule.Expiration != nil && rule.Expiration.Days != nil && *rule.Expiration.Days <= 0 {
			return errInvalidArgument("'Days' for Expiration action must be a positive integer")
		}
	}
	return nil
}

// validateReplication enforces what S3 checks before accepting replication:
// versioning enabled on the source and on every destination bucket, which
// must exist.
func validateReplication(s *s3Service, bucket string, body []byte) error {
	var cfg struct {
		XMLName xml.Name `xml:"ReplicationConfiguration"`
		Role    string   `xml:"Role"`
		Rules   []struct {
			Status      string `xml:"Status"`
			Destination struct {
				Bucket string `xml:"Bucket"`
			} `xml:"Destination"`
		} `xml:"Rule"`
	}
	if err := decodeXML(body, &cfg); err != nil {
		return err
	}
	if cfg.Role == "" || len(cfg.Rules) == 0 {
		return errMalformedXML(errors.New("a Role and at least one Rule are required"))
	}
	if !s.versioningEnabled(bucket) {
		return errInvalidRequest("Versioning must be 'Enabled' on the bucket to apply a replication configuration")
	}
	for _, rule := range cfg.Rules {
		if rule.Status != "Enabled" && rule.Status != "Disabled" {
			return errMalformedXML(errors.New("rule Status must be Enabled or Disabled"))
		}
		dest, ok := strings.CutPrefix(rule.Destination.Bucket, "arn:aws:s3:::")
		if !ok || dest == "" {
			return errInvalidArgument("Invalid destination bucket ARN %q", rule.Destination.Bucket)
		}
		if exists, _ := s.backend.BucketExists(dest); !exists {
			return errInvalidRequest("Destination bucket must exist.")
		}
		if !s.versioningEnabled(dest) {
			return errInvalidRequest("Destination bucket must have versioning enabled.")
		}
	}
	return nil
}

func (s *s3Service) versioningEnabled(bucket string) bool {
	cfg, err := s.backend.VersioningConfiguration(bucket)
	return err == nil && cfg.Status == gofakes3.VersioningEnabled
}

func validateBucketTagging(_ *s3Service, _ string, body []byte) error {
	var cfg struct {
		XMLName xml.Name `xml:"Tagging"`
		Tags    []struct {
			Key   string `xml:"Key"`
			Value string `xml:"Value"`
		} `xml:"TagSet>Tag"`
	}
	if err := decodeXML(body, &cfg); err != nil {
		return err
	}
	if len(cfg.Tags) > 50 {
		return newError(http.StatusBadRequest, "InvalidTag", "Bucket tag count cannot be greater than 50")
	}
	seen := map[string]bool{}
	for _, t := range cfg.Tags {
		switch {
		case t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256:
			return newError(http.StatusBadRequest, "InvalidTag", "The TagKey you have provided is invalid")
		case strings.HasPrefix(t.Key, "aws:"):
			return newError(http.StatusBadRequest, "InvalidTag", "System tags cannot be added/updated by requester")
		case seen[t.Key]:
			return newError(http.StatusBadRequest, "InvalidTag", "Cannot provide multiple Tags with the same key")
		}
		seen[t.Key] = true
	}
	return nil
}
