#!/usr/bin/env bash
# lb.sh - lb spreading one port's packets over 4 pipes by flow, beside the
# Linux kernel spreading a veth's packets over 4 AF_PACKET sockets by flow
# (PACKET_FANOUT_HASH, what Suricata's af-packet cluster_flow uses) in the
# same run.
#
# unetmap: pkt-gen tx -z (random source addresses and ports: many flows, each
# frame written, CPU 0) -> netmap:lbin{0 | lb -i netmap:lbin}0 -p out:4
# (CPU 1) | out}0..3 -> 4 pkt-gen rx (unpinned). Figure: what the 4
# receivers got per second, from lb's counters (-o 1: packets put on the
# pipes; those a full pipe could not take are counted apart), median of the
# steady seconds.
# peer: AF_PACKET sendmmsg of 256 flows on a veth (CPU 0) -> the other end
# in a namespace, 4 TPACKET_V3 sockets in one fanout group (unpinned).
# Figure: the 4 receivers' frames over their receiving period.
# 60-byte frames.
#
# Environment: BUILD_DIR, RUNS (default 3), LB_SECONDS (default 8),
# AFP_COUNT (default 8000000 frames per kernel run), KEEP_LOGS=1.
set -euo pipefail

ME=lb.sh
# shellcheck shell=bash source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
LB_SECONDS=${LB_SECONDS:-8}
AFP_COUNT=${AFP_COUNT:-8000000}
AFP_TIMEOUT=${AFP_TIMEOUT:-120}
CC=${CC:-cc}
LB="$BUILD_DIR/tools/lb"
NS_A=lbA$$ NS_B=lbB$$
NETNS=()

check_env "bash scripts/build.sh" RUNS LB_SECONDS AFP_COUNT
[[ -x "$LB" ]] || die "lb not found at $LB"
cleanup_hook() { del_netns; }
bench_init lb

declare -A FIG
record() { FIG[$1]="${FIG[$1]:-} $2"; }

# rates LOG: "delivered dropped" per second, medians of lb's steady seconds.
rates() {
    python3 - "$1" <<'EOF'
import json, statistics, sys
rows = []
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    rows.append((sum(p["packets"] for p in j["pipes"]), sum(p["drops"] + p["revoked"] for p in j["pipes"])))
d = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(rows, rows[1:])]
d = d[2:-1] if len(d) > 4 else d
if not d or max(x[0] for x in d) == 0:
    sys.exit(1)
print("%.3f %.3f %d" % (statistics.median(x[0] for x in d) / 1e6, statistics.median(x[1] for x in d) / 1e6, len(d)))
EOF
}

run_unetmap() {
    local n=$1 lbp txp k rx dropped steady
    local d="$WORK/unetmap_$n"
    mkdir -p "$d"
    new_unetmap_dir
    UNETMAP_DIR=$UNETMAP_DIR_CUR timeout $((LB_SECONDS + 30)) taskset -c 1 "$LB" -i 'netmap:lbin}0' -p out:4 -o 1 \
        >"$d/lb.out" 2>"$d/lb.err" &
    lbp=$!; PIDS+=("$lbp")
    wait_for "$d/lb.err" "pipes in" 10 "$lbp" || { echo "run $n: lb did not start: $(cat "$d/lb.err")" >&2; return 1; }
    local rxs=()
    for k in 0 1 2 3; do
        UNETMAP_DIR=$UNETMAP_DIR_CUR timeout $((LB_SECONDS + 20)) "$PKTGEN" -i "netmap:out}$k" -f rx \
            >"$d/rx$k.out" 2>"$d/rx$k.err" &
        rxs+=($!); PIDS+=($!)
    done
    for k in 0 1 2 3; do wait_for "$d/rx$k.err" "rings of" 10 "${rxs[$k]}" || { echo "run $n: receiver $k did not start" >&2; return 1; }; done
    UNETMAP_DIR=$UNETMAP_DIR_CUR timeout $((LB_SECONDS + 20)) "$PKTGEN" -i 'netmap:lbin{0' -f tx -l 60 -z -a 0 \
        >"$d/tx.out" 2>"$d/tx.err" &
    txp=$!; PIDS+=("$txp")
    sleep "$LB_SECONDS"
    stop_pid "$txp"; forget "$txp"
    for k in 0 1 2 3; do stop_pid "${rxs[$k]}"; forget "${rxs[$k]}"; done
    stop_pid "$lbp"; forget "$lbp"
    drop_unetmap_dir
    if ! read -r rx dropped steady < <(rates "$d/lb.out"); then
        echo "run $n: unetmap: no rate from lb" >&2; tail -3 "$d/lb.err" "$d/tx.err" >&2; return 1
    fi
    record unetmap "$rx"
    printf 'run %d/%d  unetmap  lb -> 4 pipes -> 4 pkt-gen rx  %7.3f Mpps delivered, %.3f Mpps dropped at full pipes (median of %s s)\n' \
        "$n" "$RUNS" "$rx" "$dropped" "$steady"
}

KERNEL_WHY=""
setup_kernel() {
    "$CC" -O2 -Wall -o "$WORK/afp_send" "$HERE/afp_send.c" 2>/dev/null &&
        "$CC" -O2 -Wall -o "$WORK/afp_recv" "$HERE/afp_recv.c" 2>/dev/null || { KERNEL_WHY="cannot compile afp_send/afp_recv"; return 1; }
    setup_link || { KERNEL_WHY=$LINK_WHY; return 1; }  # vA - vB, IPv6 off (no chatter to the receivers)
}

run_kernel() {
    local n=$1 k txpid pkts=0 secs=0 p s
    local d="$WORK/kernel_$n"
    mkdir -p "$d"
    local rxs=()
    for k in 0 1 2 3; do
        timeout "$AFP_TIMEOUT" ip netns exec "$NS_B" "$WORK/afp_recv" -i vB -F 7 -W >"$d/rx$k.out" 2>"$d/rx$k.err" &
        rxs+=($!); PIDS+=($!)
    done
    for k in 0 1 2 3; do wait_for "$d/rx$k.err" 'afp_recv: vB: ready' 10 "${rxs[$k]}" || { echo "run $n: kernel receiver $k not ready" >&2; return 1; }; done
    timeout "$AFP_TIMEOUT" ip netns exec "$NS_A" "$WORK/afp_send" -i vA -n "$AFP_COUNT" -l 60 -b 256 -a 0 -P \
        -S 02:00:00:00:98:01 -D 02:00:00:00:98:02 >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: AF_PACKET sender"
    for k in 0 1 2 3; do
        reap_within "${rxs[$k]}" 10
        p=$(summary_field "$d/rx$k.out" rx packets); s=$(summary_field "$d/rx$k.out" rx seconds)
        pkts=$((pkts + ${p:-0}))
        secs=$(awk -v a="$secs" -v b="${s:-0}" 'BEGIN { m = a + 0; if (b + 0 > m) m = b + 0; print m }')
    done
    ((pkts > 0)) || { echo "run $n: kernel: nothing received" >&2; return 1; }
    local rx
    rx=$(awk -v p="$pkts" -v s="$secs" 'BEGIN { r = 0; if (s > 0) r = p / s / 1e6; printf "%.3f", r }')
    record kernel "$rx"
    printf 'run %d/%d  kernel   veth -> fanout of 4 TPACKET_V3 sockets  %7.3f Mpps received (%s of %s sent)\n' \
        "$n" "$RUNS" "$rx" "$pkts" "$(summary_field "$d/tx.out" tx packets)"
}

HAVE_KERNEL=0
if setup_kernel; then HAVE_KERNEL=1; else del_netns; fi
echo "lb (CPU 1) from pkt-gen tx (CPU 0) to 4 pipes and 4 pkt-gen receivers, 60-byte frames, random flows, $LB_SECONDS s per run, $RUNS runs"
if ((HAVE_KERNEL)); then
    echo "peer: AF_PACKET sender (CPU 0, 256 flows) -> veth -> PACKET_FANOUT_HASH over 4 TPACKET_V3 receivers, $AFP_COUNT frames per run"
else
    echo "peer: not measured: $KERNEL_WHY"
fi
for ((r = 1; r <= RUNS; r++)); do
    run_unetmap "$r" || echo "run $r/$RUNS  unetmap FAILED"
    if ((HAVE_KERNEL)); then run_kernel "$r" || echo "run $r/$RUNS  kernel FAILED"; fi
done
echo
# shellcheck disable=SC2086
u=$(median ${FIG[unetmap]:-}); k=$( ((HAVE_KERNEL)) && median ${FIG[kernel]:-} || true)
ratio=$( [[ -n "$u" && -n "$k" ]] && awk -v a="$u" -v b="$k" 'BEGIN { printf "%.1f", a / b }' || echo "-")
printf 'medians, Mpps: unetmap lb %s   kernel fanout %s   ratio %s\n' "${u:--}" "${k:--}" "$ratio"
