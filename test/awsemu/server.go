package awsemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

const (
	serviceKMS = "kms"
	serviceS3  = "s3"

	// DefaultAccountID is the AWS account the emulator pretends to be when
	// Options.AccountID is empty.
	DefaultAccountID = "000000000000"
	// DefaultAddr is where Start listens when Options.Addr is empty: the
	// IPv4 loopback with a kernel-chosen port.
	DefaultAddr = "127.0.0.1:0"

	kmsTargetPrefix = "TrentService."
)

var accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// Options configures the emulator. The zero value is ready to use.
type Options struct {
	// Clock drives key deletion dates, expiry of keys pending deletion,
	// rotation dates and S3 Last-Modified times. Defaults to the real
	// clock; tests pass a k8s.io/utils/clock/testing.FakeClock to fast
	// forward through deletion windows. Latency faults always use real
	// time, since a fake clock would never release them.
	Clock clock.PassiveClock
	// AccountID appears in ARNs and default key policies. Defaults to
	// DefaultAccountID; must be 12 digits.
	AccountID string
	// Addr is the listen address for Start. Only the host 127.0.0.1 is
	// accepted so that the emulator can never be reached from outside the
	// machine. Defaults to DefaultAddr.
	Addr string
	// TLS makes Start serve HTTPS with a freshly generated self-signed
	// certificate, which Server.AWSConfig trusts. Over HTTPS the SDK
	// streams S3 uploads with aws-chunked encoding and trailing checksums,
	// as it does against real AWS, instead of sending checksum headers.
	TLS bool
	// Logger, when set, receives one record per request. Nil is silent.
	Logger *slog.Logger
	// StrictTransport makes plain-HTTP requests count as insecure
	// (aws:SecureTransport false), as AWS counts them. Without it, and without
	// TLS, every request counts as secure: the in-process suites speak plain
	// HTTP where every production client speaks HTTPS.
	StrictTransport bool
}

// Handler is the emulator as an http.Handler, for embedding in a server the
// caller controls. Start wraps it in a loopback listener.
type Handler struct {
	faultSet
	callLog

	logger          *slog.Logger
	kms             *kmsService
	s3              *s3Service
	strictTransport bool
}

var _ http.Handler = (*Handler)(nil)

// NewHandler builds an emulator with empty state.
func NewHandler(opts Options) (*Handler, error) {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	account := opts.AccountID
	if account == "" {
		account = DefaultAccountID
	}
	if !accountIDPattern.MatchString(account) {
		return nil, fmt.Errorf("awsemu: account ID %q is not 12 digits", account)
	}
	kmsSvc := newKMSService(clk, account)
	return &Handler{
		logger:          opts.Logger,
		kms:             kmsSvc,
		s3:              newS3Service(clk, account, kmsSvc),
		strictTransport: opts.StrictTransport,
	}, nil
}

// request is what the emulator needs to know about an incoming call before
// serving it: which service and operation it targets (for faults and call
// accounting) and the region it was signed for.
type request struct {
	service   string
	operation string
	// region is empty for unsigned (anonymous) requests.
	region string
	// principal signed the request; secure is aws:SecureTransport.
	principal principal
	secure    bool
}

// classify tells KMS from S3 by the X-Amz-Target header that every JSON
// protocol request carries, and names the operation.
func classify(r *http.Request) request {
	var req request
	if scope, ok := parseCredentialScope(r); ok {
		req.region = scope.Region
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		req.service = serviceKMS
		// A target for another JSON service keeps its full name, which no
		// KMS operation matches, so it is answered UnknownOperation.
		req.operation = strings.TrimPrefix(target, kmsTargetPrefix)
		return req
	}
	req.service = serviceS3
	req.operation = s3Operation(r)
	return req
}

// ServeHTTP applies injected faults, serves the request, and records it in
// the call accounting.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	req := classify(r)
	req.principal = principalOf(accessKeyID(r), h.kms.accountID)
	req.secure = r.TLS != nil || !h.strictTransport
	ow := &outcomeWriter{ResponseWriter: w}
	outcome := h.serve(ow, r, req)
	h.add(Call{Service: req.service, Operation: req.operation, Outcome: outcome})
	if h.logger != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelInfo, "aws request",
			slog.String("service", req.service),
			slog.String("operation", req.operation),
			slog.String("region", req.region),
			slog.String("outcome", outcome),
			slog.Duration("duration", time.Since(started)))
	}
	if outcome == OutcomeDropped {
		dropConnection(w)
	}
}

func (h *Handler) serve(w *outcomeWriter, r *http.Request, req request) string {
	delay, fault := h.take(req.service, req.operation)
	if delay > 0 {
		// Read the body first: net/http only notices a client hanging up
		// once the body has been consumed, and a held request must end
		// when its client gives up.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxS3BodyBytes+1))
		if err != nil {
			return OutcomeCanceled
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-r.Context().Done():
			return OutcomeCanceled
		case <-timer.C:
		}
	}
	switch {
	case fault == nil:
		h.dispatch(w, r, req)
	case fault.Kind == DropResponse:
		// The operation really happens; only the answer is lost.
		h.dispatch(newResponseBuffer(), r, req)
		return OutcomeDropped
	default:
		err := faultError(req, fault.Kind)
		if req.service == serviceKMS {
			writeKMSError(w, err)
		} else {
			writeS3Error(w, r, err)
		}
	}
	return w.outcome()
}

func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, req request) {
	if req.service == serviceKMS {
		h.kms.serveHTTP(w, r, req)
		return
	}
	h.s3.serveHTTP(w, r, req)
}

// faultError is the error response a fault of the given kind produces, in
// the codes and statuses each service really uses.
func faultError(req request, kind FaultKind) *apiError {
	if req.service == serviceKMS {
		switch kind {
		case Throttle:
			return newError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		case AccessDenied:
			return newError(http.StatusBadRequest, "AccessDeniedException",
				"User is not authorized to perform: kms:%s (injected fault)", req.operation)
		case NotYetVisible:
			return newError(http.StatusBadRequest, "NotFoundException", "Key does not exist (injected fault: not yet visible)")
		default:
			return newError(http.StatusInternalServerError, "KMSInternalException",
				"An internal error occurred (injected fault)")
		}
	}
	switch kind {
	case Throttle:
		return newError(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case AccessDenied:
		return newError(http.StatusForbidden, "AccessDenied", "Access Denied")
	case NotYetVisible:
		return newError(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist (injected fault: not yet visible)")
	default:
		return newError(http.StatusInternalServerError, "InternalError",
			"We encountered an internal error. Please try again.")
	}
}

// dropConnection closes the client's connection without a response. Hijacking
// is the faithful way to do it on HTTP/1.x; where the writer cannot be
// hijacked, aborting the handler is the closest equivalent net/http offers.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// Server is a running emulator listening on the IPv4 loopback.
type Server struct {
	*Handler

	url        string
	httpServer *http.Server
	tls        *selfSignedTLS // nil for plain HTTP
}

// Start builds an emulator and serves it on Options.Addr (by default
// 127.0.0.1 with a random port) until Close.
func Start(opts Options) (*Server, error) {
	h, err := NewHandler(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("awsemu: listen on %s: %w", addr, err)
	}
	s := &Server{
		Handler:    h,
		url:        "http://" + ln.Addr().String(),
		httpServer: &http.Server{Handler: h, ReadHeaderTimeout: time.Minute},
	}
	if opts.TLS {
		if s.tls, err = newSelfSignedTLS(); err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = s.tls.listener(ln)
		s.url = "https://" + strings.TrimPrefix(s.url, "http://")
	}
	go func() {
		if err := s.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && h.logger != nil {
			h.logger.Error("awsemu: serve failed", slog.Any("error", err))
		}
	}()
	return s, nil
}

// checkLoopback rejects listen addresses other than 127.0.0.1 and the addresses of the
// loopback interface: the emulator accepts any credentials, so it must never be reachable
// from the network. The local stack's node address is an alias on lo, which the node's pods
// reach and nothing off this machine does.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("awsemu: listen address %q: %w", addr, err)
	}
	if host == "127.0.0.1" || onLoopbackInterface(net.ParseIP(host)) {
		return nil
	}
	return fmt.Errorf("awsemu: listen address %q: only 127.0.0.1 or an address of the loopback interface is allowed", addr)
}

// onLoopbackInterface reports whether ip is assigned to a loopback interface.
func onLoopbackInterface(ip net.IP) bool {
	if ip == nil {
		return false
	}
	interfaces, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, iface := range interfaces {
		if iface.Flags&net.FlagLoopback == 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// URL is the endpoint to use as the SDK's BaseEndpoint, e.g.
// http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Close stops the listener and closes all connections. State is discarded
// with the Server.
func (s *Server) Close() error {
	if err := s.httpServer.Close(); err != nil {
		return fmt.Errorf("awsemu: close: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests to
// finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.httpServer.Shutdown(ctx); err != nil {
		return fmt.Errorf("awsemu: shutdown: %w", err)
	}
	return nil
}
