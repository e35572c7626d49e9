#!/usr/bin/env bash
# ipfw.sh - kipfw's forwarding rate through a ruleset, beside the Linux
# kernel forwarding with nftables (and tc netem) in the same run.
#
# unetmap: pkt-gen tx (CPU 0) -> kipfw (CPU 1) -> pkt-gen rx (CPU 0), 60-byte
# UDP frames, over netmap pipes (p{0 -> p}0 | kipfw | q{0 -> q}0) and over
# two VALE switches (vale0:a -> vale0:k | kipfw | vale1:k -> vale1:b).
# Figures: kipfw's capacity per core (kipfw -P forwarding into a sink: a
# null port, or a switch with no other port; its own counters over the CPU
# share it used), and end to end: what pkt-gen received through kipfw,
# median of its steady per-second rates (three processes on two CPUs).
# Rulesets:
#   rules10  ten rules, the one that matches last (nine for TCP/22 from
#            other networks, then allow udp to 4321)
#   table    one rule, allow ip from table(1): 1000 prefixes of /24
#   pipe     the ten rules, the last sends to a dummynet pipe of 10 Gbit/s
#   pipe1514 the same with 1514-byte frames and a pipe of 100 Gbit/s: over
#            netmap pipes (one region) dummynet holds each packet in its own
#            buffer (zero copy; VALE switches have a region each: copies).
#            The sender writes every frame (pkt-gen -z), as a real one
#            does: else pkt-gen writes only the buffers that changed, so
#            a kipfw that copies would spare it the writes
#   pipe1514-copy  the same with kipfw -B 0: dummynet holds copies
# peer: the kernel forwarding the same frames between two veths with the
# same rules in nftables (table: an interval set of the same 1000
# prefixes; pipe: the ten rules and tc netem rate 10gbit on the way out),
# AF_PACKET sendmmsg in one namespace (CPU 0) -> router namespace ->
# TPACKET_V3 receiver (CPU 1). Figure: the receiver's rate.
#
# Environment: BUILD_DIR, RUNS (default 3), IPFW_SECONDS (default 6),
# AFP_COUNT (default 8000000 frames per kernel run), RULESETS (default
# "rules10 table pipe pipe1514 pipe1514-copy"), KEEP_LOGS=1.
set -euo pipefail

ME=ipfw.sh
# shellcheck shell=bash source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
IPFW_SECONDS=${IPFW_SECONDS:-6}
RULESETS=${RULESETS:-rules10 table pipe pipe1514 pipe1514-copy}
AFP_COUNT=${AFP_COUNT:-8000000}
AFP_TIMEOUT=${AFP_TIMEOUT:-120}
CC=${CC:-cc}
KIPFW="$BUILD_DIR/tools/kipfw"
NS_A=ipfwA$$ NS_B=ipfwB$$ NS_R=ipfwR$$
NETNS=()
MAC_R=02:00:00:00:99:01 MAC_B=02:00:00:00:99:02

check_env "bash scripts/build.sh" RUNS IPFW_SECONDS AFP_COUNT
[[ -x "$KIPFW" ]] || die "kipfw not found at $KIPFW"
cleanup_hook() { del_netns; }
bench_init ipfw
PKTGEN_T=(timeout $((IPFW_SECONDS + 20)) "$PKTGEN")

# ----------------------------------------------------------------- rulesets
ruleset() {  # ruleset NAME: kipfw's commands
    local k
    if [[ $1 == table ]]; then
        for ((k = 0; k < 999; k++)); do echo "table 1 add 172.$((16 + k / 256)).$((k % 256)).0/24"; done
        echo "table 1 add 10.0.0.0/24"
        echo "add 100 allow ip from table(1) to any"
        return
    fi
    for ((k = 1; k <= 9; k++)); do echo "add $((k * 10)) deny tcp from 192.168.$k.0/24 to any 22"; done
    if [[ $1 == pipe1514* ]]; then
        echo "pipe 1 config bw 100Gbit/s queue 1000"
        echo "add 100 pipe 1 udp from any to any 4321"
    elif [[ $1 == pipe ]]; then
        echo "pipe 1 config bw 10Gbit/s queue 1000"
        echo "add 100 pipe 1 udp from any to any 4321"
    else
        echo "add 100 allow udp from any to any 4321"
    fi
}

nft_ruleset() {  # nft_ruleset NAME: the same in nftables (a forward hook chain, policy drop)
    local k
    echo "table inet f {"
    if [[ $1 == table ]]; then
        echo -n "  set t { type ipv4_addr; flags interval; elements = { "
        for ((k = 0; k < 999; k++)); do echo -n "172.$((16 + k / 256)).$((k % 256)).0/24, "; done
        echo "10.0.0.0/24 } }"
    fi
    echo "  chain filt { type filter hook forward priority 0; policy drop;"
    if [[ $1 == table ]]; then
        echo "    ip saddr @t accept"
    else
        for ((k = 1; k <= 9; k++)); do echo "    ip saddr 192.168.$k.0/24 tcp dport 22 drop"; done
        echo "    udp dport 4321 accept"
    fi
    echo "  }"
    echo "}"
}

# ----------------------------------------------------------------- unetmap
declare -A FIG  # FIG[case] = "Mpps ..."
record() { FIG[$1]="${FIG[$1]:-} $2"; }

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# stat_packets: packets kipfw sent on from its first port (through dummynet too)
stat_packets() {
    UNETMAP_DIR=$UNETMAP_DIR_CUR "$BUILD_DIR/tools/ipfw" stats |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["directions"][0]["packets"])'
}

# run_kipfw N TRANSPORT RULESET MODE
#   MODE rx:   pkt-gen rx (CPU 0) receives what kipfw forwards; figure: its rate
#   MODE sink: kipfw -P (busy polling, as on a core of its own) forwards
#              into a sink (a null port, or a switch with no other port), so
#              CPU 0 has only the sender; figure: kipfw's own rate (its
#              counters) over the share of a CPU it used
run_kipfw() {
    local n=$1 tr=$2 rs=$3 mode=$4 txp rxp kp kpid t0 t1 p0 p1 rx k all share
    local d="$WORK/${tr}_${rs}_${mode}_$1"
    mkdir -p "$d"
    new_unetmap_dir
    ruleset "$rs" >"$d/rules"
    local in_tx in_k out_k out_rx
    if [[ $tr == pipes ]]; then
        in_tx='netmap:p{0' in_k='netmap:p}0' out_k='netmap:q{0' out_rx='netmap:q}0'
        [[ $mode == sink ]] && out_k=null:sink
    else
        in_tx=vale0:a in_k=vale0:k out_k=vale1:k out_rx=vale1:b
    fi
    local busy=()  # into a sink: kipfw -P, as on a core of its own
    [[ $mode == sink ]] && busy=(-P)
    [[ $rs == *-copy ]] && busy+=(-B 0)
    local len=60 tx_opts=()
    [[ $rs == pipe1514* ]] && len=1514 tx_opts=(-z)
    UNETMAP_DIR=$UNETMAP_DIR_CUR timeout $((IPFW_SECONDS + 30)) taskset -c 1 "$KIPFW" "${busy[@]}" -q -f "$d/rules" "$in_k" "$out_k" \
        >"$d/kipfw.out" 2>&1 &
    kp=$!; PIDS+=("$kp")
    local i
    for ((i = 0; i < 100; i++)); do [[ -S $UNETMAP_DIR_CUR/kipfw.default.sock ]] && break; sleep 0.05; done
    [[ -S $UNETMAP_DIR_CUR/kipfw.default.sock ]] || { echo "run $n: kipfw did not start: $(tail -1 "$d/kipfw.out")" >&2; drop_unetmap_dir; return 1; }
    kpid=$(pgrep -P "$kp" -f kipfw | head -1); kpid=${kpid:-$kp}
    rxp=""
    if [[ $mode == rx ]]; then
        UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i "$out_rx" -f rx -a 0 >"$d/rx.out" 2>"$d/rx.err" &
        rxp=$!; PIDS+=("$rxp")
        wait_for "$d/rx.err" "rings of" 10 "$rxp" || { echo "run $n: receiver did not start" >&2; return 1; }
    fi
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i "$in_tx" -f tx -l "$len" "${tx_opts[@]}" -a 0 >"$d/tx.out" 2>"$d/tx.err" &
    txp=$!; PIDS+=("$txp")
    sleep 1; t0=$(ticks "$kpid"); p0=$(stat_packets)
    sleep $((IPFW_SECONDS - 2)); t1=$(ticks "$kpid"); p1=$(stat_packets)
    sleep 1
    stop_pid "$txp"; forget "$txp"
    [[ -n $rxp ]] && { stop_pid "$rxp"; forget "$rxp"; }
    stop_pid "$kp"; forget "$kp"
    drop_unetmap_dir
    share=$(awk -v t=$((t1 - t0)) -v s=$((IPFW_SECONDS - 2)) 'BEGIN { c = t / (s * 100); if (c > 1) c = 1; if (c < 0.01) c = 0.01; printf "%.2f", c }')
    if [[ $mode == rx ]]; then
        if ! read -r rx k all < <(pktgen_median "$d/rx.out"); then
            echo "run $n: $tr $rs: no rate from the receiver" >&2; tail -3 "$d/rx.out" "$d/kipfw.out" >&2; return 1
        fi
        record "$tr/$rs/rx" "$rx"
        printf 'run %d/%d  unetmap %-6s %-8s to pkt-gen rx %7.3f Mpps  (kipfw %s of a CPU; median of %s of %s s)\n' \
            "$n" "$RUNS" "$tr" "$rs" "$rx" "$share" "$k" "$all"
    else
        rx=$(awk -v a="$p0" -v b="$p1" -v s=$((IPFW_SECONDS - 2)) 'BEGIN { printf "%.3f", (b - a) / s / 1e6 }')
        local per
        per=$(awk -v r="$rx" -v c="$share" 'BEGIN { printf "%.3f", r / c }')
        record "$tr/$rs/core" "$per"
        printf 'run %d/%d  unetmap %-6s %-8s into a sink %7.3f Mpps  kipfw %s of a CPU: %7.3f Mpps per core\n' \
            "$n" "$RUNS" "$tr" "$rs" "$rx" "$share" "$per"
    fi
}

# ------------------------------------------------------------------ kernel
KERNEL_WHY=""
setup_kernel() {
    local ns out
    command -v nft >/dev/null || { KERNEL_WHY="nft (nftables) not installed"; return 1; }
    "$CC" -O2 -Wall -o "$WORK/afp_send" "$HERE/afp_send.c" 2>/dev/null &&
        "$CC" -O2 -Wall -o "$WORK/afp_recv" "$HERE/afp_recv.c" 2>/dev/null || { KERNEL_WHY="cannot compile afp_send/afp_recv"; return 1; }
    for ns in "$NS_A" "$NS_B" "$NS_R"; do
        out=$(ip netns add "$ns" 2>&1) || { KERNEL_WHY="ip netns add: $out"; return 1; }
        NETNS+=("$ns")
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    out=$( {
        ip link add vA netns "$NS_A" type veth peer name rA netns "$NS_R" &&
        ip link add vB netns "$NS_B" type veth peer name rB netns "$NS_R" &&
        ip -n "$NS_R" link set rA address "$MAC_R" &&
        ip -n "$NS_B" link set vB address "$MAC_B" &&
        ip -n "$NS_R" addr add 10.0.0.254/24 dev rA &&
        ip -n "$NS_R" addr add 10.1.0.254/24 dev rB &&
        ip -n "$NS_B" addr add 10.1.0.1/24 dev vB &&
        ip -n "$NS_R" neigh add 10.1.0.1 lladdr "$MAC_B" dev rB nud permanent &&
        ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.rA.rp_filter=0 &&
        for l in "$NS_A vA" "$NS_B vB" "$NS_R rA" "$NS_R rB"; do set -- $l; ip -n "$1" link set "$2" up || exit 1; done
    } 2>&1 ) || { KERNEL_WHY="cannot set up the namespaces: $out"; return 1; }
    ip -n "$NS_R" neigh add 10.0.0.1 lladdr 02:00:00:00:99:03 dev rA nud permanent 2>/dev/null || true
    HAVE_NETEM=0
    if tc -n "$NS_R" qdisc add dev rB root netem delay 0ms 2>/dev/null; then
        HAVE_NETEM=1
        tc -n "$NS_R" qdisc del dev rB root
    fi
}

# run_kernel N RULESET
run_kernel() {
    local n=$1 rs=$2 rxpid txpid
    local d="$WORK/kernel_${rs}_$1"
    mkdir -p "$d"
    ip netns exec "$NS_R" nft flush ruleset
    nft_ruleset "$rs" >"$d/nft"
    ip netns exec "$NS_R" nft -f "$d/nft" || { echo "run $n: nft refused the $rs ruleset" >&2; return 1; }
    ip -n "$NS_R" link set rB up
    tc -n "$NS_R" qdisc del dev rB root 2>/dev/null || true
    if [[ $rs == pipe ]]; then tc -n "$NS_R" qdisc add dev rB root netem rate 10gbit limit 1000 || return 1; fi
    timeout "$AFP_TIMEOUT" ip netns exec "$NS_B" "$WORK/afp_recv" -i vB -a 1 -D "$MAC_B" -W >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    wait_for "$d/rx.err" 'afp_recv: vB: ready' 10 "$rxpid" || { echo "run $n: kernel receiver not ready" >&2; return 1; }
    timeout "$AFP_TIMEOUT" ip netns exec "$NS_A" "$WORK/afp_send" -i vA -n "$AFP_COUNT" -l 60 -b 256 -a 0 \
        -S 02:00:00:00:99:03 -D "$MAC_R" >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: AF_PACKET sender"
    reap_within "$rxpid" 10
    rxtx_summary "$d"
    [[ -n "$RX" && "$RXP" != 0 ]] || { rxtx_failed "$d" "run $n: kernel $rs: no traffic"; return 1; }
    record "kernel/$rs" "$RX"
    printf 'run %d/%d  kernel  veth   %-8s rx %7.3f Mpps  (tx %.3f; %s sent, %s forwarded)\n' "$n" "$RUNS" "$rs" "$RX" "$TX" "$TXP" "$RXP"
}

# -------------------------------------------------------------------- main
HAVE_KERNEL=0 HAVE_NETEM=0
if setup_kernel; then HAVE_KERNEL=1; else del_netns; fi
echo "kipfw (CPU 1) between pkt-gen tx and rx (CPU 0), 60-byte UDP frames (1514 for pipe1514), $IPFW_SECONDS s per run, $RUNS runs"
if ((HAVE_KERNEL)); then
    echo "peer: Linux forwarding between veths with nftables (and tc netem), AF_PACKET sender (CPU 0) -> receiver (CPU 1), $AFP_COUNT frames per run"
else
    echo "peer: not measured: $KERNEL_WHY"
fi
for ((r = 1; r <= RUNS; r++)); do
    for rs in $RULESETS; do
        for tr in pipes vale; do
            for mode in sink rx; do
                run_kipfw "$r" "$tr" "$rs" "$mode" || echo "run $r/$RUNS  unetmap $tr $rs $mode FAILED"
            done
        done
        if ((HAVE_KERNEL)) && [[ $rs != pipe1514* ]]; then
            if [[ $rs == pipe ]] && ((!HAVE_NETEM)); then continue; fi
            run_kernel "$r" "$rs" || echo "run $r/$RUNS  kernel $rs FAILED"
        fi
    done
done

echo
echo "medians, Mpps: kipfw per core (into a sink), pkt-gen to pkt-gen through kipfw, the kernel"
for rs in $RULESETS; do
    # shellcheck disable=SC2086
    kern=$( ((HAVE_KERNEL)) && median ${FIG[kernel/$rs]:-} || true)
    for tr in pipes vale; do
        # shellcheck disable=SC2086
        c=$(median ${FIG[$tr/$rs/core]:-}); u=$(median ${FIG[$tr/$rs/rx]:-})
        ratio=$( [[ -n "$c" && -n "$kern" ]] && awk -v a="$c" -v b="$kern" 'BEGIN { printf "%.1f", a / b }' || echo "-")
        printf '  %-8s %-6s kipfw %7s per core   end to end %7s   kernel %7s   per core / kernel %s\n' \
            "$rs" "$tr" "${c:--}" "${u:--}" "${kern:--}" "$ratio"
    done
done
((HAVE_NETEM)) || echo "  (the kernel's pipe case needs tc netem, which this kernel does not have)"
