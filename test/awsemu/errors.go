package awsemu

import "fmt"

// apiError is an AWS error response: the code SDKs map to typed errors, a
// human-readable message, and the HTTP status the service uses for it. Both
// services share it; each renders it in its own wire format.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}
