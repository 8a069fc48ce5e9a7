// Package minio exists only so that the wrapper module is a valid Go module;
// the server is built with `go build github.com/minio/minio` from this
// directory (see ../setup.sh).
package minio
