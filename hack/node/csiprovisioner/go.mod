// Module csiprovisioner pins a node component of the local stack (hack/node.sh builds it).
module github.com/workspace-operator/workspace-operator/hack/node/csiprovisioner

go 1.26.0

require github.com/kubernetes-csi/external-provisioner/v6 v6.4.0 // indirect
