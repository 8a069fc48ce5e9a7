// Module etcd pins the etcd server used by envtest, the e2e suite and make dev.
module github.com/workspace-operator/workspace-operator/hack/controlplane/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
