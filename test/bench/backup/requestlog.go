package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// slowRequest is how long a request may take before the request log
// records it: a 16 MiB part takes well under a second on the loopback.
const slowRequest = 5 * time.Second

// requestLog counts the requests through the gateway, and writes the
// failed and the slow ones to a file: SDK retries are silent, and they
// are what turns a six-second backup into a two-minute one.
type requestLog struct {
	mu       sync.Mutex
	out      io.Writer
	requests atomic.Int64
	failed   atomic.Int64
}

type requestCounts struct {
	Requests int64 `json:"requests"`
	Failed   int64 `json:"failed_requests"`
}

func (l *requestLog) counts() requestCounts {
	return requestCounts{Requests: l.requests.Load(), Failed: l.failed.Load()}
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.requests.Add(1)
		elapsed := time.Since(started)
		if sw.status >= 400 {
			l.failed.Add(1)
		}
		if sw.status >= 400 || elapsed > slowRequest {
			l.mu.Lock()
			defer l.mu.Unlock()
			fmt.Fprintf(l.out, "%s %s %s %s status=%d duration=%s content-length=%d\n",
				started.UTC().Format(time.RFC3339Nano), r.Method, r.URL.Path, r.URL.RawQuery, sw.status, elapsed.Round(time.Millisecond), r.ContentLength)
		}
	})
}

// statusWriter remembers the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController (which the proxy flushes through)
// reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
