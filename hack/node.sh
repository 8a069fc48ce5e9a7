#!/usr/bin/env bash
# Builds the node of the local stack from source through the Go module proxy and prints the
# directory that holds its binaries: containerd (with ctr and the runc shim), kubelet,
# kube-scheduler, kube-proxy, kube-router (the NetworkPolicy engine), CoreDNS, the CSI
# external-provisioner and external-snapshotter (csi-snapshotter, snapshot-controller).
#
# kind would give us a node, but it needs Docker, which is not on every machine this project
# is built on; the Go module proxy is. Versions are pinned by the wrapper modules in
# hack/node/ and, for the Kubernetes binaries, hack/controlplane/kubernetes; the binaries are
# cached outside the repository, keyed by version, like the control plane. runc, the CNI
# plugins, iptables and ipset come from the distribution (hack/node-packages.sh).
set -euo pipefail

KUBE_VERSION=v1.37.1
CONTAINERD_VERSION=v2.4.2
KUBE_ROUTER_VERSION=v2.1.0
COREDNS_VERSION=v1.15.0
PROVISIONER_VERSION=v6.4.0
SNAPSHOTTER_VERSION=v8.7.0
BINARIES=(containerd ctr containerd-shim-runc-v2 kubelet kube-scheduler kube-proxy kube-router coredns
  csi-provisioner csi-snapshotter snapshot-controller)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

has_all() {
  local dir=$1 bin
  for bin in "${BINARIES[@]}"; do [[ -x "$dir/$bin" ]] || return 1; done
}

cache_root=${WORKSPACE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workspace-operator}
key="kubernetes-$KUBE_VERSION-containerd-$CONTAINERD_VERSION-kube-router-$KUBE_ROUTER_VERSION"
key+="-coredns-$COREDNS_VERSION-provisioner-$PROVISIONER_VERSION-snapshotter-$SNAPSHOTTER_VERSION"
node="$cache_root/node/$key"
if has_all "$node"; then
  echo "$node"
  exit 0
fi

mkdir -p "$cache_root/node"
staging=$(mktemp -d "$cache_root/node/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT

log() { echo "node: $*" >&2; }
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$SECONDS

# version.Version is what each binary reports; without it they say v0.0.0 or "unknown".
build() { # dir ldflags packages...
  local dir=$1 ldflags=$2; shift 2
  (cd "$here/$dir" && go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w $ldflags" -o "$staging/" "$@")
}

log "building containerd $CONTAINERD_VERSION (about 7 minutes on a cold cache)"
build node/containerd "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/ctr \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2

log "building kube-router $KUBE_ROUTER_VERSION"
build node/kuberouter "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router

log "building CoreDNS $COREDNS_VERSION"
build node/coredns "" github.com/coredns/coredns

log "building the CSI external-provisioner $PROVISIONER_VERSION and external-snapshotter $SNAPSHOTTER_VERSION"
build node/csiprovisioner "-X main.version=$PROVISIONER_VERSION" \
  github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner
build node/csisnapshotter "-X main.version=$SNAPSHOTTER_VERSION" \
  github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller \
  github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter

log "building kubelet, kube-scheduler and kube-proxy $KUBE_VERSION (shares most packages with the control plane, built last)"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=$(echo "$KUBE_VERSION" | cut -d. -f1 | tr -d v)"
kube_ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
build controlplane/kubernetes "$kube_ldflags" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy

"$staging/kubelet" --version >&2
# Another build may have finished first; either result is the same pinned version.
mv -T "$staging" "$node" 2>/dev/null || true
trap - EXIT
rm -rf "$staging"
log "built in $((SECONDS - start))s into $node"
echo "$node"
