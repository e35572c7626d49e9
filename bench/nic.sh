#!/usr/bin/env bash
# nic.sh - unetmap NIC ports (netmap:IF) on a veth pair, beside raw AF_PACKET
# sockets and DPDK's af_packet / af_xdp PMDs on the same link, same run.
#
# The script creates two network namespaces, unA<pid> and unB<pid>, joined by a
# veth pair vA (in unA) - vB (in unB), IPv6 off (no stray frames), and removes
# them on exit, Ctrl-C included. Every case sends 60-byte frames from vB to vA,
# the sender pinned to CPU 0 in unB, the receiver to CPU 1 in unA:
#   1. unetmap AF_XDP:    pkt-gen -f tx -n NIC_COUNT on netmap:vB ->
#                         pkt-gen -f rx -W on netmap:vA, UNETMAP_NIC=xdp
#   2. unetmap AF_PACKET: the same with UNETMAP_NIC=packet
#   3. raw sockets:       bench/afp_send (sendmmsg, PACKET_QDISC_BYPASS) ->
#                         bench/afp_recv (TPACKET_V3 ring), AFP_COUNT frames
#   4. DPDK testpmd txonly -> rxonly with net_af_packet, then net_af_xdp
#      (only if dpdk-testpmd is installed), NIC_SECONDS each
# Figures are the receiver's Mpps (drops count against it); the senders' are
# shown too. Runs alternate the cases; the last lines give the medians and the
# ratios unetmap/raw and unetmap/DPDK.
#
# Environment:
#   BUILD_DIR     unetmap build dir (default: <this dir>/../build)
#   RUNS          runs of each case (default 5)
#   NIC_COUNT     frames per unetmap run (default 4000000, a few s)
#   AFP_COUNT     frames per raw AF_PACKET run (default NIC_COUNT)
#   NIC_SECONDS   lifetime of the DPDK sender per run (default 12)
#   NIC_TIMEOUT   upper bound in seconds for one sender or receiver (default 120)
#   TESTPMD       testpmd binary (default dpdk-testpmd)
#   CC            C compiler for bench/afp_send.c and afp_recv.c (default cc)
#   KEEP_LOGS=1   keep the logs directory (path printed at the end)
set -euo pipefail

ME=nic.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
NIC_COUNT=${NIC_COUNT:-4000000}
AFP_COUNT=${AFP_COUNT:-$NIC_COUNT}
NIC_SECONDS=${NIC_SECONDS:-12}
NIC_TIMEOUT=${NIC_TIMEOUT:-120}
CC=${CC:-cc}

# Neither MAC is vA's: the frames reach vA as PACKET_OTHERHOST, which the host
# stack drops at once after the packet taps (the same for every case).
MAC_A=00:00:00:00:00:0a
MAC_B=00:00:00:00:00:0b

check_env "bash scripts/build.sh build, or cmake -S . -B build && cmake --build build --target pkt-gen" \
    RUNS NIC_COUNT AFP_COUNT NIC_SECONDS NIC_TIMEOUT
for t in ip taskset "$CC"; do
    command -v "$t" >/dev/null 2>&1 || die "$t is required"
done

NS_A="unA$$" NS_B="unB$$"
NETNS=()                    # namespaces we created (removed on exit: del_netns, lib.sh)
# shellcheck disable=SC2317  # called by cleanup (lib.sh)
cleanup_hook() { del_netns; }

bench_init unic
AFP_SEND="$WORK/afp_send" AFP_RECV="$WORK/afp_recv"

# ----------------------------------------------------------------------- setup
# setup_link: lib.sh

# ifstat NS DEV COUNTER: a counter of /sys/class/net/DEV/statistics in NS
ifstat() {
    ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3" 2>/dev/null || echo 0
}
# link_snap: the veth counters, as "vB-tx vB-txdrop vA-rx vA-rxdrop"
link_snap() {
    echo "$(ifstat "$NS_B" vB tx_packets) $(ifstat "$NS_B" vB tx_dropped)" \
         "$(ifstat "$NS_A" vA rx_packets) $(ifstat "$NS_A" vA rx_dropped)"
}
# link_delta BEFORE AFTER: what the veth counted in between, for the run's line
link_delta() {
    local b a
    read -ra b <<<"$1"; read -ra a <<<"$2"
    echo "veth: vB tx $((a[0] - b[0])) (dropped $((a[1] - b[1]))), vA rx $((a[2] - b[2])) (dropped $((a[3] - b[3])))"
}

# xdp_left: an XDP program still attached to vA or vB is reported and removed (a
# closed unetmap port must leave none; the following cases need the links clean)
xdp_left() {
    local ns dev
    for ns in "$NS_A:vA" "$NS_B:vB"; do
        dev=${ns#*:}; ns=${ns%%:*}
        if ip -n "$ns" -o link show dev "$dev" | grep -q ' prog/xdp'; then
            echo "$1: an XDP program is still attached to $dev after the run; removing it" >&2
            ip -n "$ns" link set dev "$dev" xdp off 2>/dev/null || true
            ip -n "$ns" link set dev "$dev" xdpgeneric off 2>/dev/null || true
        fi
    done
}

# ---------------------------------------------------------------- unetmap
declare -A RXS TXS         # per case: the receivers' / senders' Mpps, space-separated
CASES=(xdp packet raw dpdk_afp dpdk_afx)
declare -A NAME=([xdp]="unetmap AF_XDP" [packet]="unetmap AF_PACKET" [raw]="raw AF_PACKET"
                 [dpdk_afp]="DPDK af_packet" [dpdk_afx]="DPDK af_xdp")
declare -A BACKEND         # what unetmap reported it used, per mode

# run_unetmap N MODE(xdp|packet)
run_unetmap() {
    local n=$1 mode=$2 d="$WORK/${2}_$1" rxpid txpid before after be
    local env=(env UNETMAP_NIC="$mode" UNETMAP_VERBOSE=1)
    mkdir -p "$d"
    new_unetmap_dir
    before=$(link_snap)
    # -w 0: receive at once (the link is up); -W: end 1 s after the last frame
    "${env[@]}" UNETMAP_DIR="$UNETMAP_DIR_CUR" timeout "$NIC_TIMEOUT" ip netns exec "$NS_A" \
        taskset -c 1 "$PKTGEN" -i netmap:vA -f rx -W -w 0 -a 1 >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    if ! wait_for "$d/rx.err" "pkt-gen: netmap:vA: " 10 "$rxpid" || ! grep -q 'rings of' "$d/rx.err"; then
        echo "run $n: ${NAME[$mode]}: the receiver did not open netmap:vA within 10 s:" >&2
        tail -n 5 "$d/rx.err" >&2
        stop_pid "$rxpid"; forget "$rxpid"; drop_unetmap_dir; xdp_left "run $n"
        return 1
    fi
    "${env[@]}" UNETMAP_DIR="$UNETMAP_DIR_CUR" timeout "$NIC_TIMEOUT" ip netns exec "$NS_B" \
        taskset -c 0 "$PKTGEN" -i netmap:vB -f tx -n "$NIC_COUNT" -l 60 -b 512 -w 1 -a 0 \
        -S "$MAC_B" -D "$MAC_A" >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: ${NAME[$mode]} sender"
    reap_within "$rxpid" 10
    ((REAP_RC == 0)) || echo "run $n: ${NAME[$mode]} receiver exited with status $REAP_RC" >&2
    after=$(link_snap)
    drop_unetmap_dir
    xdp_left "run $n: ${NAME[$mode]}"

    # "unetmap: netmap:vA: AF_XDP, copy mode (zero copy: ...)" -> "AF_XDP, copy mode"
    be=$(sed -n 's/^unetmap: netmap:vA: \(AF_[A-Z_]*[^(]*\).*/\1/p' "$d/rx.err" | head -n 1)
    be=${be% }
    [[ -n "${BACKEND[$mode]:-}" || -z "$be" ]] || BACKEND[$mode]=$be
    rxtx_summary "$d"
    if [[ -z "$RX" || -z "$TX" || -z "$RXP" || "$RXP" == 0 ]]; then
        rxtx_failed "$d" "run $n: ${NAME[$mode]}: no traffic or no summary line from pkt-gen"
        return 1
    fi
    case "$mode:$be" in
        xdp:AF_XDP* | packet:AF_PACKET*) ;;
        *) echo "run $n: ${NAME[$mode]}: unetmap reported backend '${be:-none}'" >&2 ;;
    esac
    RXS[$mode]+=" $RX"; TXS[$mode]+=" $TX"
    printf 'run %d/%d  %-17s rx %7.3f Mpps  (tx %.3f; %s sent, %s received, %s lost, rx period %s s; %s)\n' \
        "$n" "$RUNS" "${NAME[$mode]}" "$RX" "$TX" "$TXP" "$RXP" "$((TXP - RXP))" "$SECS" \
        "$(link_delta "$before" "$after")"
}

# ---------------------------------------------------------------- raw AF_PACKET
RAW_WHY=""
build_afp() {
    local out
    if ! out=$("$CC" -O2 -Wall -o "$AFP_SEND" "$HERE/afp_send.c" 2>&1) ||
       ! out=$("$CC" -O2 -Wall -o "$AFP_RECV" "$HERE/afp_recv.c" 2>&1); then
        RAW_WHY="cannot compile afp_send.c/afp_recv.c: $(head -n 1 <<<"$out")"; return 1
    fi
}

run_raw() {
    local n=$1 d="$WORK/raw_$1" rxpid txpid before after drops
    mkdir -p "$d"
    before=$(link_snap)
    timeout "$NIC_TIMEOUT" ip netns exec "$NS_A" taskset -c 1 "$AFP_RECV" -i vA -a 1 -D "$MAC_A" -W \
        >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    if ! wait_for "$d/rx.err" 'afp_recv: vA: ready' 10 "$rxpid"; then
        echo "run $n: raw AF_PACKET receiver not ready within 10 s:" >&2
        tail -n 5 "$d/rx.err" >&2
        stop_pid "$rxpid"; forget "$rxpid"
        return 1
    fi
    timeout "$NIC_TIMEOUT" ip netns exec "$NS_B" taskset -c 0 "$AFP_SEND" -i vB -n "$AFP_COUNT" -l 60 -b 256 -a 0 \
        -S "$MAC_B" -D "$MAC_A" >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: raw AF_PACKET sender"
    reap_within "$rxpid" 10
    ((REAP_RC == 0)) || echo "run $n: raw AF_PACKET receiver exited with status $REAP_RC" >&2
    after=$(link_snap)

    rxtx_summary "$d"
    drops=$(summary_field "$d/rx.out" rx drops)
    if [[ -z "$RX" || -z "$TX" || -z "$RXP" || "$RXP" == 0 ]]; then
        rxtx_failed "$d" "run $n: raw AF_PACKET: no traffic or no summary line"
        return 1
    fi
    RXS[raw]+=" $RX"; TXS[raw]+=" $TX"
    printf 'run %d/%d  %-17s rx %7.3f Mpps  (tx %.3f; %s sent, %s received, %s lost of which %s at the socket, rx period %s s; %s)\n' \
        "$n" "$RUNS" "${NAME[raw]}" "$RX" "$TX" "$TXP" "$RXP" "$((TXP - RXP))" "${drops:-?}" "$SECS" \
        "$(link_delta "$before" "$after")"
}

# ---------------------------------------------------------------- DPDK testpmd
# run_dpdk N CASE(dpdk_afp|dpdk_afx): testpmd rxonly on vA (forwarding lcore 1,
# main lcore 0) started first, then txonly on vB (forwarding lcore 0) for NIC_SECONDS
run_dpdk() {
    local n=$1 c=$2 d="$WORK/${2}_$1" pmd rpid tpid tag rx tx nst nall before after
    case "$c" in dpdk_afp) pmd=net_af_packet0 ;; dpdk_afx) pmd=net_af_xdp0 ;; esac
    mkdir -p "$d"
    tag="${TAG}_${n}_$c"
    local eal=(-l "0,1" --no-huge -m 512 --no-pci)
    local app=(--total-num-mbufs=32768 --stats-period 1 --nb-cores=1)
    before=$(link_snap)
    timeout $((NIC_SECONDS + 30)) ip netns exec "$NS_A" "$TESTPMD" "${eal[@]}" --main-lcore 0 \
        --file-prefix="${tag}_rx" --vdev="$pmd,iface=vA" -- "${app[@]}" --forward-mode=rxonly \
        >"$d/rx.log" 2>&1 </dev/null &
    rpid=$!; PIDS+=("$rpid")
    if ! wait_for "$d/rx.log" 'Rx-pps:' 20 "$rpid"; then
        echo "run $n: ${NAME[$c]}: the receiving testpmd was not ready within 20 s:" >&2
        tail -n 5 "$d/rx.log" >&2
        stop_pid "$rpid"; forget "$rpid"; xdp_left "run $n: ${NAME[$c]}"
        return 1
    fi
    timeout "$NIC_SECONDS" ip netns exec "$NS_B" "$TESTPMD" "${eal[@]}" --main-lcore 1 \
        --file-prefix="${tag}_tx" --vdev="$pmd,iface=vB" -- "${app[@]}" --forward-mode=txonly \
        --txpkts=60 >"$d/tx.log" 2>&1 </dev/null &
    tpid=$!; PIDS+=("$tpid")
    { wait "$tpid" || true; } 2>/dev/null     # 124 (stopped by timeout) is the normal end
    forget "$tpid"
    sleep 1.5                                  # a last stats sample with no traffic
    stop_pid "$rpid"; forget "$rpid"
    after=$(link_snap)
    rm -rf /var/run/dpdk/"${tag}"_rx /var/run/dpdk/"${tag}"_tx 2>/dev/null || true
    xdp_left "run $n: ${NAME[$c]}"

    if ! read -r rx nst nall < <(steady_median "$d/rx.log" Rx-pps); then
        echo "run $n: ${NAME[$c]}: no traffic seen by the receiving testpmd; its log and the sender's end:" >&2
        tail -n 5 "$d/rx.log" "$d/tx.log" >&2
        return 1
    fi
    read -r tx _ < <(steady_median "$d/tx.log" Tx-pps) || tx="?"
    RXS[$c]+=" $rx"; [[ "$tx" == "?" ]] || TXS[$c]+=" $tx"
    printf 'run %d/%d  %-17s rx %7.3f Mpps  (tx %s; medians of %s steady per-second samples; %s)\n' \
        "$n" "$RUNS" "${NAME[$c]}" "$rx" "$tx" "$nst of $nall" "$(link_delta "$before" "$after")"
}

# ------------------------------------------------------------------------ main
setup_link || die "$LINK_WHY"
HAVE_RAW=0
if build_afp; then HAVE_RAW=1; fi
PMDS=()
if ((HAVE_TESTPMD)); then PMDS=(dpdk_afp dpdk_afx); fi

echo "veth pair vB (netns $NS_B, sender, CPU 0) -> vA (netns $NS_A, receiver, CPU 1), 60-byte frames $MAC_B -> $MAC_A"
echo "  unetmap: pkt-gen -f tx -n $NIC_COUNT on netmap:vB -> pkt-gen -f rx -W on netmap:vA, UNETMAP_NIC=xdp and =packet, fresh UNETMAP_DIR per run"
if ((HAVE_RAW)); then
    echo "  peer: raw AF_PACKET, afp_send (sendmmsg of 256, PACKET_QDISC_BYPASS) -> afp_recv (TPACKET_V3 ring), $AFP_COUNT frames/run"
else
    echo "  peer: raw AF_PACKET could not be measured: $RAW_WHY"
fi
if ((HAVE_TESTPMD)); then
    echo "  peer: DPDK $TESTPMD txonly -> rxonly, net_af_packet and net_af_xdp, 60B, sender ${NIC_SECONDS} s/run"
else
    echo "  peer: DPDK could not be measured: $TESTPMD not found (install it: apt-get install dpdk-dev)"
fi
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_unetmap "$r" xdp || echo "run $r/$RUNS  ${NAME[xdp]}  FAILED"
    run_unetmap "$r" packet || echo "run $r/$RUNS  ${NAME[packet]}  FAILED"
    if ((HAVE_RAW)); then run_raw "$r" || echo "run $r/$RUNS  ${NAME[raw]}  FAILED"; fi
    for c in "${PMDS[@]}"; do run_dpdk "$r" "$c" || echo "run $r/$RUNS  ${NAME[$c]}  FAILED"; done
done

echo
for c in "${CASES[@]}"; do
    [[ -n "${RXS[$c]:-}" ]] && printf '%-17s rx Mpps per run: %s   (tx:%s)\n' "${NAME[$c]}" "${RXS[$c]# }" "${TXS[$c]:- ?}"
done
echo

# the medians, one line per case, then the ratios
declare -A MED
for c in "${CASES[@]}"; do
    if [[ -n "${RXS[$c]:-}" ]]; then
        # shellcheck disable=SC2086
        MED[$c]=$(median ${RXS[$c]})
        # shellcheck disable=SC2086
        printf 'nic 60B median  %-17s rx %7.3f Mpps  (tx %s%s)\n' "${NAME[$c]}" "${MED[$c]}" \
            "$( [[ -n "${TXS[$c]:-}" ]] && median ${TXS[$c]} || echo '?')" \
            "${BACKEND[$c]:+; ${BACKEND[$c]}}"
    fi
done
for c in xdp packet; do [[ -n "${MED[$c]:-}" ]] || echo "nic 60B median  ${NAME[$c]}: not measured (all runs failed)"; done
((HAVE_RAW)) && [[ -z "${MED[raw]:-}" ]] && echo "nic 60B median  ${NAME[raw]}: not measured (all runs failed)"
for c in "${PMDS[@]}"; do [[ -n "${MED[$c]:-}" ]] || echo "nic 60B median  ${NAME[$c]}: not measured (all runs failed)"; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
ratios=()
for pair in xdp:raw packet:raw xdp:dpdk_afx packet:dpdk_afp; do
    c=${pair%%:*} p=${pair#*:}
    [[ -n "${MED[$c]:-}" && -n "${MED[$p]:-}" ]] &&
        ratios+=("${NAME[$c]#unetmap }/${NAME[$p]} $(ratio "${MED[$c]}" "${MED[$p]}")")
done
if ((${#ratios[@]} > 0)); then
    line="nic 60B ratios  unetmap/peer:"
    for p in "${ratios[@]}"; do line+="  $p"; done
    echo "$line"
fi

FAILED=0
[[ -n "${MED[xdp]:-}" && -n "${MED[packet]:-}" ]] || FAILED=1
exit "$FAILED"
