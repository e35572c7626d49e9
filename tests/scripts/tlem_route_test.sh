#!/usr/bin/env bash
# tlem in route mode between two network namespaces over NIC ports, with
# the Linux stack's ping on either side:
#
#   ns A: a0 10.61.1.2/24 --veth-- a1 10.61.1.1 [ns R: tlem -r netmap:a1 netmap:b1] b1 10.61.2.1 --veth-- b0 10.61.2.2/24 :ns B
#
# A and B reach each other only through tlem (their default routes point at
# a1 and b1, whose frames tlem's AF_XDP ports take from R's stack): tlem
# answers their ARP for 10.61.x.1, resolves their addresses and rewrites
# each frame's Ethernet addresses. With -D 15m both ways, ping's RTT is 30
# ms more than without (within 3 ms, shortest RTTs); frames to a subnet that is
# neither side's, without -G, are not routed and counted.
# Usage: tlem_route_test.sh BUILD_DIR   (root; exits 77 if namespaces
# cannot be made)
set -euo pipefail
B=$(cd "$1" && pwd)
TLEM=$B/tools/tlem
TAG=$$
NA=trA$TAG NB=trB$TAG NR=trR$TAG
WORK=$(mktemp -d)
export UNETMAP_DIR=$WORK/run
mkdir -m 0700 -p "$UNETMAP_DIR"
cleanup() {
    for ns in $NA $NB $NR; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $WORK/tlem.err ]] && cat "$WORK/tlem.out" "$WORK/tlem.err" >&2; exit 1; }

ip netns add "$NA" 2>/dev/null || { echo "skip: cannot make network namespaces"; exit 77; }
ip netns add "$NB"; ip netns add "$NR"
for ns in $NA $NB $NR; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add a0 netns "$NA" type veth peer name a1 netns "$NR"
ip link add b0 netns "$NB" type veth peer name b1 netns "$NR"
ip -n "$NA" addr add 10.61.1.2/24 dev a0
ip -n "$NR" addr add 10.61.1.1/24 dev a1
ip -n "$NR" addr add 10.61.2.1/24 dev b1
ip -n "$NB" addr add 10.61.2.2/24 dev b0
for l in "$NA a0" "$NB b0" "$NR a1" "$NR b1"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$NA" route add default via 10.61.1.1
ip -n "$NB" route add default via 10.61.2.1

# start_tlem ARGS...: tlem in ns R, up when it printed its first line.
start_tlem() {
    ip netns exec "$NR" "$TLEM" -i netmap:a1 -i netmap:b1 -r -w 0 "$@" >"$WORK/tlem.out" 2>"$WORK/tlem.err" &
    TPID=$!
    for _ in $(seq 200); do grep -q "delay lines of" "$WORK/tlem.err" && return 0; sleep 0.05; done
    fail "tlem did not start"
}
stop_tlem() { kill -TERM "$TPID"; wait "$TPID" || true; }
# rtt_min NS ADDR COUNT: ping's shortest RTT in ms, or fail (a first
# ping resolves the addresses on both sides).
rtt_min() {
    local out
    ip netns exec "$1" ping -c 2 -i 0.2 -W 3 "$2" >/dev/null 2>&1 || true
    out=$(ip netns exec "$1" ping -c "$3" -i 0.2 -W 2 "$2" 2>&1) || fail "ping $2 from $1: $out"
    sed -n 's|.*= \([0-9.]*\)/.*|\1|p' <<<"$out"
}

start_tlem
base=$(rtt_min "$NA" 10.61.2.2 10)
rtt_min "$NB" 10.61.1.2 3 >/dev/null
stop_tlem
grep -q '"dir":"A>B"' "$WORK/tlem.out" || fail "no counters at exit"

start_tlem -D 15m
slow=$(rtt_min "$NA" 10.61.2.2 10)
# A destination on neither subnet, no gateway: not routed.
ip netns exec "$NA" ping -c 3 -i 0.2 -W 1 10.99.0.1 >/dev/null 2>&1 && fail "10.99.0.1 answered without a route"
stop_tlem
nr=$(sed -n 's/.*"dir":"A>B"[^}]*"not_routed":\([0-9]*\).*/\1/p' "$WORK/tlem.out")
[[ -n "$nr" && "$nr" -ge 3 ]] || fail "not_routed A>B is '$nr' (3 pings to nowhere at least)"
awk -v b="$base" -v s="$slow" 'BEGIN { d = s - b - 30; exit !(d > -3 && d < 3) }' ||
    fail "RTT $slow ms with -D 15m, $base ms without: not 30 ms more within 3 ms"
echo "ok: RTT $base ms through tlem, $slow ms with 15 ms each way; $nr frames not routed"
