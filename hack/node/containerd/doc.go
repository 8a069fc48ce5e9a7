// Package containerd exists only so that the wrapper module is a valid Go module; hack/node.sh
// builds the component's binaries from this directory.
package containerd
