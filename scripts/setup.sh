#!/usr/bin/env bash
# Set-up for a Debian/Ubuntu machine with Node >= 20, as root: the system packages the
# demo and the tests use (only the missing ones, via apt) and the npm dependencies
# exactly as the lock file pins them.
set -euo pipefail
cd "$(dirname "$0")/.."

# nftables: the rulesets; iproute2: namespaces, veth, policy routing; tcpdump: wire
# captures in the end-to-end tests; procps: ps/kill used by the harness; mkosi (with
# debootstrap) and systemd (systemd-analyze): the guest image build and its test.
PACKAGES=(nftables iproute2 tcpdump procps mkosi debootstrap systemd)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (network namespaces and nftables need it)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup.sh: Node >= 20 required, found $(node --version)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
