#!/bin/sh
# kata-agent stand-in: first record the ruleset state (before touching anything), then
# bring up the pod network from /etc/podvm-vm/pod-network and start the workload.
set -u
up=$(cut -d' ' -f1 /proc/uptime)
if nft list chain inet podvm_mesh prerouting 2>/dev/null | grep -q 'baseline: nothing inbound before the mesh is ready"$'; then
  state=present
elif nft list table inet podvm_mesh >/dev/null 2>&1; then
  state=other-ruleset
else
  state=ABSENT
fi
echo "PODVM-VM kata-agent-standin started uptime=$up baseline=$state"
. /etc/podvm-vm/pod-network
# The pod's one network card, whatever udev named it (it may still be appearing).
dev=
for _ in $(seq 1 300); do
  dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
  [ -n "$dev" ] && break
  sleep 0.2
done
[ -n "$dev" ] || { echo "PODVM-VM kata-agent-standin: no network card"; exit 1; }
ip link set lo up
ip link set "$dev" up
ip addr add "$IPV4" dev "$dev"
ip -6 addr add "$IPV6" dev "$dev" nodad
echo "PODVM-VM pod-network configured dev=$dev uptime=$(cut -d' ' -f1 /proc/uptime)"
systemctl start --no-block podvm-vm-workload.service
