#!/usr/bin/env bash
# monitor.sh - the cost of one copy monitor on a VALE port, with pkt-gen, the
# monitored and unmonitored cases measured in the same run:
#   1. baseline: pkt-gen tx on vale0:a (CPU 0), 60-byte frames to broadcast
#      (with two ports they reach b only) -> pkt-gen rx on vale0:b (CPU 1);
#   2. the same with a third process, pkt-gen rx on "vale0:b/r" (copies of what b
#      receives), started and open before the sender starts;
#   3. the same with the monitor on the sender side, "vale0:a/t" (copies of what a
#      transmits).
# The monitor is pinned to CPU 1, which it shares with the receiver (the machine
# has 2 cores and CPU 0 is the sender's). Port a is a persistent VALE port
# (vale-ctl -n a; -a vale0:a) in every case, because a monitor can only be opened
# on a port that exists, and the sender must start after the monitor is open.
# Each run in a fresh UNETMAP_DIR; runs alternate the cases; prints the per-run
# figures and the medians.
#
# Environment:
#   BUILD_DIR    unetmap build dir (default: <this dir>/../build)
#   RUNS         runs of each case (default 5)
#   MON_COUNT    packets sent per run (default 80000000: 1.3-3.2 s at 25-60 Mpps)
#   MON_TIMEOUT  upper bound in seconds for one pkt-gen process (default 120)
#   KEEP_LOGS=1  keep the logs directory (path printed at the end)
set -euo pipefail

ME=monitor.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
MON_COUNT=${MON_COUNT:-80000000}
MON_TIMEOUT=${MON_TIMEOUT:-120}
VALECTL="$BUILD_DIR/tools/vale-ctl"

MAC_A=00:00:00:00:00:0a
MAC_BCAST=ff:ff:ff:ff:ff:ff

check_env "cmake -S . -B build && cmake --build build --target pkt-gen vale-ctl" \
    RUNS MON_COUNT MON_TIMEOUT
[[ -x "$VALECTL" ]] || die "vale-ctl not found at $VALECTL (build it: cmake --build build --target vale-ctl, or set BUILD_DIR)"

bench_init ubm
PKTGEN_T=(timeout "$MON_TIMEOUT" "$PKTGEN")

# per-case results: receiver (RX), sender (TX) and monitor (MON) Mpps per run
BASE_RX=() BASE_TX=()
R_RX=() R_TX=() R_MON=()
T_RX=() T_TX=() T_MON=()

# run_case N CASE: one run of CASE (base, r or t)
run_case() {
    local n=$1 c=$2 d="$WORK/${2}_$1" mport="" label rxpid mpid="" txpid out mon="" monp=""
    case $c in
        base) label="baseline      " ;;
        r) label="/r monitor    "; mport=vale0:b/r ;;
        t) label="/t monitor    "; mport=vale0:a/t ;;
    esac
    mkdir -p "$d"
    new_unetmap_dir

    # the sender's port exists before anyone opens it (needed by the /t monitor)
    if ! out=$( { UNETMAP_DIR=$UNETMAP_DIR_CUR timeout 10 "$VALECTL" -n a &&
                  UNETMAP_DIR=$UNETMAP_DIR_CUR timeout 10 "$VALECTL" -a vale0:a; } 2>&1 ); then
        echo "run $n: cannot make persistent port vale0:a: $out" >&2
        drop_unetmap_dir
        return 1
    fi
    start_rx "$d/rx" vale0:b || { drop_unetmap_dir; return 1; }
    rxpid=$RXPID
    if [[ -n "$mport" ]]; then
        # the monitor, CPU 1 too; start_rx returns once its "rings of" line is out
        if ! start_rx "$d/mon" "$mport" monitor; then
            stop_pid "$rxpid"; forget "$rxpid"; drop_unetmap_dir
            return 1
        fi
        mpid=$RXPID
    fi

    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:a -f tx -l 60 -b 512 -n "$MON_COUNT" -a 0 \
        -S "$MAC_A" -D "$MAC_BCAST" >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: sender"
    # -W: receivers end one second after their last frame; bound them anyway
    reap_within "$rxpid" 10
    ((REAP_RC == 0)) || echo "run $n: receiver exited with status $REAP_RC" >&2
    if [[ -n "$mpid" ]]; then
        reap_within "$mpid" 10
        ((REAP_RC == 0)) || echo "run $n: monitor $mport exited with status $REAP_RC" >&2
    fi
    drop_unetmap_dir

    rxtx_summary "$d"
    if [[ -z "$RX" || -z "$TX" || -z "$RXP" || "$RXP" == 0 ]]; then
        rxtx_failed "$d" "run $n: $c: no traffic or no summary line from pkt-gen"
        return 1
    fi
    if [[ -n "$mport" ]]; then
        mon=$(summary_field "$d/mon.out" rx mpps)
        monp=$(summary_field "$d/mon.out" rx packets)
        if [[ -z "$mon" || -z "$monp" || "$monp" == 0 ]]; then
            echo "run $n: monitor $mport got nothing or printed no summary" >&2
            tail -n 3 "$d/mon.out" "$d/mon.err" >&2 || true
            return 1
        fi
    fi
    case $c in
        base) BASE_RX+=("$RX"); BASE_TX+=("$TX") ;;
        r) R_RX+=("$RX"); R_TX+=("$TX"); R_MON+=("$mon") ;;
        t) T_RX+=("$RX"); T_TX+=("$TX"); T_MON+=("$mon") ;;
    esac
    if [[ -n "$mport" ]]; then
        printf 'run %d/%d  %s rx %8.3f Mpps  monitor %8.3f Mpps  (tx %.3f; %s sent, %s received, monitor %s, rx period %s s)\n' \
            "$n" "$RUNS" "$label" "$RX" "$mon" "$TX" "$TXP" "$RXP" "$monp" "$SECS"
    else
        printf 'run %d/%d  %s rx %8.3f Mpps                         (tx %.3f; %s sent, %s received, rx period %s s)\n' \
            "$n" "$RUNS" "$label" "$RX" "$TX" "$TXP" "$RXP" "$SECS"
    fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# ------------------------------------------------------------------------ main
echo "copy monitor on VALE switch vale0, pkt-gen, fresh UNETMAP_DIR per run, $MON_COUNT 60B frames/run:"
echo "  baseline    tx vale0:a (CPU 0) -> ff:ff:ff:ff:ff:ff -> rx vale0:b (CPU 1)"
echo "  /r monitor  the same + rx on vale0:b/r (CPU 1, shared with the receiver)"
echo "  /t monitor  the same + rx on vale0:a/t (CPU 1, shared with the receiver)"
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_case "$r" base || echo "run $r/$RUNS  baseline       FAILED"
    run_case "$r" r || echo "run $r/$RUNS  /r monitor     FAILED"
    run_case "$r" t || echo "run $r/$RUNS  /t monitor     FAILED"
done

echo
echo "baseline    rx Mpps per run:      ${BASE_RX[*]:-none}"
echo "/r monitor  rx Mpps per run:      ${R_RX[*]:-none}"
echo "/r monitor  monitor Mpps per run: ${R_MON[*]:-none}"
echo "/t monitor  rx Mpps per run:      ${T_RX[*]:-none}"
echo "/t monitor  monitor Mpps per run: ${T_MON[*]:-none}"
echo

FAILED=0
X="" Y="" W=""
if ((${#BASE_RX[@]} > 0)); then
    X=$(median "${BASE_RX[@]}")
    line="monitor on VALE 60B: baseline median $X Mpps"
else
    FAILED=1; line="monitor on VALE 60B: baseline not measured (all runs failed)"
fi
if ((${#R_RX[@]} > 0)); then
    Y=$(median "${R_RX[@]}")
    line+=", with /r monitor median $Y Mpps (monitor got $(median "${R_MON[@]}") Mpps)"
    [[ -n "$X" ]] && line+=", ratio Y/X = $(ratio "$Y" "$X")"
else
    FAILED=1; line+=", with /r monitor not measured (all runs failed)"
fi
if ((${#T_RX[@]} > 0)); then
    W=$(median "${T_RX[@]}")
    line+="; with /t monitor median $W Mpps (monitor got $(median "${T_MON[@]}") Mpps)"
    [[ -n "$X" ]] && line+=", ratio W/X = $(ratio "$W" "$X")"
else
    FAILED=1; line+="; with /t monitor not measured (all runs failed)"
fi
echo "$line"
if ((${#BASE_TX[@]} > 0 && ${#R_TX[@]} > 0 && ${#T_TX[@]} > 0)); then
    echo "senders: baseline median $(median "${BASE_TX[@]}") Mpps, with /r monitor $(median "${R_TX[@]}") Mpps, with /t monitor $(median "${T_TX[@]}") Mpps"
fi
exit "$FAILED"
