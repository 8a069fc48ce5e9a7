package awsemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func crc32Base64(data string) string {
	sum := crc32.NewIEEE()
	sum.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(sum.Sum(nil))
}

func TestDecodeAWSChunked(t *testing.T) {
	sig := strings.Repeat("a", 64)
	tests := []struct {
		name         string
		body         string
		wantPayload  string
		wantTrailers http.Header
		wantErr      bool
	}{
		{
			name:         "signed",
			body:         "5;chunk-signature=" + sig + "\r\nhello\r\n6;chunk-signature=" + sig + "\r\n world\r\n0;chunk-signature=" + sig + "\r\n\r\n",
			wantPayload:  "hello world",
			wantTrailers: http.Header{},
		},
		{
			name:         "unsigned with trailer",
			body:         "3\r\nabc\r\n2\r\nde\r\n0\r\nx-amz-checksum-crc32:" + crc32Base64("abcde") + "\r\n\r\n",
			wantPayload:  "abcde",
			wantTrailers: http.Header{"X-Amz-Checksum-Crc32": {crc32Base64("abcde")}},
		},
		{
			name:        "signed with trailer",
			body:        "a;chunk-signature=" + sig + "\r\n0123456789\r\n0;chunk-signature=" + sig + "\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:" + sig + "\r\n\r\n",
			wantPayload: "0123456789",
			wantTrailers: http.Header{
				"X-Amz-Checksum-Crc32":    {"AAAAAA=="},
				"X-Amz-Trailer-Signature": {sig},
			},
		},
		{name: "missing CRLF", body: "5", wantErr: true},
		{name: "bad size", body: "zz\r\nhello\r\n0\r\n\r\n", wantErr: true},
		{name: "truncated chunk", body: "10\r\nshort\r\n0\r\n\r\n", wantErr: true},
		{name: "chunk without CRLF", body: "5\r\nhelloX0\r\n\r\n", wantErr: true},
		{name: "malformed trailer", body: "0\r\nno-colon\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, trailers, err := decodeAWSChunked([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if string(payload) != tt.wantPayload {
				t.Errorf("payload = %q, want %q", payload, tt.wantPayload)
			}
			if diff := cmp.Diff(tt.wantTrailers, trailers); diff != "" {
				t.Errorf("trailers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadS3Body(t *testing.T) {
	const data = "payload"
	sha := sha256.Sum256([]byte(data))
	chunked := func(checksum string) string {
		return "7\r\n" + data + "\r\n0\r\nx-amz-checksum-crc32:" + checksum + "\r\n\r\n"
	}
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		wantCode string
		wantSum  *checksum
	}{
		{
			name: "aws-chunked with valid trailer",
			body: chunked(crc32Base64(data)),
			headers: map[string]string{
				"Content-Encoding": "aws-chunked", "X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
				"X-Amz-Decoded-Content-Length": strconv.Itoa(len(data)), "X-Amz-Trailer": "x-amz-checksum-crc32",
			},
			wantSum: &checksum{header: "X-Amz-Checksum-Crc32", value: crc32Base64(data)},
		},
		{
			name:     "aws-chunked with wrong trailer",
			body:     chunked("AAAAAA=="),
			headers:  map[string]string{"Content-Encoding": "aws-chunked"},
			wantCode: "BadDigest",
		},
		{
			name:     "decoded length mismatch",
			body:     chunked(crc32Base64(data)),
			headers:  map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "99"},
			wantCode: "IncompleteBody",
		},
		{
			name:     "malformed aws-chunked",
			body:     "garbage",
			headers:  map[string]string{"X-Amz-Content-Sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
			wantCode: "IncompleteBody",
		},
		{
			name:    "signed payload",
			body:    data,
			headers: map[string]string{"X-Amz-Content-Sha256": hex.EncodeToString(sha[:])},
		},
		{
			name:     "signed payload mismatch",
			body:     data + "!",
			headers:  map[string]string{"X-Amz-Content-Sha256": hex.EncodeToString(sha[:])},
			wantCode: "XAmzContentSHA256Mismatch",
		},
		{
			name:     "Content-MD5 mismatch",
			body:     data,
			headers:  map[string]string{"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
			wantCode: "BadDigest",
		},
		{
			name:     "checksum header mismatch",
			body:     data,
			headers:  map[string]string{"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(make([]byte, 32))},
			wantCode: "BadDigest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/bucket/key", strings.NewReader(tt.body))
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			payload, sum, err := readS3Body(r)
			var apiErr *apiError
			switch {
			case tt.wantCode != "":
				if !errors.As(err, &apiErr) || apiErr.Code != tt.wantCode {
					t.Fatalf("error = %v, want %s", err, tt.wantCode)
				}
				return
			case err != nil:
				t.Fatalf("readS3Body: %v", err)
			}
			if string(payload) != data {
				t.Errorf("payload = %q, want %q", payload, data)
			}
			if diff := cmp.Diff(tt.wantSum, sum, cmp.AllowUnexported(checksum{})); diff != "" {
				t.Errorf("checksum (-want +got):\n%s", diff)
			}

			replaceBody(r, payload)
			if r.Header.Get("Content-Encoding") != "" || r.Header.Get("Content-Length") != strconv.Itoa(len(data)) || r.Header.Get("X-Amz-Trailer") != "" {
				t.Errorf("headers after replaceBody: %v", r.Header)
			}
			var rest bytes.Buffer
			_, _ = rest.ReadFrom(r.Body)
			if rest.String() != data {
				t.Errorf("replaced body = %q", rest.String())
			}
		})
	}
}

func TestS3Operation(t *testing.T) {
	tests := []struct {
		method, target string
		copySource     bool
		want           string
	}{
		{"GET", "/", false, "ListBuckets"},
		{"PUT", "/b", false, "CreateBucket"},
		{"HEAD", "/b", false, "HeadBucket"},
		{"DELETE", "/b", false, "DeleteBucket"},
		{"GET", "/b", false, "ListObjects"},
		{"GET", "/b?list-type=2&prefix=x", false, "ListObjectsV2"},
		{"GET", "/b?versions", false, "ListObjectVersions"},
		{"GET", "/b?uploads", false, "ListMultipartUploads"},
		{"GET", "/b?location", false, "GetBucketLocation"},
		{"POST", "/b?delete", false, "DeleteObjects"},
		{"PUT", "/b?encryption", false, "PutBucketEncryption"},
		{"GET", "/b?publicAccessBlock", false, "GetPublicAccessBlock"},
		{"DELETE", "/b?policy", false, "DeleteBucketPolicy"},
		{"GET", "/b?policyStatus", false, "GetBucketPolicyStatus"},
		{"PUT", "/b?ownershipControls", false, "PutBucketOwnershipControls"},
		{"PUT", "/b?lifecycle", false, "PutBucketLifecycleConfiguration"},
		{"DELETE", "/b?lifecycle", false, "DeleteBucketLifecycle"},
		{"GET", "/b?replication", false, "GetBucketReplication"},
		{"PUT", "/b?tagging", false, "PutBucketTagging"},
		{"PUT", "/b?versioning", false, "PutBucketVersioning"},
		{"DELETE", "/b?versioning", false, unknownOperation},
		{"PUT", "/b/k", false, "PutObject"},
		{"PUT", "/b/dir/k?x-id=PutObject", false, "PutObject"},
		{"PUT", "/b/k", true, "CopyObject"},
		{"GET", "/b/k?versionId=3", false, "GetObject"},
		{"HEAD", "/b/k", false, "HeadObject"},
		{"DELETE", "/b/k?versionId=3", false, "DeleteObject"},
		{"POST", "/b/k?uploads", false, "CreateMultipartUpload"},
		{"PUT", "/b/k?partNumber=2&uploadId=u", false, "UploadPart"},
		{"PUT", "/b/k?partNumber=2&uploadId=u", true, "UploadPartCopy"},
		{"POST", "/b/k?uploadId=u", false, "CompleteMultipartUpload"},
		{"DELETE", "/b/k?uploadId=u", false, "AbortMultipartUpload"},
		{"GET", "/b/k?uploadId=u", false, "ListParts"},
		{"PUT", "/b/k?tagging", false, "PutObjectTagging"},
		{"GET", "/b/k?attributes", false, "GetObjectAttributes"},
		{"PATCH", "/b/k", false, unknownOperation},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			if tt.copySource {
				r.Header.Set("X-Amz-Copy-Source", "/src/key")
			}
			if got := s3Operation(r); got != tt.want {
				t.Errorf("s3Operation = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCredentialScope(t *testing.T) {
	tests := []struct {
		name   string
		auth   string
		query  string
		want   credentialScope
		wantOK bool
	}{
		{"header", "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=x", "", credentialScope{Region: "eu-west-1", Service: "kms"}, true},
		{"presigned", "", "X-Amz-Credential=AKID%2F20260101%2Fus-east-2%2Fs3%2Faws4_request", credentialScope{Region: "us-east-2", Service: "s3"}, true},
		{"anonymous", "", "", credentialScope{}, false},
		{"sigv4a", "AWS4-ECDSA-P256-SHA256 Credential=AKID/20260101/s3/aws4_request, SignedHeaders=host, Signature=x", "", credentialScope{}, false},
		{"not sigv4", "Bearer token", "", credentialScope{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/?"+tt.query, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			got, ok := parseCredentialScope(r)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseCredentialScope = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
