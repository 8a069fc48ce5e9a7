#!/usr/bin/env bash
# Builds the Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kubectl)
# from source through the Go module proxy and prints the directory that holds the binaries,
# ready for KUBEBUILDER_ASSETS.
#
# Prebuilt downloads (setup-envtest, release tarballs) are not reachable everywhere this
# project is built, but the Go module proxy is. The versions are pinned by the wrapper
# modules in hack/controlplane/{kubernetes,etcd}; the binaries are cached outside the
# repository, keyed by version, so a fresh clone reuses them.
#
# When KUBEBUILDER_ASSETS already points at a directory with all four binaries, that
# directory is used as it is.
set -euo pipefail

KUBE_VERSION=v1.37.1
ETCD_VERSION=v3.6.16
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

has_all() {
  local dir=$1 bin
  for bin in "${BINARIES[@]}"; do [[ -x "$dir/$bin" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache_root=${WORKSPACE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workspace-operator}
assets="$cache_root/controlplane/kubernetes-$KUBE_VERSION-etcd-$ETCD_VERSION"
if has_all "$assets"; then
  echo "$assets"
  exit 0
fi

mkdir -p "$cache_root/controlplane"
staging=$(mktemp -d "$cache_root/controlplane/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT

log() { echo "controlplane: $*" >&2; }
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

start=$SECONDS
log "building etcd $ETCD_VERSION (about a minute on a cold cache)"
(cd "$here/controlplane/etcd" &&
  go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3)

kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=$(echo "$KUBE_VERSION" | cut -d. -f1 | tr -d v)"
kube_ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
log "building kube-apiserver, kube-controller-manager and kubectl $KUBE_VERSION (about 10 minutes on a cold cache)"
(cd "$here/controlplane/kubernetes" &&
  go build -trimpath -ldflags "$kube_ldflags" -o "$staging/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)

"$staging/kube-apiserver" --version >&2
"$staging/etcd" --version | head -1 >&2
# Another build may have finished first; either result is the same pinned version.
mv -T "$staging" "$assets" 2>/dev/null || true
trap - EXIT
rm -rf "$staging"
log "built in $((SECONDS - start))s into $assets"
echo "$assets"
