package cloud

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// Error is an AWS failure that a retry cannot fix: access denied, an invalid setting, a
// name taken by someone else. Code is the AWS error code, or the operator's own reason.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// IsTerminal reports whether err needs a human (IAM, configuration or a naming conflict)
// before a retry can succeed. Throttling, 5xx and network errors are not terminal: the
// SDK's adaptive retryer has retried them already and the reconcile backs off further.
func IsTerminal(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return true
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	code := apiErr.ErrorCode()
	switch {
	case strings.HasPrefix(code, "AccessDenied"), code == "UnauthorizedOperation", code == "InvalidClientTokenId",
		code == "UnrecognizedClientException", code == "SignatureDoesNotMatch", code == "ExpiredToken",
		code == "MalformedPolicyDocumentException", code == "InvalidLocationConstraint",
		code == "IllegalLocationConstraintException", code == "ValidationException",
		code == "InvalidArnException", code == "LimitExceededException", code == "MalformedPolicy",
		code == "InvalidBucketName", code == "BucketAlreadyExists":
		return true
	}
	return false
}

// ErrorCode is the AWS error code in err, or "" when it carries none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func terminalf(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func hasCode(err error, codes ...string) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, c := range codes {
		if apiErr.ErrorCode() == c {
			return true
		}
	}
	return false
}
