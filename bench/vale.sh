#!/usr/bin/env bash
# vale.sh - unetmap's VALE software switch measured with pkt-gen, against peers
# measured in the same run:
#   1. 60-byte unicast, 2 processes: pkt-gen tx on vale0:a (CPU 0) -> rx on
#      vale0:b (CPU 1), after the switch learned b's MAC; peers: DPDK testpmd over
#      net_memif between two processes (as bench/pipe.sh), and a Linux bridge with
#      veth ports driven by AF_PACKET (sendmmsg sender -> TPACKET_V3 receiver, in
#      network namespaces this script creates and removes);
#   2. 1514-byte unicast, the same as 1 (Gbit/s and Mpps);
#   3. 60-byte flood 1 -> 4: one sender (CPU 0) to broadcast, four receivers
#      vale0:r1..r4 sharing CPU 1.
# Runs alternate the cases; prints per-run figures and medians.
#
# Environment:
#   BUILD_DIR         unetmap build dir (default: <this dir>/../build)
#   RUNS              runs of each case (default 5)
#   VALE_COUNT        packets per 60-byte unicast run (default 150000000, a few s)
#   VALE_COUNT_1514   packets per 1514-byte unicast run (default 50000000)
#   VALE_COUNT_FLOOD  packets sent per flood run (default 100000000)
#   VALE_TIMEOUT      upper bound in seconds for one pkt-gen process (default 120)
#   MEMIF_SECONDS     lifetime of the memif client per run (default 20)
#   TESTPMD           testpmd binary (default dpdk-testpmd)
#   AFP_COUNT         frames per Linux bridge run (default 3000000, a few s)
#   AFP_TIMEOUT       upper bound in seconds for one AF_PACKET process (default 120)
#   CC                C compiler for bench/afp_send.c and afp_recv.c (default cc)
#   KEEP_LOGS=1       keep the logs directory (path printed at the end)
set -euo pipefail

ME=vale.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
VALE_COUNT=${VALE_COUNT:-150000000}
VALE_COUNT_1514=${VALE_COUNT_1514:-50000000}
VALE_COUNT_FLOOD=${VALE_COUNT_FLOOD:-100000000}
VALE_TIMEOUT=${VALE_TIMEOUT:-120}
AFP_COUNT=${AFP_COUNT:-3000000}
AFP_TIMEOUT=${AFP_TIMEOUT:-120}
CC=${CC:-cc}

MAC_A=00:00:00:00:00:0a
MAC_B=00:00:00:00:00:0b
MAC_BCAST=ff:ff:ff:ff:ff:ff

check_env "cmake -S . -B build && cmake --build build --target pkt-gen" \
    RUNS VALE_COUNT VALE_COUNT_1514 VALE_COUNT_FLOOD VALE_TIMEOUT MEMIF_SECONDS AFP_COUNT AFP_TIMEOUT

NS_A="ubA$$" NS_B="ubB$$" NS_BR="ubBR$$"   # network namespaces of the bridge peer
NETNS=()                    # namespaces we created (removed on exit)

del_netns() {
    local ns
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NETNS=()
}
# shellcheck disable=SC2317  # called by cleanup (lib.sh)
cleanup_hook() { del_netns; }

bench_init ubv
PKTGEN_T=(timeout "$VALE_TIMEOUT" "$PKTGEN")

# ---------------------------------------------------------------- VALE unicast
U60_RX=() U60_TX=() U1514_GBPS=() U1514_RX=() U1514_TX=()

# run_vale_unicast N LEN COUNT
run_vale_unicast() {
    local n=$1 len=$2 count=$3 d="$WORK/vale${2}_$1" rxpid txpid learned rxb gbps
    mkdir -p "$d"
    new_unetmap_dir

    start_rx "$d/rx" vale0:b || { drop_unetmap_dir; return 1; }
    rxpid=$RXPID
    # teach the switch b's MAC: one frame from port b with source MAC_B (flooded
    # to no one, as no other port exists yet); the receiver holds vale0:b open
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:b -f tx -n 1 -l 60 -S "$MAC_B" -D "$MAC_BCAST" \
        >"$d/learn.out" 2>"$d/learn.err" || true
    learned=$(summary_field "$d/learn.out" tx packets)
    if [[ "$learned" != 1 ]]; then
        echo "run $n: could not send the learning frame from vale0:b:" >&2
        tail -n 3 "$d/learn.err" >&2
        stop_pid "$rxpid"; forget "$rxpid"; drop_unetmap_dir
        return 1
    fi

    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:a -f tx -l "$len" -b 512 -n "$count" -a 0 -S "$MAC_A" -D "$MAC_B" \
        >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: unetmap sender"
    # -W: the receiver ends one second after the last frame; bound it anyway
    reap_within "$rxpid" 10
    ((REAP_RC == 0)) || echo "run $n: unetmap receiver exited with status $REAP_RC" >&2
    drop_unetmap_dir

    rxtx_summary "$d"
    rxb=$(summary_field "$d/rx.out" rx bytes)
    if [[ -z "$RX" || -z "$TX" || -z "$RXP" || "$RXP" == 0 ]]; then
        rxtx_failed "$d" "run $n: unetmap ${len}B: no traffic or no summary line from pkt-gen"
        return 1
    fi
    if ((len == 60)); then
        U60_RX+=("$RX"); U60_TX+=("$TX")
        printf 'run %d/%d  60B unicast    unetmap  rx %8.3f Mpps  (tx %.3f; %s sent, %s received, %s dropped, rx period %s s)\n' \
            "$n" "$RUNS" "$RX" "$TX" "$TXP" "$RXP" "$((TXP - RXP))" "$SECS"
    else
        gbps=$(awk -v b="$rxb" -v s="$SECS" 'BEGIN { printf "%.3f", (s > 0 ? b * 8 / s / 1e9 : 0) }')
        U1514_GBPS+=("$gbps"); U1514_RX+=("$RX"); U1514_TX+=("$TX")
        printf 'run %d/%d  %dB unicast  unetmap  rx %8.3f Gbit/s %.3f Mpps  (tx %.3f Mpps; %s sent, %s received, %s dropped, rx period %s s)\n' \
            "$n" "$RUNS" "$len" "$gbps" "$RX" "$TX" "$TXP" "$RXP" "$((TXP - RXP))" "$SECS"
    fi
}

# ------------------------------------------------------------------ VALE flood
F_TX=() F_RX=()

run_vale_flood() {
    local n=$1 d="$WORK/flood_$1" i rxpids=() txpid tx txp sum rxs=() r p tot=0
    mkdir -p "$d"
    new_unetmap_dir
    for i in 1 2 3 4; do
        if ! start_rx "$d/rx$i" "vale0:r$i"; then
            for p in "${rxpids[@]}"; do stop_pid "$p"; forget "$p"; done
            drop_unetmap_dir
            return 1
        fi
        rxpids+=("$RXPID")
    done

    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:a -f tx -l 60 -b 512 -n "$VALE_COUNT_FLOOD" -a 0 \
        -S "$MAC_A" -D "$MAC_BCAST" \
        >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: unetmap flood sender"
    for i in 1 2 3 4; do
        reap_within "${rxpids[i - 1]}" 10
        ((REAP_RC == 0)) || echo "run $n: unetmap flood receiver r$i exited with status $REAP_RC" >&2
    done
    drop_unetmap_dir

    tx=$(summary_field "$d/tx.out" tx mpps)
    txp=$(summary_field "$d/tx.out" tx packets)
    for i in 1 2 3 4; do
        r=$(summary_field "$d/rx$i.out" rx mpps)
        p=$(summary_field "$d/rx$i.out" rx packets)
        if [[ -z "$r" || -z "$p" || "$p" == 0 ]]; then
            echo "run $n: unetmap flood: receiver r$i got nothing or printed no summary" >&2
            tail -n 3 "$d/rx$i.out" "$d/rx$i.err" >&2 || true
            return 1
        fi
        rxs+=("$r"); tot=$((tot + p))
    done
    if [[ -z "$tx" ]]; then
        echo "run $n: unetmap flood: no summary line from the sender" >&2
        tail -n 3 "$d/tx.out" "$d/tx.err" >&2 || true
        return 1
    fi
    sum=$(printf '%s\n' "${rxs[@]}" | awk '{ s += $1 } END { printf "%.3f", s }')
    F_TX+=("$tx"); F_RX+=("$sum")
    printf 'run %d/%d  60B flood 1->4 unetmap  tx %8.3f Mpps  rx total %.3f Mpps (%s)  (%s sent, %s of %s copies received)\n' \
        "$n" "$RUNS" "$tx" "$sum" "${rxs[*]}" "$txp" "$tot" "$((4 * txp))"
}

# ------------------------------------------------------ Linux bridge + veth + AF_PACKET
# Namespaces: NS_A holds vA, NS_B holds vB, NS_BR holds bridge br0 with ports pA
# (veth peer of vA) and pB (peer of vB). MAC_B is a static fdb entry on pB, so
# frames to it are forwarded to pB only (the bridge's unicast path, no flooding).
B_RX=()
BR_WHY=""
AFP_SEND="$WORK/afp_send" AFP_RECV="$WORK/afp_recv"

# wait_link NS DEV: until DEV in NS is up (and, for a bridge port, forwarding)
wait_link() {
    local ns=$1 dev=$2 i
    for ((i = 0; i < 200; i++)); do
        if ip -n "$ns" -o link show dev "$dev" 2>/dev/null | grep -q 'state UP'; then
            if [[ "$dev" != p? ]] || bridge -n "$ns" link show dev "$dev" 2>/dev/null | grep -q 'state forwarding'; then
                return 0
            fi
        fi
        sleep 0.05
    done
    return 1
}

setup_bridge() {
    local ns dev out
    command -v "$CC" >/dev/null 2>&1 || { BR_WHY="no C compiler ($CC)"; return 1; }
    if ! out=$("$CC" -O2 -Wall -o "$AFP_SEND" "$HERE/afp_send.c" 2>&1) ||
       ! out=$("$CC" -O2 -Wall -o "$AFP_RECV" "$HERE/afp_recv.c" 2>&1); then
        BR_WHY="cannot compile afp_send.c/afp_recv.c: $(head -n 1 <<<"$out")"; return 1
    fi
    if ! command -v ip >/dev/null 2>&1 || ! command -v bridge >/dev/null 2>&1; then
        BR_WHY="ip/bridge (iproute2) not found"; return 1
    fi
    for ns in "$NS_BR" "$NS_A" "$NS_B"; do
        if ! out=$(ip netns add "$ns" 2>&1); then
            BR_WHY="cannot create network namespaces (ip netns add: $out)"; return 1
        fi
        NETNS+=("$ns")
        # no IPv6 autoconfiguration chatter on the links (new devices inherit "default")
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    if ! out=$( {
            ip -n "$NS_BR" link add br0 type bridge stp_state 0 &&
            ip link add vA netns "$NS_A" type veth peer name pA netns "$NS_BR" &&
            ip link add vB netns "$NS_B" type veth peer name pB netns "$NS_BR" &&
            ip -n "$NS_BR" link set pA master br0 &&
            ip -n "$NS_BR" link set pB master br0 &&
            bridge -n "$NS_BR" fdb add "$MAC_B" dev pB master static &&
            ip -n "$NS_BR" link set br0 up &&
            ip -n "$NS_BR" link set pA up &&
            ip -n "$NS_BR" link set pB up &&
            ip -n "$NS_A" link set vA up &&
            ip -n "$NS_B" link set vB up; } 2>&1 ); then
        BR_WHY="cannot set up the bridge and veth pairs: $out"; return 1
    fi
    # a plain L2 switch: bridged frames skip iptables/arptables (br_netfilter is
    # built into this kernel and on by default in a new namespace; ~25% slower)
    ip netns exec "$NS_BR" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
        net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 >/dev/null 2>&1 || true
    for dev in "$NS_A vA" "$NS_B vB" "$NS_BR pA" "$NS_BR pB"; do
        # shellcheck disable=SC2086
        wait_link $dev || { BR_WHY="link ${dev#* } did not come up / forwarding within 10 s"; return 1; }
    done
}

run_bridge() {
    local n=$1 d="$WORK/bridge_$1" rxpid txpid drops
    mkdir -p "$d"
    timeout "$AFP_TIMEOUT" ip netns exec "$NS_B" "$AFP_RECV" -i vB -a 1 -D "$MAC_B" -W \
        >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    if ! wait_for "$d/rx.err" 'afp_recv: vB: ready' 10 "$rxpid"; then
        echo "run $n: AF_PACKET receiver not ready within 10 s:" >&2
        tail -n 5 "$d/rx.err" >&2
        stop_pid "$rxpid"; forget "$rxpid"
        return 1
    fi
    timeout "$AFP_TIMEOUT" ip netns exec "$NS_A" "$AFP_SEND" -i vA -n "$AFP_COUNT" -l 60 -b 256 -a 0 \
        -S "$MAC_A" -D "$MAC_B" >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: AF_PACKET sender"
    reap_within "$rxpid" 10
    ((REAP_RC == 0)) || echo "run $n: AF_PACKET receiver exited with status $REAP_RC" >&2

    rxtx_summary "$d"
    drops=$(summary_field "$d/rx.out" rx drops)
    if [[ -z "$RX" || -z "$TX" || -z "$RXP" || "$RXP" == 0 ]]; then
        rxtx_failed "$d" "run $n: Linux bridge: no traffic or no summary line"
        return 1
    fi
    B_RX+=("$RX")
    printf 'run %d/%d  60B unicast    bridge   rx %8.3f Mpps  (tx %.3f; %s sent, %s received, %s dropped of which %s at the socket, rx period %s s)\n' \
        "$n" "$RUNS" "$RX" "$TX" "$TXP" "$RXP" "$((TXP - RXP))" "${drops:-?}" "$SECS"
}

# ------------------------------------------------------------------------ main
HAVE_BRIDGE=0
if setup_bridge; then HAVE_BRIDGE=1; else del_netns; fi

echo "VALE switch vale0, pkt-gen (sender CPU 0, receivers CPU 1), fresh UNETMAP_DIR per run:"
echo "  60B unicast   vale0:a -> vale0:b ($VALE_COUNT pkts/run)"
echo "  1514B unicast vale0:a -> vale0:b ($VALE_COUNT_1514 pkts/run)"
echo "  60B flood     vale0:a -> ff:ff:ff:ff:ff:ff, receivers vale0:r1..r4 all on CPU 1 ($VALE_COUNT_FLOOD pkts/run)"
memif_peer ", 64B"
if ((HAVE_BRIDGE)); then
    echo "peer: Linux bridge (netns $NS_BR) + veth, AF_PACKET sendmmsg in $NS_A (CPU 0) -> TPACKET_V3 in $NS_B (CPU 1), 60B ($AFP_COUNT frames/run)"
else
    echo "peer: Linux bridge+veth AF_PACKET could not be measured: $BR_WHY"
fi
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_vale_unicast "$r" 60 "$VALE_COUNT" || echo "run $r/$RUNS  60B unicast    unetmap  FAILED"
    if ((HAVE_TESTPMD)); then
        run_memif "$r" "$WORK/memif_$r" "60B unicast    memif" || echo "run $r/$RUNS  60B unicast    memif    FAILED"
    fi
    if ((HAVE_BRIDGE)); then
        run_bridge "$r" || echo "run $r/$RUNS  60B unicast    bridge   FAILED"
    fi
    run_vale_unicast "$r" 1514 "$VALE_COUNT_1514" || echo "run $r/$RUNS  1514B unicast  unetmap  FAILED"
    run_vale_flood "$r" || echo "run $r/$RUNS  60B flood 1->4 unetmap  FAILED"
done

echo
echo "unetmap 60B unicast   rx Mpps per run:       ${U60_RX[*]:-none}"
echo "unetmap 60B unicast   tx Mpps per run:       ${U60_TX[*]:-none}"
((HAVE_TESTPMD)) && echo "memif   60B           rx Mpps per run:       ${M_RX[*]:-none}"
((HAVE_BRIDGE)) && echo "bridge  60B           rx Mpps per run:       ${B_RX[*]:-none}"
echo "unetmap 1514B unicast rx Gbit/s per run:     ${U1514_GBPS[*]:-none}"
echo "unetmap 60B flood     tx Mpps per run:       ${F_TX[*]:-none}"
echo "unetmap 60B flood     rx total Mpps per run: ${F_RX[*]:-none}"
echo

FAILED=0
if ((${#U60_RX[@]} > 0)); then
    UM=$(median "${U60_RX[@]}"); UT=$(median "${U60_TX[@]}")
    line="vale 60B unicast (2 processes): unetmap median $UM Mpps (tx $UT)"
else
    UM=""; FAILED=1
    line="vale 60B unicast (2 processes): unetmap not measured (all runs failed)"
fi
ratios=()
if ((${#M_RX[@]} > 0)); then
    MM=$(median "${M_RX[@]}")
    line+=", DPDK memif median $MM Mpps"
    [[ -n "$UM" ]] && ratios+=("unetmap/memif $(awk -v a="$UM" -v b="$MM" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
elif ((HAVE_TESTPMD)); then line+=", DPDK memif not measured (all runs failed)"
else line+=", DPDK memif not measured ($TESTPMD not found; apt-get install dpdk-dev)"; fi
if ((${#B_RX[@]} > 0)); then
    BM=$(median "${B_RX[@]}")
    line+=", Linux bridge+veth AF_PACKET median $BM Mpps"
    [[ -n "$UM" ]] && ratios+=("unetmap/bridge $(awk -v a="$UM" -v b="$BM" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')")
elif ((HAVE_BRIDGE)); then line+=", Linux bridge+veth AF_PACKET not measured (all runs failed)"
else line+=", Linux bridge+veth AF_PACKET not measured ($BR_WHY)"; fi
if ((${#ratios[@]} > 0)); then
    line+="; ratios: ${ratios[0]}"
    ((${#ratios[@]} > 1)) && line+=", ${ratios[1]}"
fi
echo "$line"

if ((${#U1514_GBPS[@]} > 0)); then
    echo "vale 1514B unicast: unetmap median $(median "${U1514_GBPS[@]}") Gbit/s ($(median "${U1514_RX[@]}") Mpps; tx $(median "${U1514_TX[@]}") Mpps)"
else
    FAILED=1; echo "vale 1514B unicast: unetmap not measured (all runs failed)"
fi
if ((${#F_TX[@]} > 0)); then
    echo "vale 60B flood 1->4: unetmap sender median $(median "${F_TX[@]}") Mpps, receivers total median $(median "${F_RX[@]}") Mpps"
else
    FAILED=1; echo "vale 60B flood 1->4: unetmap not measured (all runs failed)"
fi
exit "$FAILED"
