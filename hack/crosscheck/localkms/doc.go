// Package localkms exists only so that the wrapper module is a valid Go module;
// the binary is built with `go build github.com/nsmithuk/local-kms` from this
// directory (hack/crosscheck.sh).
package localkms
