// Module csisnapshotter pins a node component of the local stack (hack/node.sh builds it).
module github.com/workspace-operator/workspace-operator/hack/node/csisnapshotter

go 1.26.0

require github.com/kubernetes-csi/external-snapshotter/v8 v8.7.0 // indirect
