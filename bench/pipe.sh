#!/usr/bin/env bash
# pipe.sh - netmap-pipe throughput between two processes (unetmap pkt-gen tx -> rx)
# against the peer, DPDK testpmd over net_memif between two processes
# (client txonly -> server rxonly), in the same run. Runs alternate unetmap and
# memif; prints per-run figures, medians and the ratio.
#
# Environment:
#   BUILD_DIR      unetmap build dir (default: <this dir>/../build)
#   RUNS           runs of each system (default 5)
#   PIPE_COUNT     packets per unetmap run (default 600000000, a few seconds)
#   PIPE_TIMEOUT   upper bound in seconds for one unetmap run (default 120)
#   MEMIF_SECONDS  lifetime of the memif client per run (default 20; EAL start-up
#                  takes ~3 s and testpmd's stats loop here often prints every 2 s)
#   TESTPMD        testpmd binary (default dpdk-testpmd)
#   KEEP_LOGS=1    keep the logs directory (path printed at the end)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-"$HERE/../build"}
PKTGEN="$BUILD_DIR/tools/pkt-gen"
RUNS=${RUNS:-5}
PIPE_COUNT=${PIPE_COUNT:-600000000}
PIPE_TIMEOUT=${PIPE_TIMEOUT:-120}
MEMIF_SECONDS=${MEMIF_SECONDS:-20}
TESTPMD=${TESTPMD:-dpdk-testpmd}
KEEP_LOGS=${KEEP_LOGS:-0}

die() { echo "pipe.sh: $*" >&2; exit 1; }

[[ -x "$PKTGEN" ]] || die "pkt-gen not found at $PKTGEN (build it: cd $BUILD_DIR && cmake .. && make pkt-gen, or set BUILD_DIR)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$PIPE_COUNT" =~ ^[1-9][0-9]*$ ]] || die "PIPE_COUNT must be a positive integer (got '$PIPE_COUNT')"
[[ "$MEMIF_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "MEMIF_SECONDS must be a positive integer (got '$MEMIF_SECONDS')"
command -v timeout >/dev/null || die "timeout (coreutils) is required"

HAVE_TESTPMD=0
if command -v "$TESTPMD" >/dev/null 2>&1; then HAVE_TESTPMD=1; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unetmap-bench-pipe.XXXXXX")
TAG="ubp$$"                 # unique DPDK --file-prefix stem for this invocation
PIDS=()                     # every background child we started
UNETMAP_DIR_CUR=""          # runtime dir of the unetmap run in progress

# Stop one child: TERM (timeout forwards it to its command), then KILL it and its
# direct children if it is still there after ~3 s.
stop_pid() {
    local pid=$1 kids i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" $kids 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# drop a reaped child from PIDS (so a recycled pid is never signalled)
forget() {
    local p out=()
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || out+=("$p"); done
    PIDS=("${out[@]}")
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    { for pid in "${PIDS[@]}"; do stop_pid "$pid"; done; } 2>/dev/null
    [[ -n "$UNETMAP_DIR_CUR" ]] && rm -rf "$UNETMAP_DIR_CUR"
    rm -rf /var/run/dpdk/"$TAG"_* 2>/dev/null || true
    if [[ "$KEEP_LOGS" == 1 ]]; then
        echo "logs kept in $WORK" >&3
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
exec 3>&2                   # the real stderr, for traps firing inside 2>/dev/null blocks
trap cleanup EXIT
trap 'echo "pipe.sh: interrupted" >&3; exit 130' INT
trap 'echo "pipe.sh: terminated" >&3; exit 143' TERM

# wait_for LOG PATTERN SECONDS PID: wait until fixed string PATTERN appears in
# LOG; fails on timeout or if PID exits first.
wait_for() {
    local log=$1 pat=$2 secs=$3 pid=$4 i
    for ((i = 0; i < secs * 20; i++)); do
        grep -qF -- "$pat" "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { grep -qF -- "$pat" "$log" 2>/dev/null && return 0; return 1; }
        sleep 0.05
    done
    return 1
}

# median of the numbers given as arguments (prints nothing if none)
median() {
    (($# > 0)) || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2;
              printf "%.3f\n", m }'
}

summary_field() {  # summary_field LOG FUNC FIELD
    sed -n "/^summary: func=$2 /s/.*[[:space:]]$3=\([0-9.]*\).*/\1/p" "$1" | tail -n 1
}

U_RX=() U_TX=() M_RX=()

run_unetmap() {
    local n=$1 d="$WORK/u$1" rxpid txpid rc rx tx secs pkts
    mkdir -p "$d"
    UNETMAP_DIR_CUR=$(mktemp -d "${TMPDIR:-/tmp}/unetmap-pipe.XXXXXX")
    export UNETMAP_DIR=$UNETMAP_DIR_CUR

    timeout "$PIPE_TIMEOUT" "$PKTGEN" -i 'netmap:p}0' -f rx -W -a 1 >"$d/rx.out" 2>"$d/rx.err" &
    rxpid=$!; PIDS+=("$rxpid")
    if ! wait_for "$d/rx.err" 'netmap:p}0: ' 10 "$rxpid" || ! grep -q 'rings of' "$d/rx.err"; then
        echo "run $n: unetmap receiver did not open netmap:p}0 within 10 s:" >&2
        tail -n 5 "$d/rx.err" >&2
        stop_pid "$rxpid"; forget "$rxpid"
        rm -rf "$UNETMAP_DIR_CUR"; UNETMAP_DIR_CUR=""
        return 1
    fi

    timeout "$PIPE_TIMEOUT" "$PKTGEN" -i 'netmap:p{0' -f tx -l 60 -b 512 -n "$PIPE_COUNT" -a 0 >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    rc=0; wait "$txpid" || rc=$?; forget "$txpid"
    ((rc == 0)) || echo "run $n: unetmap sender exited with status $rc" >&2
    rc=0; wait "$rxpid" || rc=$?; forget "$rxpid"
    ((rc == 0)) || echo "run $n: unetmap receiver exited with status $rc" >&2

    rm -rf "$UNETMAP_DIR_CUR"; UNETMAP_DIR_CUR=""
    unset UNETMAP_DIR

    rx=$(summary_field "$d/rx.out" rx mpps)
    tx=$(summary_field "$d/tx.out" tx mpps)
    pkts=$(summary_field "$d/rx.out" rx packets)
    secs=$(summary_field "$d/rx.out" rx seconds)
    if [[ -z "$rx" || -z "$tx" ]]; then
        echo "run $n: unetmap: no summary line from pkt-gen (rx='$rx' tx='$tx')" >&2
        tail -n 3 "$d/rx.out" "$d/rx.err" "$d/tx.out" "$d/tx.err" >&2 || true
        return 1
    fi
    U_RX+=("$rx"); U_TX+=("$tx")
    printf 'run %d/%d  unetmap  rx %8.3f Mpps  (tx %.3f; %s pkts received in %s s)\n' \
        "$n" "$RUNS" "$rx" "$tx" "$pkts" "$secs"
}

run_memif() {
    local n=$1 d="$WORK/m$1" spid cpid sock samples steady k med tag
    mkdir -p "$d"
    sock="$d/memif.sock"
    tag="${TAG}_$n"
    local common=(--no-huge -m 512 --no-pci)
    local app=(--total-num-mbufs=32768 --txpkts=64 --stats-period 1 --nb-cores=1)

    timeout $((MEMIF_SECONDS + 30)) "$TESTPMD" -l 0,1 --main-lcore 1 "${common[@]}" \
        --file-prefix="${tag}_srv" --vdev="net_memif0,role=server,socket=$sock" -- \
        "${app[@]}" --forward-mode=rxonly >"$d/srv.log" 2>&1 </dev/null &
    spid=$!; PIDS+=("$spid")
    # ready = forwarding started and the stats loop printed its first figures
    if ! wait_for "$d/srv.log" 'Rx-pps:' 20 "$spid"; then
        echo "run $n: memif server (testpmd) not ready within 20 s:" >&2
        tail -n 5 "$d/srv.log" >&2
        stop_pid "$spid"; forget "$spid"
        return 1
    fi

    timeout "$MEMIF_SECONDS" "$TESTPMD" -l 0,1 --main-lcore 0 "${common[@]}" \
        --file-prefix="${tag}_cli" --vdev="net_memif0,role=client,socket=$sock" -- \
        "${app[@]}" --forward-mode=txonly >"$d/cli.log" 2>&1 </dev/null &
    cpid=$!; PIDS+=("$cpid")
    # 124 (killed by timeout) is the normal end; 2>/dev/null hides bash's report
    # of the server's segfault when the client goes (a known testpmd/memif quirk)
    {
        wait "$cpid" || true
        stop_pid "$spid"               # it may have segfaulted already: fine
    } 2>/dev/null
    forget "$cpid"; forget "$spid"
    rm -rf /var/run/dpdk/"$tag"_srv /var/run/dpdk/"$tag"_cli 2>/dev/null || true

    # server Rx-pps samples (--stats-period 1) while traffic flowed; drop the first and
    # last two (ramp-up / partial seconds) and take the median of the rest
    mapfile -t samples < <(grep -o 'Rx-pps: *[0-9]*' "$d/srv.log" | awk '$2 > 0 { print $2 }' || true)
    k=2
    while ((${#samples[@]} - 2 * k < 1 && k > 0)); do k=$((k - 1)); done
    if ((${#samples[@]} == 0)); then
        echo "run $n: memif: no traffic seen by the server (see logs; KEEP_LOGS=1)" >&2
        tail -n 5 "$d/cli.log" >&2
        return 1
    fi
    steady=("${samples[@]:k:${#samples[@]}-2*k}")
    med=$(median "${steady[@]}")
    med=$(awk -v v="$med" 'BEGIN { printf "%.3f", v / 1e6 }')
    if ((${#steady[@]} < 3)); then
        echo "run $n: memif: only ${#steady[@]} steady sample(s); consider a larger MEMIF_SECONDS" >&2
    fi
    M_RX+=("$med")
    printf 'run %d/%d  memif    rx %8.3f Mpps  (median of %d steady stats samples of %d)\n' \
        "$n" "$RUNS" "$med" "${#steady[@]}" "${#samples[@]}"
}

echo "pipe 60B, 2 processes: unetmap pkt-gen netmap:p{0 -> netmap:p}0 ($PIPE_COUNT pkts/run)"
if ((HAVE_TESTPMD)); then
    echo "peer: DPDK $TESTPMD net_memif client txonly -> server rxonly (${MEMIF_SECONDS} s/run)"
else
    echo "peer: DPDK memif could not be measured: $TESTPMD not found (install it: apt-get install dpdk-dev)"
fi
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_unetmap "$r" || echo "run $r/$RUNS  unetmap  FAILED"
    if ((HAVE_TESTPMD)); then
        run_memif "$r" || echo "run $r/$RUNS  memif    FAILED"
    fi
done

echo
echo "unetmap rx Mpps per run: ${U_RX[*]:-none}"
echo "unetmap tx Mpps per run: ${U_TX[*]:-none}"
((HAVE_TESTPMD)) && echo "memif   rx Mpps per run: ${M_RX[*]:-none}"

((${#U_RX[@]} > 0)) || die "no successful unetmap run"
UM=$(median "${U_RX[@]}")
UT=$(median "${U_TX[@]}")
if ((${#M_RX[@]} > 0)); then
    MM=$(median "${M_RX[@]}")
    RATIO=$(awk -v a="$UM" -v b="$MM" 'BEGIN { printf "%.2f", a / b }')
    echo "pipe 60B (2 processes): unetmap median $UM Mpps (tx $UT), DPDK memif median $MM Mpps, ratio $UM/$MM = $RATIO"
else
    if ((HAVE_TESTPMD)); then why="all memif runs failed"
    else why="$TESTPMD not found; apt-get install dpdk-dev"; fi
    echo "pipe 60B (2 processes): unetmap median $UM Mpps (tx $UT), DPDK memif not measured ($why)"
fi
