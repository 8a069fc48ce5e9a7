package awsemu

import (
	"bytes"
	"maps"
	"net/http"
)

// responseBuffer is an http.ResponseWriter that keeps the response in memory.
// The S3 front layer serves gofakes3 into one so it can inspect and amend the
// answer before the client sees it; DropResponse serves into one and throws
// it away.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newResponseBuffer() *responseBuffer {
	return &responseBuffer{header: http.Header{}}
}

func (b *responseBuffer) Header() http.Header { return b.header }

func (b *responseBuffer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *responseBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *responseBuffer) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// copyTo replays the buffered response.
func (b *responseBuffer) copyTo(w http.ResponseWriter) {
	maps.Copy(w.Header(), b.header)
	w.WriteHeader(b.statusCode())
	_, _ = w.Write(b.body.Bytes())
}
