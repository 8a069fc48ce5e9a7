// Package etcd exists only so that the wrapper module is a valid Go module; the binary is
// built with `go build go.etcd.io/etcd/server/v3` from this directory.
package etcd
