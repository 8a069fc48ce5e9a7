// Package kubernetes exists only so that the wrapper module is a valid Go module; the
// binaries are built with `go build k8s.io/kubernetes/cmd/...` from this directory.
package kubernetes
