package awsemu

import (
	"net/http"
	"strings"
	"sync"
)

// Outcomes recorded for calls that did not end in an AWS error code.
const (
	// OutcomeOK is a successful (2xx/3xx) response.
	OutcomeOK = "OK"
	// OutcomeDropped is a request served under DropResponse: the operation
	// ran but the client got no answer.
	OutcomeDropped = "Dropped"
	// OutcomeCanceled is a request whose client went away while it was held
	// by a Latency fault; it was never served.
	OutcomeCanceled = "Canceled"
)

// Call identifies a class of requests in the call accounting.
type Call struct {
	Service   string // "kms" or "s3"
	Operation string // AWS operation name, e.g. CreateKey or PutObject
	// Outcome is OutcomeOK, OutcomeDropped, OutcomeCanceled, or the AWS
	// error code the request was answered with (e.g. ThrottlingException,
	// NoSuchBucket).
	Outcome string
}

// CallCounts is a snapshot of how many requests the emulator received, by
// service, operation and outcome.
type CallCounts map[Call]int

// Count sums the requests for service and operation over all outcomes. An
// empty operation counts every operation of the service.
func (c CallCounts) Count(service, operation string) int {
	n := 0
	for call, count := range c {
		if call.Service == service && (operation == "" || call.Operation == operation) {
			n += count
		}
	}
	return n
}

// callLog accumulates CallCounts.
type callLog struct {
	mu     sync.Mutex
	counts CallCounts
}

func (l *callLog) add(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = CallCounts{}
	}
	l.counts[c]++
}

// Calls returns a snapshot of the call accounting.
func (l *callLog) Calls() CallCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(CallCounts, len(l.counts))
	for c, n := range l.counts {
		out[c] = n
	}
	return out
}

// ResetCalls zeroes the call accounting.
func (l *callLog) ResetCalls() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts = nil
}

// outcomeWriter wraps the client's ResponseWriter to learn how a request
// ended. Error writers report the AWS error code through noteErrorCode
// because HEAD error responses carry no body to parse it from.
type outcomeWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (w *outcomeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *outcomeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *outcomeWriter) setErrorCode(code string) { w.code = code }

func (w *outcomeWriter) outcome() string {
	switch {
	case w.code != "":
		return w.code
	case w.status < http.StatusBadRequest && w.status != http.StatusMovedPermanently:
		return OutcomeOK
	default:
		return strings.ReplaceAll(http.StatusText(w.status), " ", "")
	}
}

// noteErrorCode records the AWS error code of a response on writers that
// track outcomes; it is a no-op on any other writer.
func noteErrorCode(w http.ResponseWriter, code string) {
	if ow, ok := w.(interface{ setErrorCode(string) }); ok {
		ow.setErrorCode(code)
	}
}
