#!/usr/bin/env bash
# kipfw between two network namespaces, over NIC ports, with the Linux
# stack's own ping, nc and TCP on either side:
#
#   ns A: a0 10.88.0.1 --veth-- a1 [ns K: kipfw netmap:a1 netmap:b1] b1 --veth-- b0 10.88.0.2 :ns B
#
#   1. ICMP allowed: ping gets through; a deny rule for echo requests
#      added with ipfw stops it, counted by that rule;
#   2. reject: a TCP connection to a rejected port is refused (the RST
#      kipfw sends back), one to an allowed port is made;
#   3. a pipe of 10 Mbit/s with 20 ms of delay both ways: ping's shortest
#      RTT is 40 ms more than without it, within 3 ms; a TCP transfer's
#      steady goodput (the median of one-second windows) is the link's
#      rate less TCP/IP/Ethernet headers, within 5%, and never more over
#      five seconds;
#   4. plr 0.1 over 10000 UDP datagrams: the pipe's losses within 5
#      standard deviations of a tenth of what reached it, and the receiver
#      gets exactly the rest.
# Shortest RTTs, medians and counts, not means: a stall of a sanitized
# kipfw delays a few packets without saying anything about the pipe.
# Usage: kipfw_netns_test.sh BUILD_DIR   (root; exits 77 if namespaces
# cannot be made)
set -euo pipefail
B=$(cd "$1" && pwd)
KIPFW=$B/tools/kipfw IPFW=$B/tools/ipfw
PY=/usr/bin/python3
TAG=$$
NA=kfA$TAG NB=kfB$TAG NK=kfK$TAG
WORK=$(mktemp -d)
export UNETMAP_DIR=$WORK/run
mkdir -m 0700 -p "$UNETMAP_DIR"
cleanup() {
    for ns in $NA $NB $NK; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $WORK/kipfw.out ]] && cat "$WORK/kipfw.out" >&2; exit 1; }
inA() { ip netns exec "$NA" "$@"; }
inB() { ip netns exec "$NB" "$@"; }
ipfw() { ip netns exec "$NK" "$IPFW" "$@"; }

ip netns add "$NA" 2>/dev/null || { echo "skip: cannot make network namespaces"; exit 77; }
ip netns add "$NB"; ip netns add "$NK"
for ns in $NA $NB $NK; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add a0 netns "$NA" type veth peer name a1 netns "$NK"
ip link add b0 netns "$NB" type veth peer name b1 netns "$NK"
ip -n "$NA" addr add 10.88.0.1/24 dev a0
ip -n "$NB" addr add 10.88.0.2/24 dev b0
for l in "$NA a0" "$NB b0" "$NK a1" "$NK b1"; do set -- $l; ip -n "$1" link set "$2" up; done
# The stacks finish their own checksums: a veth peer leaves them to the
# "hardware", and an AF_XDP socket gets the frame without saying so.
inA ethtool -K a0 tx off >/dev/null
inB ethtool -K b0 tx off >/dev/null

cat >"$WORK/rules" <<'EOF'
add 100 allow icmp from any to any
add 200 allow tcp from any to any
add 300 allow udp from any to any
EOF
ip netns exec "$NK" "$KIPFW" -f "$WORK/rules" netmap:a1 netmap:b1 >"$WORK/kipfw.out" 2>&1 &
for _ in $(seq 200); do ipfw list >/dev/null 2>&1 && break; sleep 0.05; done
ipfw list >/dev/null || fail "kipfw did not start"

# 1. ping (its shortest RTT without a pipe, the base of 3.), then a deny rule for echo requests
base=$(inA ping -c 10 -i 0.2 -W 2 10.88.0.2 | sed -nE 's|.*= ([0-9.]+)/[0-9.]+/.*|\1|p')
[[ -n $base ]] || fail "ping through kipfw"
ipfw -q add 50 deny icmp from any to any icmptypes 8
if inA ping -c 2 -i 0.2 -W 1 10.88.0.2 >/dev/null; then fail "ping passed a deny rule"; fi
n=$(ipfw show 50 | awk '{print $2}')
[[ $n == 2 ]] || fail "rule 50 counted $n echo requests, not 2"
ipfw delete 50

# 2. reject: refused; an allowed port: connected
ipfw -q add 60 reject tcp from any to any 7777
inB nc -l 7778 >/dev/null &
for _ in $(seq 100); do inB ss -ltn | grep -q ':7778' && break; sleep 0.05; done
out=$(inA nc -v -z -w 3 10.88.0.2 7777 2>&1 || true)
[[ $out == *refused* ]] || fail "a rejected connection: $out"
inA nc -z -w 3 10.88.0.2 7778 || fail "an allowed connection"
ipfw delete 60

# 3. a 10 Mbit/s, 20 ms pipe both ways
ipfw pipe 1 config bw 10Mbit/s delay 20 queue 100
ipfw -q add 40 pipe 1 ip from any to any
rtt=$(inA ping -c 10 -i 0.2 -W 2 10.88.0.2 | sed -nE 's|.*= ([0-9.]+)/[0-9.]+/.*|\1|p')
[[ -n $rtt ]] || fail "no ping through the pipe"
# Twice the delay over the RTT without the pipe (and 2 x 78 us for a
# 98-byte frame at 10 Mbit/s).
$PY -c "import sys; r=float('$rtt')-float('$base'); print('RTT %s ms, %.3f ms over %s ms without the pipe' % ('$rtt', r, '$base')); sys.exit(0 if abs(r-40.16) <= 3.0 else 1)" ||
    fail "shortest RTT $rtt ms with the pipe, $base ms without: not 40 ms more, within 3 ms"
# The receiver counts what it got every second from 1 s to 6 s of a 7 s
# transfer: the median window's rate, and the whole span's.
cat >"$WORK/rx.py" <<'EOF'
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.88.0.2", 5001)); s.listen(1)
open(sys.argv[1], "w").write("listening\n")
c, _ = s.accept(); t0 = time.monotonic(); got = 0; marks = []
while True:
    b = c.recv(65536)
    if not b: break
    got += len(b); t = time.monotonic() - t0
    while len(marks) < 6 and t >= 1 + len(marks): marks.append((t, got))
w = sorted((g1 - g0) * 8 / (t1 - t0) for (t0, g0), (t1, g1) in zip(marks, marks[1:]))
print(w[len(w) // 2], (marks[-1][1] - marks[0][1]) * 8 / (marks[-1][0] - marks[0][0]))
EOF
inB $PY "$WORK/rx.py" "$WORK/rx.ready" >"$WORK/rx.out" &
rxpid=$!
for _ in $(seq 100); do [[ -s $WORK/rx.ready ]] && break; sleep 0.05; done
inA timeout 30 $PY -c "
import socket, time
s = socket.create_connection(('10.88.0.2', 5001)); b = b'x' * 65536; t0 = time.monotonic()
while time.monotonic() - t0 < 7: s.sendall(b)
s.close()"
wait "$rxpid" || fail "the receiver failed"
read -r rate whole <"$WORK/rx.out"
# Goodput of a full 10 Mbit/s link: 1448 bytes of data in each 1514-byte
# frame (over the whole span, at most what the queue of 100 frames held
# at its start beyond it).
$PY -c "import sys; r=float('$rate'); a=float('$whole'); e=10e6*1448/1514; print('goodput %.3f Mbit/s (median of seconds), %.3f over 5 s, expected %.3f' % (r/1e6, a/1e6, e/1e6)); sys.exit(0 if abs(r-e) <= 0.05*e and a <= 1.03*e else 1)" ||
    fail "TCP goodput through the pipe"
ipfw delete 40

# 4. plr 0.1
ipfw pipe 2 config plr 0.1 queue 1000
ipfw -q add 30 pipe 2 udp from any to any 9999
# The receiver's buffer holds all 10000 (a stalled reader drops none).
cat >"$WORK/udp_rx.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (Linux; not in Python's module)
s.bind(("10.88.0.2", 9999)); s.settimeout(2)
open(sys.argv[1], "w").write("listening\n")
n = 0
try:
    while True:
        if s.recv(2048) == b"end": break
        n += 1
except socket.timeout:
    pass
print(n)
EOF
dn() { ipfw stats | $PY -c "import json,sys; d=json.load(sys.stdin)['dummynet']; print(d['in'], d['plr_drops'], d['queue_drops'] + d['held_drops'])"; }
read -r in0 plr0 qd0 < <(dn)
inB $PY "$WORK/udp_rx.py" "$WORK/udp.ready" >"$WORK/udp.out" &
rxpid=$!
for _ in $(seq 100); do [[ -s $WORK/udp.ready ]] && break; sleep 0.05; done
inA $PY -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for k in range(10000):
    s.sendto(b'%d' % k, ('10.88.0.2', 9999))
    if k % 200 == 199: time.sleep(0.01)   # within the pipe's queue
"
ipfw delete 30
inA $PY -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'end', ('10.88.0.2', 9999))"
wait "$rxpid" || true
got=$(cat "$WORK/udp.out")
read -r in1 plr1 qd1 < <(dn)
# What reached the pipe (a stalled kipfw may find its NIC ring overflowed:
# those never reach it), what plr dropped of it, what else it dropped.
reached=$((in1 - in0)) plr=$((plr1 - plr0)) other=$((qd1 - qd0))
echo "plr: $plr of the $reached that reached the pipe dropped by plr, $other otherwise; the receiver got $got of 10000"
((reached >= 9000)) || fail "only $reached of 10000 datagrams reached the pipe"
((plr * 10000 >= reached * 850 && plr * 10000 <= reached * 1150)) || fail "plr 0.1 dropped $plr of $reached"
((got == reached - plr - other)) || fail "the pipe passed $((reached - plr - other)), the receiver got $got"
echo "kipfw_netns_test: ok"
