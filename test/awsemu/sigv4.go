package awsemu

import (
	"net/http"
	"strings"
)

// credentialScope is the part of a SigV4 credential that says where a request
// is addressed. The emulator never verifies signatures (it has no secrets); it
// only reads the scope so that one listener can serve several regions.
type credentialScope struct {
	Region  string
	Service string
}

// parseCredentialScope extracts the scope from the Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, ...")
// or, for presigned URLs, from the X-Amz-Credential query parameter. It
// reports false for anonymous and SigV4a requests, which carry no region.
func parseCredentialScope(r *http.Request) (credentialScope, bool) {
	credential := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		_, rest, ok := strings.Cut(auth, "Credential=")
		if !ok {
			return credentialScope{}, false
		}
		credential, _, _ = strings.Cut(rest, ",")
	}
	parts := strings.Split(strings.TrimSpace(credential), "/")
	if len(parts) != 5 || parts[2] == "" || parts[4] != "aws4_request" {
		return credentialScope{}, false
	}
	return credentialScope{Region: parts[2], Service: parts[3]}, true
}
