package awsemu

import (
	"fmt"
	"sync"
	"time"
)

// FaultKind selects how an injected fault disturbs a request.
type FaultKind int

const (
	// Throttle answers with the service's throttling error: KMS
	// ThrottlingException (HTTP 400), S3 SlowDown (HTTP 503). SDK retryers
	// treat both as retryable.
	Throttle FaultKind = iota + 1
	// InternalError answers HTTP 500: KMS KMSInternalException, S3
	// InternalError. Retryable.
	InternalError
	// Latency waits Fault.Delay and then serves the request normally.
	Latency
	// DropResponse performs the operation and then closes the connection
	// without answering, like a crash or network partition after the
	// service committed the change (e.g. CreateKey succeeded but the caller
	// never learned the key ID).
	DropResponse
	// AccessDenied answers KMS AccessDeniedException (HTTP 400) or S3
	// AccessDenied (HTTP 403). Not retryable.
	AccessDenied
	// NotYetVisible answers as if the resource did not exist yet, the way an
	// eventually consistent read does right after a write: KMS
	// NotFoundException, S3 NotFound (HEAD) or NoSuchBucket.
	NotYetVisible
)

func (k FaultKind) String() string {
	switch k {
	case Throttle:
		return "Throttle"
	case InternalError:
		return "InternalError"
	case Latency:
		return "Latency"
	case DropResponse:
		return "DropResponse"
	case AccessDenied:
		return "AccessDenied"
	case NotYetVisible:
		return "NotYetVisible"
	default:
		return fmt.Sprintf("FaultKind(%d)", int(k))
	}
}

// Fault describes a disturbance applied to matching requests.
type Fault struct {
	// Service is "kms" or "s3"; empty matches both.
	Service string
	// Operation is the AWS operation name (CreateKey, PutObject,
	// PutBucketEncryption, UploadPart, ...); empty matches any operation.
	Operation string
	Kind      FaultKind
	// Times is how many requests the fault applies to; 0 means until
	// ClearFaults.
	Times int
	// Delay is waited before the fault acts. For Latency it is the whole
	// point; for the other kinds it delays the failure.
	Delay time.Duration
}

func (f Fault) validate() error {
	switch f.Service {
	case "", serviceKMS, serviceS3:
	default:
		return fmt.Errorf("unknown service %q, want %q, %q or empty", f.Service, serviceKMS, serviceS3)
	}
	if f.Kind < Throttle || f.Kind > NotYetVisible {
		return fmt.Errorf("unknown fault kind %v", f.Kind)
	}
	if f.Times < 0 || f.Delay < 0 {
		return fmt.Errorf("negative Times (%d) or Delay (%v)", f.Times, f.Delay)
	}
	return nil
}

func (f Fault) matches(service, operation string) bool {
	return (f.Service == "" || f.Service == service) && (f.Operation == "" || f.Operation == operation)
}

// activeFault is an injected fault with its remaining budget.
type activeFault struct {
	Fault
	remaining int // meaningful only when Times > 0
}

// faultSet holds injected faults in injection order.
type faultSet struct {
	mu     sync.Mutex
	faults []*activeFault
}

// Inject adds a fault. Faults are consulted in injection order: every
// matching Latency fault contributes its delay, and the first matching fault
// of any other kind is applied. Only the faults that took effect use up one
// of their Times. Inject panics on a malformed fault (unknown service or
// kind), which is always a bug in the calling test.
func (fs *faultSet) Inject(f Fault) {
	if err := f.validate(); err != nil {
		panic("awsemu: invalid fault: " + err.Error())
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = append(fs.faults, &activeFault{Fault: f, remaining: f.Times})
}

// ClearFaults removes all injected faults.
func (fs *faultSet) ClearFaults() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = nil
}

// take consumes the faults that apply to one request and returns the total
// delay to impose and the fault that decides the outcome (nil when the
// request should be served normally after the delay).
func (fs *faultSet) take(service, operation string) (time.Duration, *Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var (
		delay    time.Duration
		decisive *Fault
		kept     = fs.faults[:0]
	)
	for _, f := range fs.faults {
		applies := f.matches(service, operation) && (f.Kind == Latency || decisive == nil)
		if applies {
			delay += f.Delay
			if f.Kind != Latency {
				decisive = &f.Fault
			}
			if f.Times > 0 {
				f.remaining--
			}
		}
		if f.Times == 0 || f.remaining > 0 {
			kept = append(kept, f)
		}
	}
	clear(fs.faults[len(kept):])
	fs.faults = kept
	return delay, decisive
}
