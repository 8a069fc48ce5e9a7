#!/usr/bin/env bash
# Builds the third-party servers the cross-check suite (test/crosscheck) runs the
# operator's AWS clients against, and prints where they are as two lines:
#
#   LOCAL_KMS=/path/to/local-kms
#   MINIO=/path/to/minio
#
# Both are built from source through the Go module proxy, at the versions their
# wrapper modules pin (hack/crosscheck/localkms, test/bench/backup/minio: the
# benchmark's MinIO, so one build serves both), and cached outside the
# repository keyed by version, like hack/controlplane.sh, so only the first run
# pays (local-kms ~20 s, MinIO ~3 min on 2 cores).
#
# A server that fails to build is left out of the output (the reason goes to
# stderr) and the script still succeeds: the suite then skips that server's
# tests and says why, instead of failing `make test` where the proxy is out of
# reach.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${WORKSPACE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workspace-operator}
log() { echo "crosscheck: $*" >&2; }

# build NAME MODULE_DIR PACKAGE prints the cached binary's path, building it once.
build() {
  local name=$1 moddir=$2 pkg=$3 version dir staging start
  version=$(cd "$moddir" && go list -m -f '{{.Version}}' "$pkg") || return 1
  dir="$cache_root/$name/$version"
  if [[ ! -x "$dir/$name" ]]; then
    mkdir -p "$cache_root/$name"
    staging=$(mktemp -d "$cache_root/$name/.build.XXXXXX")
    chmod 755 "$staging"
    log "building $name $version"
    start=$SECONDS
    if ! (cd "$moddir" &&
      CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$staging/$name" "$pkg" >&2); then
      rm -rf "$staging"
      return 1
    fi
    # Another build may have finished first; either result is the same version.
    mv -T "$staging" "$dir" 2>/dev/null || rm -rf "$staging"
    log "built $name in $((SECONDS - start))s into $dir"
  fi
  echo "$dir/$name"
}

if kms=$(build local-kms "$root/hack/crosscheck/localkms" github.com/nsmithuk/local-kms); then
  echo "LOCAL_KMS=$kms"
else
  log "local-kms could not be built; its cross-checks will be skipped"
fi
if minio=$(build minio "$root/test/bench/backup/minio" github.com/minio/minio); then
  echo "MINIO=$minio"
else
  log "MinIO could not be built; its cross-checks will be skipped"
fi
