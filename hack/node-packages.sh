#!/usr/bin/env bash
# Installs what the local stack's node takes from the distribution rather than building:
# runc, the CNI plugins, iptables, ipset and iproute2 (Debian and Ubuntu package names).
# A no-op when they are all present.
set -euo pipefail

missing=()
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap ]] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v ip >/dev/null || missing+=(iproute2)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "node-packages: the local node needs ${missing[*]}; install them as root, or run with WORKSPACE_OPERATOR_NODE=off" >&2
  exit 1
fi
echo "node-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
