#!/usr/bin/env bash
# guests_test.sh BUILD_DIR: two Linux guests (Debian's kernel, QEMU with
# TCG) on vhost-user ports of one VALE switch, and the host stack of a NIC
# on the same switch (vale-ctl -h, a veth in a namespace of the test's own):
#   - guest 1 (vm1, 10.99.0.1) serves random data over TCP; guest 2 (vm2,
#     .2) pings it and fetches the data; the stack of the namespace
#     (10.99.0.254, the NIC's host rings) pings guest 1 and fetches it too;
#     every copy has the sender's md5;
#   - the guests negotiate checksum and TSO offloads, their ports take
#     12-byte virtio-net headers, and frames longer than a wire frame (TSO)
#     cross the switch from vm1 whole; to the host stack VALE cuts them.
# QUEUES=2: the guests' NICs have two queue pairs (QEMU's mq, two vCPUs),
# and all four queues of each port must be live.
# Exits 77 (skipped) where QEMU, the guest kernel or busybox are missing
# (bash scripts/deps.sh installs them).
#
# QEMU 7.2 under TCG crashes in vhost_net_start when the virtio-net device
# uses MSI-X with any vhost-user backend (DPDK's too): the guests' devices
# have vectors=0, interrupts without MSI-X.
set -euo pipefail
build=$(cd "${1:?usage: guests_test.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
kdir=${GUEST_KERNEL:-/var/lib/unetmap/guest-kernel}
MB=${GUEST_MB:-8}
Q=${QUEUES:-1}
skip() { echo "SKIP: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found"
[ -f "$kdir/vmlinuz" ] || skip "no guest kernel in $kdir"
[ -x /bin/busybox ] || skip "no /bin/busybox"
[ "$(id -u)" = 0 ] || skip "needs root (a network namespace, a veth)"

work=$(mktemp -d /tmp/unetmap-qemu.XXXXXX)
ns=umq$$
export UNETMAP_DIR=$work/rt
mkdir -m 700 "$UNETMAP_DIR"
vc="$build/tools/vale-ctl"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$vc" -d vale0:vm1 >/dev/null 2>&1 || true
  "$vc" -d vale0:vm2 >/dev/null 2>&1 || true
  ip netns exec "$ns" "$vc" -d vale0:uq0 >/dev/null 2>&1 || true
  ip netns del "$ns" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "logs in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/*.log; do echo "--- $f"; tail -n 25 "$f"; done
  "$vc" -W 2>&1 | tail -n 20 || true
  exit 1
}

"$here/mkinitrd.sh" "$kdir" "$work/initrd.gz"

# The host stack: veth uq0 (10.99.0.254) in namespace $ns, its peer up.
ip netns add "$ns"
ip -n "$ns" link add uq0 type veth peer name uq1
ip -n "$ns" addr add 10.99.0.254/24 dev uq0
ip -n "$ns" link set uq0 up
ip -n "$ns" link set uq1 up
ip -n "$ns" link set lo up
ip netns exec "$ns" "$vc" -h vale0:uq0 >"$work/attach.log" 2>&1 || fail "vale-ctl -h vale0:uq0"
"$vc" -a "vale0:vm1,vhost=$work/vm1.sock,queues=$Q" || fail "attach vm1"
"$vc" -a "vale0:vm2,vhost=$work/vm2.sock,queues=$Q" || fail "attach vm2"
mq=""
[ "$Q" = 1 ] || mq=",mq=on"

# guest NAME MAC ROLE IP [PEER]
guest() {
  timeout 240 qemu-system-x86_64 -name "$1" -accel tcg -machine pc -m 256 -smp "$Q" \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -nographic -no-reboot -nodefaults -serial stdio \
    -kernel "$kdir/vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 um.role=$3 um.ip=$4 um.peer=${5:-} um.mb=$MB" \
    -chardev "socket,id=c0,path=$work/$1.sock" -netdev "vhost-user,id=n0,chardev=c0,queues=$Q" \
    -device "virtio-net-pci,netdev=n0,mac=$2,vectors=0$mq" </dev/null >"$work/$1.log" 2>&1 &
  pids+=($!)
}
# wait_line FILE REGEX SECONDS: the first matching line, once it is there.
wait_line() {
  local t=0
  while ! grep -qaE "$2" "$1" 2>/dev/null; do
    sleep 0.5
    t=$((t + 1))
    [ $t -le $(($3 * 2)) ] || return 1
  done
  grep -aoE "$2.*" "$1" | head -1 | tr -d '\r'
}

guest vm1 52:54:00:00:00:01 serve 10.99.0.1/24
guest vm2 52:54:00:00:00:02 fetch 10.99.0.2/24 10.99.0.1
data=$(wait_line "$work/vm1.log" "UM: data " 120) || fail "guest 1 did not come up"
read -r _ _ size md5 <<<"$data"
echo "guest 1 serves $size bytes, md5 $md5"

got=$(wait_line "$work/vm2.log" "UM: got " 180) || fail "guest 2 fetched nothing"
echo "guest 2: $got"
grep -qa "UM: ping ok" "$work/vm2.log" || fail "guest 2 could not ping guest 1"
[[ "$got" == "UM: got $size $md5 "* ]] || fail "guest 2 got other data: $got"

# The host stack, through the NIC's host rings, to guest 1 and back.
ip netns exec "$ns" ping -c 3 -W 2 10.99.0.1 >"$work/ping.log" 2>&1 || fail "the host stack cannot ping guest 1"
timeout 120 ip netns exec "$ns" nc -d 10.99.0.1 5001 >"$work/host.data" 2>"$work/nc.log" || fail "the host stack's fetch failed"
hmd5=$(md5sum <"$work/host.data" | cut -d' ' -f1)
hsize=$(stat -c %s "$work/host.data")
echo "host stack got $hsize bytes, md5 $hmd5"
[ "$hsize" = "$size" ] && [ "$hmd5" = "$md5" ] || fail "the host stack got other data"

# Offloads: both guests acked GUEST_CSUM (bit 1), GUEST_TSO4 (7) and
# HOST_TSO4 (11) (the features line the guest printed, bit 0 first), and
# their ports have 12-byte headers.
for g in vm1 vm2; do
  f=$(grep -aoE "UM: up [0-9.]+ features [01]+" "$work/$g.log" | awk '{ print $5 }')
  [ "${f:1:1}${f:7:1}${f:11:1}" = 111 ] || fail "$g did not take checksum and TSO offloads: $f"
done
# Every queue pair in use: the guests' rx queues, vm1's port (vm2 is gone).
for g in vm1 vm2; do
  grep -qa "UM: queues $Q" "$work/$g.log" || fail "$g does not use $Q queue pairs"
done
"$vc" -W | grep -q "^vale0:vm1 .*$((2 * Q)) of $((2 * Q)) queues live" || fail "not every queue of vm1 is live"
"$vc" -s -j >"$work/stats.json"
/usr/bin/python3 - "$work/stats.json" <<'PY' || fail "switch statistics: $(cat "$work/stats.json")"
import json, sys
ports = {p["name"]: p for s in json.load(open(sys.argv[1])) for p in s["ports"]}
vm1 = ports["vale0:vm1"]
assert vm1["hdr_len"] == 12 and ports["vale0:vm2"]["hdr_len"] == 12, "headers"
# vm1 sent the data twice: in frames longer than a wire frame on average.
avg = vm1["tx_bytes"] / max(1, vm1["tx_packets"])
print(f"vm1 sent {vm1['tx_packets']} frames, {avg:.0f} bytes on average")
assert avg > 1514 + 12, "no TSO frame crossed the switch"
PY
echo "ok"
