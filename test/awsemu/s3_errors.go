package awsemu

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// s3ErrorDocument is S3's XML error shape, which the SDK parses into the
// error code it maps to typed errors (types.NoSuchBucket, ...).
type s3ErrorDocument struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
}

func newRequestID() string {
	return strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", "")[:16])
}

// writeS3Error renders err as an S3 error response. HEAD responses carry no
// body; the SDK then derives the code from the status (404 → NotFound), as
// it does against S3. Errors that are not *apiError are emulator bugs and
// surface as InternalError.
func writeS3Error(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *apiError
	if !errors.As(err, &apiErr) {
		apiErr = newError(http.StatusInternalServerError, "InternalError", "%v", err)
	}
	noteErrorCode(w, apiErr.Code)
	requestID := newRequestID()
	w.Header().Set("X-Amz-Request-Id", requestID)
	if r.Method == http.MethodHead {
		w.WriteHeader(apiErr.Status)
		return
	}
	body, _ := xml.Marshal(s3ErrorDocument{Code: apiErr.Code, Message: apiErr.Message, RequestID: requestID})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(apiErr.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// errorCodeOf extracts the code from an S3 XML error body, or "" when the
// body is not one.
func errorCodeOf(body []byte) string {
	var doc s3ErrorDocument
	if xml.Unmarshal(body, &doc) != nil {
		return ""
	}
	return doc.Code
}

func errNoSuchBucket() error {
	return newError(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
}

func errMalformedXML(err error) error {
	return newError(http.StatusBadRequest, "MalformedXML",
		"The XML you provided was not well-formed or did not validate against our published schema: %v", err)
}

func errInvalidArgument(format string, args ...any) error {
	return newError(http.StatusBadRequest, "InvalidArgument", format, args...)
}

func errInvalidRequest(format string, args ...any) error {
	return newError(http.StatusBadRequest, "InvalidRequest", format, args...)
}

func errNotImplemented(operation string) error {
	return newError(http.StatusNotImplemented, "NotImplemented",
		"%s is not implemented by the emulator", operation)
}
