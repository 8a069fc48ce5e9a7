#!/usr/bin/env bash
# Provides the two third-party programs the backup benchmark runs, and prints
# where they are as two lines for the benchmark to read:
#
#   MINIO=/path/to/minio
#   RESTIC=/path/to/restic
#
# MinIO is built from source through the Go module proxy, at the version the
# wrapper module in ./minio pins (its own module, so that the main module does
# not take on MinIO's dependency tree). The binary is cached outside the
# repository keyed by that version, like hack/controlplane.sh does, so only the
# first run pays for the build (about 3 minutes on 2 cores).
#
# restic is Debian's package, installed with apt-get when it is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "bench-backup setup: $*" >&2; }

minio_version=$(cd "$here/minio" && go list -m -f '{{.Version}}' github.com/minio/minio)
cache_root=${WORKSPACE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workspace-operator}
minio_dir="$cache_root/minio/$minio_version"
if [[ ! -x "$minio_dir/minio" ]]; then
  mkdir -p "$cache_root/minio"
  staging=$(mktemp -d "$cache_root/minio/.build.XXXXXX")
  chmod 755 "$staging"
  trap 'rm -rf "$staging"' EXIT
  log "building MinIO $minio_version (about 3 minutes on a cold cache)"
  start=$SECONDS
  (cd "$here/minio" &&
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$staging/minio" github.com/minio/minio)
  # Another build may have finished first; either result is the same version.
  mv -T "$staging" "$minio_dir" 2>/dev/null || true
  trap - EXIT
  rm -rf "$staging"
  log "built MinIO in $((SECONDS - start))s into $minio_dir"
fi

if ! command -v restic >/dev/null; then
  log "installing restic with apt-get"
  if [[ $(id -u) -ne 0 ]]; then
    log "restic is missing and installing it needs root: apt-get install restic"
    exit 1
  fi
  # Only refresh the package lists when apt does not know restic yet.
  apt-cache show restic >/dev/null 2>&1 || apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >&2
fi

echo "MINIO=$minio_dir/minio"
echo "RESTIC=$(command -v restic)"
