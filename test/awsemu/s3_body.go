package awsemu

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// maxS3BodyBytes caps an S3 request body, which the front layer holds in
// memory in full: it must verify checksums before gofakes3 stores anything.
const maxS3BodyBytes = 1 << 30

// crc64NVME is the reflected CRC-64/NVME polynomial, as hash/crc64 expects.
const crc64NVME = 0x9a6c9329ac4bc9b5

var crc64NVMETable = crc64.MakeTable(crc64NVME)

// checksumAlgorithms are the flexible checksums S3 accepts, keyed by the
// suffix of their x-amz-checksum-* header.
var checksumAlgorithms = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVMETable) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// checksum is a verified flexible checksum of a request payload, kept so it
// can be stored with the object and echoed like S3 does.
type checksum struct {
	header string // canonical header name, e.g. X-Amz-Checksum-Crc32
	value  string // base64 digest
}

// readS3Body reads the request payload, decoding aws-chunked framing, and
// verifies every integrity claim the client made: x-amz-content-sha256,
// Content-MD5 and a flexible checksum sent as header or trailer. Mismatches
// get S3's error codes, so a broken encoder in the client (or in this
// decoder) cannot go unnoticed.
func readS3Body(r *http.Request) ([]byte, *checksum, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxS3BodyBytes+1))
	if err != nil {
		return nil, nil, newError(http.StatusBadRequest, "IncompleteBody", "read request body: %v", err)
	}
	if len(raw) > maxS3BodyBytes {
		return nil, nil, newError(http.StatusBadRequest, "EntityTooLarge", "request body exceeds %d bytes", maxS3BodyBytes)
	}
	payload, trailers := raw, http.Header{}
	contentSHA := r.Header.Get("X-Amz-Content-Sha256")
	if isAWSChunked(r.Header) {
		if payload, trailers, err = decodeAWSChunked(raw); err != nil {
			return nil, nil, newError(http.StatusBadRequest, "IncompleteBody", "malformed aws-chunked body: %v", err)
		}
		if decoded := r.Header.Get("X-Amz-Decoded-Content-Length"); decoded != "" && decoded != strconv.Itoa(len(payload)) {
			return nil, nil, newError(http.StatusBadRequest, "IncompleteBody",
				"x-amz-decoded-content-length is %s but the body decodes to %d bytes", decoded, len(payload))
		}
	} else if len(contentSHA) == sha256.Size*2 {
		sum := sha256.Sum256(payload)
		if !strings.EqualFold(hex.EncodeToString(sum[:]), contentSHA) {
			return nil, nil, newError(http.StatusBadRequest, "XAmzContentSHA256Mismatch",
				"The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}
	if want := r.Header.Get("Content-MD5"); want != "" {
		sum := md5.Sum(payload)
		if want != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, nil, newError(http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		}
	}
	sum, err := verifyChecksum(r.Header, trailers, payload)
	if err != nil {
		return nil, nil, err
	}
	return payload, sum, nil
}

func isAWSChunked(h http.Header) bool {
	if strings.HasPrefix(h.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		return true
	}
	for _, enc := range strings.Split(h.Get("Content-Encoding"), ",") {
		if strings.TrimSpace(enc) == "aws-chunked" {
			return true
		}
	}
	return false
}

// decodeAWSChunked undoes the aws-chunked content encoding:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n[<trailer>:<value>\r\n ...]\r\n
//
// It covers both the signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER])
// and the unsigned (STREAMING-UNSIGNED-PAYLOAD-TRAILER) variants; chunk and
// trailer signatures are skipped since the emulator verifies no signatures.
func decodeAWSChunked(raw []byte) ([]byte, http.Header, error) {
	var payload bytes.Buffer
	rest := raw
	for {
		line, after, ok := bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return nil, nil, errors.New("chunk header without CRLF")
		}
		sizeField, _, _ := bytes.Cut(line, []byte(";"))
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeField)), 16, 31)
		if err != nil {
			return nil, nil, fmt.Errorf("chunk size %q: %w", sizeField, err)
		}
		rest = after
		if size == 0 {
			break
		}
		if uint64(len(rest)) < size+2 || !bytes.Equal(rest[size:size+2], []byte("\r\n")) {
			return nil, nil, fmt.Errorf("chunk of %d bytes is truncated or not CRLF-terminated", size)
		}
		payload.Write(rest[:size])
		rest = rest[size+2:]
	}
	trailers := http.Header{}
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\r\n"))
		rest = after
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, nil, fmt.Errorf("malformed trailer %q", line)
		}
		trailers.Add(textproto.CanonicalMIMEHeaderKey(string(bytes.TrimSpace(name))), string(bytes.TrimSpace(value)))
	}
	return payload.Bytes(), trailers, nil
}

// verifyChecksum checks the x-amz-checksum-<algorithm> value from the
// headers or trailers against payload.
func verifyChecksum(headers, trailers http.Header, payload []byte) (*checksum, error) {
	for _, h := range []http.Header{trailers, headers} {
		for name, values := range h {
			alg, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-checksum-")
			newHash := checksumAlgorithms[alg]
			if !ok || newHash == nil || len(values) == 0 {
				continue
			}
			digest := newHash()
			digest.Write(payload)
			if got := base64.StdEncoding.EncodeToString(digest.Sum(nil)); got != values[0] {
				return nil, newError(http.StatusBadRequest, "BadDigest",
					"The %s you specified did not match the calculated checksum.", strings.ToUpper(alg))
			}
			return &checksum{header: textproto.CanonicalMIMEHeaderKey(name), value: values[0]}, nil
		}
	}
	return nil, nil
}

// replaceBody installs the decoded payload as a plain body with accurate
// length headers and removes the transfer framing headers, so gofakes3 sees
// an ordinary request.
func replaceBody(r *http.Request, payload []byte) {
	r.Body = io.NopCloser(bytes.NewReader(payload))
	r.ContentLength = int64(len(payload))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(payload)))
	for _, h := range []string{"X-Amz-Decoded-Content-Length", "X-Amz-Trailer", "X-Amz-Content-Sha256"} {
		r.Header.Del(h)
	}
	var encodings []string
	for _, enc := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
		if enc = strings.TrimSpace(enc); enc != "" && enc != "aws-chunked" {
			encodings = append(encodings, enc)
		}
	}
	if len(encodings) == 0 {
		r.Header.Del("Content-Encoding")
	} else {
		r.Header.Set("Content-Encoding", strings.Join(encodings, ","))
	}
}
