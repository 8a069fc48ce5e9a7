package awsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"k8s.io/utils/clock"
)

// maxKMSRequestBytes bounds a KMS request body. The largest legitimate
// payloads (4 KiB plaintexts, 32 KiB policies) are far below it.
const maxKMSRequestBytes = 1 << 20

// kmsService emulates AWS KMS over the JSON 1.1 protocol. All state sits
// behind one mutex: operations are cheap and serialising them keeps the key
// state machine simple to reason about.
type kmsService struct {
	clock     clock.PassiveClock
	accountID string

	mu      sync.Mutex
	regions map[string]*kmsRegion
	// caller is the principal of the operation running, under mu.
	caller  principal
	nextSeq int // creation order of keys, for stable listings
}

func newKMSService(clk clock.PassiveClock, accountID string) *kmsService {
	return &kmsService{clock: clk, accountID: accountID, regions: map[string]*kmsRegion{}}
}

// kmsOperation runs one KMS operation with k.mu held and returns the value
// to encode as the JSON response.
type kmsOperation func(k *kmsService, req request, body []byte) (any, error)

// kmsOp adapts a typed operation to kmsOperation: it decodes the request
// into In and serialises access to the KMS state.
func kmsOp[In any](op func(*kmsService, string, *In) (any, error)) kmsOperation {
	return func(k *kmsService, req request, body []byte) (any, error) {
		in := new(In)
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, in); err != nil {
				return nil, newError(http.StatusBadRequest, "SerializationException", "cannot parse request: %v", err)
			}
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.caller = req.principal
		return op(k, req.region, in)
	}
}

// kmsOperations is the set of supported operations, by X-Amz-Target suffix.
var kmsOperations = map[string]kmsOperation{
	"CreateKey":                       kmsOp((*kmsService).createKey),
	"DescribeKey":                     kmsOp((*kmsService).describeKey),
	"ListKeys":                        kmsOp((*kmsService).listKeys),
	"EnableKey":                       kmsOp((*kmsService).enableKey),
	"DisableKey":                      kmsOp((*kmsService).disableKey),
	"ScheduleKeyDeletion":             kmsOp((*kmsService).scheduleKeyDeletion),
	"CancelKeyDeletion":               kmsOp((*kmsService).cancelKeyDeletion),
	"UpdateKeyDescription":            kmsOp((*kmsService).updateKeyDescription),
	"EnableKeyRotation":               kmsOp((*kmsService).enableKeyRotation),
	"DisableKeyRotation":              kmsOp((*kmsService).disableKeyRotation),
	"GetKeyRotationStatus":            kmsOp((*kmsService).getKeyRotationStatus),
	"GetKeyPolicy":                    kmsOp((*kmsService).getKeyPolicy),
	"PutKeyPolicy":                    kmsOp((*kmsService).putKeyPolicy),
	"TagResource":                     kmsOp((*kmsService).tagResource),
	"UntagResource":                   kmsOp((*kmsService).untagResource),
	"ListResourceTags":                kmsOp((*kmsService).listResourceTags),
	"CreateAlias":                     kmsOp((*kmsService).createAlias),
	"UpdateAlias":                     kmsOp((*kmsService).updateAlias),
	"DeleteAlias":                     kmsOp((*kmsService).deleteAlias),
	"ListAliases":                     kmsOp((*kmsService).listAliases),
	"Encrypt":                         kmsOp((*kmsService).encrypt),
	"Decrypt":                         kmsOp((*kmsService).decrypt),
	"GenerateDataKey":                 kmsOp((*kmsService).generateDataKey),
	"GenerateDataKeyWithoutPlaintext": kmsOp((*kmsService).generateDataKeyWithoutPlaintext),
}

func (k *kmsService) serveHTTP(w http.ResponseWriter, r *http.Request, req request) {
	op, ok := kmsOperations[req.operation]
	if !ok {
		writeKMSError(w, newError(http.StatusBadRequest, "UnknownOperationException",
			"operation %q is not supported by the emulator", r.Header.Get("X-Amz-Target")))
		return
	}
	if req.region == "" {
		writeKMSError(w, newError(http.StatusBadRequest, "MissingAuthenticationTokenException",
			"request is not signed with SigV4; the credential scope names the region"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxKMSRequestBytes+1))
	if err != nil {
		writeKMSError(w, newError(http.StatusBadRequest, "SerializationException", "read request body: %v", err))
		return
	}
	if len(body) > maxKMSRequestBytes {
		writeKMSError(w, newError(http.StatusRequestEntityTooLarge, "ValidationException", "request body too large"))
		return
	}
	out, err := op(k, req, body)
	if err != nil {
		writeKMSError(w, err)
		return
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		writeKMSError(w, fmt.Errorf("encode %s response: %w", req.operation, err))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	_, _ = w.Write(encoded)
}

// writeKMSError renders err in the JSON 1.1 error shape. The SDK reads the
// code from __type and maps it to the typed error (types.NotFoundException,
// ...). Errors that are not *apiError are emulator bugs and surface as
// KMSInternalException.
func writeKMSError(w http.ResponseWriter, err error) {
	var apiErr *apiError
	if !errors.As(err, &apiErr) {
		apiErr = newError(http.StatusInternalServerError, "KMSInternalException", "%v", err)
	}
	body, _ := json.Marshal(map[string]string{"__type": apiErr.Code, "message": apiErr.Message})
	noteErrorCode(w, apiErr.Code)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	w.WriteHeader(apiErr.Status)
	_, _ = w.Write(body)
}

// epochSeconds is a timestamp in the JSON protocols' wire format: seconds
// since the Unix epoch as a JSON number, with millisecond precision.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

func epochPtr(t time.Time) *epochSeconds {
	if t.IsZero() {
		return nil
	}
	e := epochSeconds(t)
	return &e
}

// kmsValidationError mimics the wording of AWS's request validation errors.
func kmsValidationError(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "ValidationException", format, args...)
}
