#!/usr/bin/env bash
# pcap.sh - Debian's tcpdump on unetmap (through tools/unetmap-run) beside the
# same tcpdump on a veth, in the same run. Every case is tcpdump with a BPF
# filter that keeps every frame ("udp dst port 4321"), writing to /dev/null
# (-w), as user tcpdump (its default privilege drop), 60-byte frames:
#   1. pipe:     pkt-gen tx on netmap:bp{0 (CPU 0) -> tcpdump on netmap:bp}0
#                (CPU 1). A pipe sender waits for room, so the sender's rate is
#                tcpdump's; the figure is pkt-gen's Mpps (PCAP_COUNT frames).
#   2. monitor:  pkt-gen tx on vale0:a (CPU 0) -> pkt-gen rx on vale0:b, and
#                tcpdump on the copy monitor vale0:b/r (both CPU 1: the machine
#                has 2 cores). A monitor does not slow the port: what tcpdump
#                had no room for is dropped (tcpdump's "dropped by kernel").
#                The figure is the frames tcpdump captured over the sender's
#                time (PCAP_COUNT frames sent).
#   3. peer:     stock tcpdump (Debian's libpcap, AF_PACKET) on vB of a veth
#                pair in two network namespaces the script makes, fed at full
#                speed by bench/afp_send (sendmmsg, PACKET_QDISC_BYPASS) on vA
#                for PEER_COUNT frames; the figure is the frames tcpdump
#                captured over the sender's time, its drops beside it.
#   4. file:     the same tcpdump reading a pcap file of FILE_COUNT such frames
#                (-r, written once from a pipe) in /dev/shm: tcpdump's filter
#                and writer with no capture path at all, for scale (libpcap's
#                file reader costs more per frame than the netmap module).
# Each unetmap run in a fresh UNETMAP_DIR; runs alternate the cases; prints the
# per-run figures, the medians and the ratios to the veth peer and to the file.
#
# Environment:
#   BUILD_DIR    unetmap build dir (default: <this dir>/../build), with
#                tools/unetmap-run (UNETMAP_PCAP on, the default)
#   RUNS         runs of each case (default 5)
#   PCAP_COUNT   frames per unetmap run (default 50000000)
#   PEER_COUNT   frames per veth run (default 10000000)
#   FILE_COUNT   frames in the file case's file (default 5000000, 380 MB in /dev/shm)
#   PCAP_TIMEOUT upper bound in seconds for one process (default 120)
#   CC           C compiler for bench/afp_send.c (default cc)
#   KEEP_LOGS=1  keep the logs directory (path printed at the end)
set -euo pipefail

ME=pcap.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
PCAP_COUNT=${PCAP_COUNT:-50000000}
PEER_COUNT=${PEER_COUNT:-10000000}
FILE_COUNT=${FILE_COUNT:-5000000}
PCAP_TIMEOUT=${PCAP_TIMEOUT:-120}
CC=${CC:-cc}
RUN="$BUILD_DIR/tools/unetmap-run"
TCPDUMP=${TCPDUMP:-/usr/bin/tcpdump}
FILTER="udp dst port 4321"

check_env "bash scripts/build.sh" RUNS PCAP_COUNT PEER_COUNT FILE_COUNT PCAP_TIMEOUT
[[ -x "$RUN" ]] || die "unetmap-run not found at $RUN (build with UNETMAP_PCAP=ON, or set BUILD_DIR)"
[[ -x "$TCPDUMP" ]] || die "tcpdump not found at $TCPDUMP (apt-get install tcpdump)"
[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, tcpdump on a veth)"

NS_A="ubpA$$" NS_B="ubpB$$"
NETNS=()                    # removed on exit: del_netns (lib.sh)
# shellcheck disable=SC2317  # called by cleanup (lib.sh)
cleanup_hook() {
    del_netns
    [[ -n "${PCAP_FILE:-}" ]] && rm -f "$PCAP_FILE"
}
bench_init ubp
PKTGEN_T=(timeout "$PCAP_TIMEOUT" "$PKTGEN")
AFP_SEND="$WORK/afp_send"

# tcpdump_counts LOG: CAPT and DROP from tcpdump's closing lines
tcpdump_counts() {
    CAPT=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$1" | tail -n 1)
    DROP=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$1" | tail -n 1)
}

# capture_rate N CASE LOGDIR SENT: the frames tcpdump captured (LOGDIR/td.err)
# over the sender's time (LOGDIR/tx.out) as RATE, printed as run N's CASE line
capture_rate() {
    local n=$1 c=$2 d=$3 sent=$4 secs
    tcpdump_counts "$d/td.err"
    secs=$(summary_field "$d/tx.out" tx seconds)
    if [[ -z "$secs" || -z "$CAPT" ]]; then
        echo "run $n: $c: no figure (sender '$secs' s, tcpdump captured '$CAPT')" >&2
        tail -n 3 "$d/td.err" "$d/tx.err" >&2 || true
        return 1
    fi
    RATE=$(awk -v c="$CAPT" -v s="$secs" 'BEGIN { printf "%.3f", c / s / 1e6 }')
    printf 'run %d  %-9s tcpdump %8.3f Mpps  (%s captured, %s dropped of %s sent)\n' \
        "$n" "$c" "$RATE" "$CAPT" "${DROP:-?}" "$sent"
}

# start_tcpdump LOGSTEM CPU CMD...: start tcpdump (CMD...) on CPU and wait
# until it listens; sets TDPID.
start_tcpdump() {
    local stem=$1 cpu=$2
    shift 2
    timeout "$PCAP_TIMEOUT" taskset -c "$cpu" "$@" >"$stem.out" 2>"$stem.err" &
    TDPID=$!; PIDS+=("$TDPID")
    if ! wait_for "$stem.err" "listening on" 15 "$TDPID"; then
        echo "tcpdump did not start listening within 15 s:" >&2
        tail -n 5 "$stem.err" >&2
        stop_pid "$TDPID"; forget "$TDPID"
        return 1
    fi
}

# stop_tcpdump: SIGINT (tcpdump prints its counts and exits), bounded
stop_tcpdump() {
    kill -INT "$(pgrep -P "$TDPID" 2>/dev/null || echo "$TDPID")" 2>/dev/null || true
    reap_within "$TDPID" 10
}

PIPE=() MON=() PEER=() FILE_R=()

run_pipe() {
    local n=$1 d="$WORK/pipe_$1"
    mkdir -p "$d"
    new_unetmap_dir
    UNETMAP_DIR=$UNETMAP_DIR_CUR start_tcpdump "$d/td" 1 "$RUN" "$TCPDUMP" -ni 'netmap:bp}0' \
        -c "$PCAP_COUNT" -w /dev/null "$FILTER" || { drop_unetmap_dir; return 1; }
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i 'netmap:bp{0' -f tx -l 60 -b 512 -n "$PCAP_COUNT" \
        -a 0 >"$d/tx.out" 2>"$d/tx.err" &
    local txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: pipe sender"
    reap_within "$TDPID" 30
    tcpdump_counts "$d/td.err"
    local tx; tx=$(summary_field "$d/tx.out" tx mpps)
    drop_unetmap_dir
    if [[ -z "$tx" || "$CAPT" != "$PCAP_COUNT" ]]; then
        echo "run $n: pipe: no figure (sender '$tx' Mpps, tcpdump captured '$CAPT')" >&2
        tail -n 3 "$d/td.err" "$d/tx.err" >&2 || true
        return 1
    fi
    PIPE+=("$tx")
    printf 'run %d  pipe      tcpdump %8.3f Mpps  (%s frames, all captured)\n' "$n" "$tx" "$CAPT"
}

run_monitor() {
    local n=$1 d="$WORK/mon_$1"
    mkdir -p "$d"
    new_unetmap_dir
    start_rx "$d/rx" vale0:b || { drop_unetmap_dir; return 1; }
    local rxpid=$RXPID
    UNETMAP_DIR=$UNETMAP_DIR_CUR start_tcpdump "$d/td" 1 "$RUN" "$TCPDUMP" -ni 'vale0:b/r' \
        -w /dev/null "$FILTER" || { stop_pid "$rxpid"; forget "$rxpid"; drop_unetmap_dir; return 1; }
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:a -f tx -l 60 -b 512 -n "$PCAP_COUNT" -a 0 \
        -D ff:ff:ff:ff:ff:ff >"$d/tx.out" 2>"$d/tx.err" &
    local txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: VALE sender"
    reap_within "$rxpid" 15
    stop_tcpdump
    drop_unetmap_dir
    capture_rate "$n" monitor "$d" "$PCAP_COUNT" || return 1
    MON+=("$RATE")
}

run_peer() {
    local n=$1 d="$WORK/peer_$1"
    mkdir -p "$d"
    start_tcpdump "$d/td" 1 ip netns exec "$NS_B" "$TCPDUMP" -ni vB -w /dev/null "$FILTER" || return 1
    timeout "$PCAP_TIMEOUT" ip netns exec "$NS_A" taskset -c 0 "$AFP_SEND" -i vA -n "$PEER_COUNT" -l 60 \
        -b 256 -a 0 >"$d/tx.out" 2>"$d/tx.err" &
    local txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: afp_send"
    stop_tcpdump
    capture_rate "$n" veth "$d" "$PEER_COUNT" || return 1
    PEER+=("$RATE")
}

# make_file: PCAP_FILE, FILE_COUNT frames captured from a pipe by tcpdump
make_file() {
    local d="$WORK/file"
    mkdir -p "$d"
    PCAP_FILE=$(mktemp /dev/shm/unetmap-bench-pcap.XXXXXX)
    chmod 0666 "$PCAP_FILE"  # written by user tcpdump
    new_unetmap_dir
    UNETMAP_DIR=$UNETMAP_DIR_CUR start_tcpdump "$d/td" 1 "$RUN" "$TCPDUMP" -ni 'netmap:bf}0' \
        -c "$FILE_COUNT" -w "$PCAP_FILE" || die "cannot capture the file case's file"
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i 'netmap:bf{0' -f tx -l 60 -n "$FILE_COUNT" \
        >"$d/tx.out" 2>"$d/tx.err" &
    local txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "the file's sender"
    reap_within "$TDPID" 30
    drop_unetmap_dir
    tcpdump_counts "$d/td.err"
    [[ "$CAPT" == "$FILE_COUNT" ]] || die "the file case's file has '$CAPT' frames, not $FILE_COUNT"
}

run_file() {
    local n=$1 t0 t1 mpps
    t0=$(date +%s.%N)
    taskset -c 1 "$TCPDUMP" -nr "$PCAP_FILE" -w /dev/null "$FILTER" 2>/dev/null || { echo "run $n: tcpdump -r failed" >&2; return 1; }
    t1=$(date +%s.%N)
    mpps=$(awk -v c="$FILE_COUNT" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", c / (b - a) / 1e6 }')
    FILE_R+=("$mpps")
    printf 'run %d  file      tcpdump %8.3f Mpps  (-r of a file of %s frames)\n' "$n" "$mpps" "$FILE_COUNT"
}

out=$("$CC" -O2 -Wall -o "$AFP_SEND" "$HERE/afp_send.c" 2>&1) || die "cannot compile afp_send.c: $out"
setup_link || die "$LINK_WHY"
make_file
echo "tcpdump $("$TCPDUMP" --version 2>&1 | head -n 1 | cut -d' ' -f3), filter '$FILTER', -w /dev/null, 60-byte frames, $RUNS runs"
for ((n = 1; n <= RUNS; n++)); do
    run_pipe "$n" || true
    run_monitor "$n" || true
    run_peer "$n" || true
    run_file "$n" || true
done
p=$(median "${PIPE[@]}") m=$(median "${MON[@]}") v=$(median "${PEER[@]}") f=$(median "${FILE_R[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "-" }'; }
echo "medians: pipe ${p:--} Mpps, VALE monitor ${m:--} Mpps, stock tcpdump on veth ${v:--} Mpps," \
    "tcpdump -r ${f:--} Mpps"
echo "ratios: to the veth: pipe $(ratio "$p" "$v"), monitor $(ratio "$m" "$v");" \
    "to tcpdump -r: pipe $(ratio "$p" "$f"), monitor $(ratio "$m" "$f")"
