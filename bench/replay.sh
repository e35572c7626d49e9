#!/usr/bin/env bash
# replay.sh - nmreplay's rate accuracy at 1, 10 and 100 Mbit/s and its rate at
# full speed, against the peer, tcpreplay (Debian's), in the same run.
#
# unetmap: nmreplay -> netmap pipe -> pkt-gen -f rx. tcpreplay: veth vA (in
# one namespace) -> vB (in another) -> an AF_PACKET TPACKET_V3 receiver
# (bench/afp_recv.c). Both receivers time the frames from the first to the
# last; a rate case replays 1000-byte frames for about REPLAY_SECONDS, the
# full-speed case 60-byte frames. Accuracy is the rate measured at the
# receiver over the rate asked for.
#
# Environment:
#   BUILD_DIR       unetmap build dir (default: <this dir>/../build)
#   RUNS            runs of each case and system (default 3)
#   RATES           Mbit/s cases (default "1 10 100")
#   REPLAY_SECONDS  length of a rate case (default 3)
#   FULL_COUNT      60-byte frames of the full-speed case (default 5000000)
#   KEEP_LOGS=1     keep the logs directory (path printed at the end)
set -euo pipefail

ME=replay.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
RATES=${RATES:-"1 10 100"}
REPLAY_SECONDS=${REPLAY_SECONDS:-3}
FULL_COUNT=${FULL_COUNT:-5000000}
NMREPLAY="$BUILD_DIR/tools/nmreplay"
CC=${CC:-cc}
NS_A=ubr$$a NS_B=ubr$$b NETNS=()

check_env "bash scripts/build.sh" RUNS REPLAY_SECONDS FULL_COUNT
[[ -x "$NMREPLAY" ]] || die "nmreplay not found at $NMREPLAY (bash scripts/build.sh)"
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "RATES: '$r' is not a whole number of Mbit/s"; done
cleanup_hook() { del_netns; }
bench_init ubr
PKTGEN_T=(timeout 300 "$PKTGEN")
declare -A RES  # "system case" -> space-separated figures

# Capture files, written by pkt-gen on a pcap-file port: 1000 frames of 1000
# bytes, and 1000 of 60.
new_unetmap_dir
for len in 1000 60; do
    UNETMAP_DIR=$UNETMAP_DIR_CUR UNETMAP_PCAP_DIR=$WORK "${PKTGEN_T[@]}" -i "pcap:f$len/T" -f tx -l "$len" -n 1000 \
        >/dev/null 2>"$WORK/make$len.err" || die "cannot write the capture of $len-byte frames: $(tail -1 "$WORK/make$len.err")"
done
drop_unetmap_dir

PEER_WHY=""
if ! command -v tcpreplay >/dev/null; then
    PEER_WHY="tcpreplay not found (apt-get install tcpreplay)"
elif ! "$CC" -O2 -Wall -o "$WORK/afp_recv" "$HERE/afp_recv.c" 2>/dev/null; then
    PEER_WHY="cannot compile afp_recv"
elif ! setup_link; then
    PEER_WHY=$LINK_WHY
fi

# rx_rate LOG FRAME_BYTES: Mbit/s and Mpps over first to last frame ("MBPS MPPS"),
# the last frame's bytes left out (n frames make n - 1 gaps).
rx_rate() {
    local p b s
    p=$(summary_field "$1" rx packets); b=$(summary_field "$1" rx bytes); s=$(summary_field "$1" rx seconds)
    [[ -n "$p" && "$p" -gt 1 && -n "$s" ]] || return 1
    awk -v p="$p" -v b="$b" -v s="$s" -v f="$2" 'BEGIN { if (s <= 0) exit 1; printf "%.3f %.3f\n", (b - f) * 8 / s / 1e6, (p - 1) / s / 1e6 }'
}

# median4 X...: the median with 4 decimals (accuracies differ in the fourth)
median4() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.4f", m }'; }

# loops MBPS: passes of the 1000-frame capture for about REPLAY_SECONDS.
loops() { awk -v r="$1" -v t="$REPLAY_SECONDS" 'BEGIN { l = int(r * 1e6 * t / 8e6 + 0.5); if (l < 1) l = 1; print l }'; }

# run_unetmap N CASE: CASE is a rate in Mbit/s or "full".
run_unetmap() {
    local n=$1 c=$2 d="$WORK/u$1_$2" file count args=()
    mkdir -p "$d"
    if [[ $c == full ]]; then
        file="$WORK/f60.pcap"; count=$FULL_COUNT; args=(-l $((FULL_COUNT / 1000)))
    else
        file="$WORK/f1000.pcap"; args=(-B "${c}M" -l "$(loops "$c")"); count=$(($(loops "$c") * 1000))
    fi
    new_unetmap_dir
    start_rx "$d/rx" 'netmap:p}0' "run $n: pkt-gen receiver" || { drop_unetmap_dir; return 1; }
    UNETMAP_DIR=$UNETMAP_DIR_CUR timeout 300 "$NMREPLAY" -f "$file" -i 'netmap:p{0' -w 0 -C 0 "${args[@]}" \
        >"$d/tx.out" 2>"$d/tx.err" || true
    reap_within "$RXPID" 5
    drop_unetmap_dir
    record unetmap "$c" "$d/rx.out" "$count"
}

# run_peer N CASE: tcpreplay on vA, afp_recv on vB.
run_peer() {
    local n=$1 c=$2 d="$WORK/p$1_$2" file count rxpid args=()
    mkdir -p "$d"
    if [[ $c == full ]]; then
        file="$WORK/f60.pcap"; count=$FULL_COUNT; args=(--topspeed --loop=$((FULL_COUNT / 1000)))
    else
        file="$WORK/f1000.pcap"; args=(--mbps="$c" --loop="$(loops "$c")"); count=$(($(loops "$c") * 1000))
    fi
    timeout 300 ip netns exec "$NS_B" "$WORK/afp_recv" -i vB -a 1 -W >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    wait_for "$d/rx.err" 'afp_recv: vB: ready' 10 "$rxpid" || { echo "run $n: afp_recv not ready" >&2; return 1; }
    timeout 300 ip netns exec "$NS_A" taskset -c 0 tcpreplay -q -i vA "${args[@]}" "$file" >"$d/tx.out" 2>"$d/tx.err" || true
    reap_within "$rxpid" 10
    record tcpreplay "$c" "$d/rx.out" "$count"
}

# record SYSTEM CASE LOG SENT: a rate case keeps its accuracy (measured over
# asked), the full case its Mpps.
record() {
    local mbps mpps got fig
    if ! read -r mbps mpps < <(rx_rate "$3" "$([[ $2 == full ]] && echo 60 || echo 1000)"); then
        echo "run: $1 $2: no rate at the receiver" >&2
        return 1
    fi
    got=$(summary_field "$3" rx packets)
    if [[ $2 == full ]]; then
        fig=$mpps
        printf '  %-9s full speed   %8.3f Mpps at the receiver (%s of %s frames)\n' "$1" "$mpps" "$got" "$4"
    else
        fig=$(awk -v m="$mbps" -v r="$2" 'BEGIN { printf "%.4f", m / r }')
        printf '  %-9s %4s Mbit/s  %9.3f Mbit/s at the receiver, accuracy %.4f (%s of %s frames)\n' \
            "$1" "$2" "$mbps" "$fig" "$got" "$4"
    fi
    RES["$1 $2"]="${RES["$1 $2"]:-} $fig"
}

echo "nmreplay -> netmap pipe -> pkt-gen rx; 1000-byte frames at $RATES Mbit/s (~${REPLAY_SECONDS} s each), 60-byte frames at full speed ($FULL_COUNT)"
if [[ -z "$PEER_WHY" ]]; then
    echo "peer: tcpreplay $(tcpreplay -V 2>&1 | awk 'NR == 1 { print $3 }') (CPU 0) -> veth -> AF_PACKET TPACKET_V3 receiver (CPU 1)"
else
    echo "peer: tcpreplay not measured: $PEER_WHY"
fi
echo "runs: $RUNS"
for ((r = 1; r <= RUNS; r++)); do
    echo "run $r/$RUNS"
    for c in $RATES full; do
        run_unetmap "$r" "$c" || echo "  unetmap   $c FAILED"
        if [[ -z "$PEER_WHY" ]]; then run_peer "$r" "$c" || echo "  tcpreplay $c FAILED"; fi
    done
done
echo
for c in $RATES full; do
    line=""
    for sys in unetmap tcpreplay; do
        # shellcheck disable=SC2086  # the figures are words
        [[ -n "${RES["$sys $c"]:-}" ]] && line+=$(printf '%s median %s   ' "$sys" "$(median4 ${RES["$sys $c"]})")
    done
    if [[ $c == full ]]; then echo "full speed (Mpps): $line"; else echo "$c Mbit/s (accuracy): $line"; fi
done
