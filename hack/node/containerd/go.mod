// Module containerd pins a node component of the local stack (hack/node.sh builds it).
module github.com/workspace-operator/workspace-operator/hack/node/containerd

go 1.26.6

require github.com/containerd/containerd/v2 v2.4.2 // indirect
