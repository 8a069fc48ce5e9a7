// Module kuberouter pins a node component of the local stack (hack/node.sh builds it).
module github.com/workspace-operator/workspace-operator/hack/node/kuberouter

go 1.26.0

require github.com/cloudnativelabs/kube-router/v2 v2.1.0 // indirect
