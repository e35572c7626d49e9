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

ME=pipe.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
PIPE_COUNT=${PIPE_COUNT:-600000000}
PIPE_TIMEOUT=${PIPE_TIMEOUT:-120}

check_env "cd $BUILD_DIR && cmake .. && make pkt-gen" RUNS PIPE_COUNT MEMIF_SECONDS
bench_init ubp
PKTGEN_T=(timeout "$PIPE_TIMEOUT" "$PKTGEN")

U_RX=() U_TX=()

run_unetmap() {
    local n=$1 d="$WORK/u$1" txpid
    mkdir -p "$d"
    new_unetmap_dir

    if ! start_rx "$d/rx" 'netmap:p}0' "run $n: unetmap receiver"; then
        drop_unetmap_dir
        return 1
    fi

    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i 'netmap:p{0' -f tx -l 60 -b 512 -n "$PIPE_COUNT" -a 0 \
        >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: unetmap sender"
    wait_child "$RXPID" "run $n: unetmap receiver"
    drop_unetmap_dir

    rxtx_summary "$d"
    if [[ -z "$RX" || -z "$TX" ]]; then
        rxtx_failed "$d" "run $n: unetmap: no summary line from pkt-gen"
        return 1
    fi
    U_RX+=("$RX"); U_TX+=("$TX")
    printf 'run %d/%d  unetmap  rx %8.3f Mpps  (tx %.3f; %s pkts received in %s s)\n' \
        "$n" "$RUNS" "$RX" "$TX" "$RXP" "$SECS"
}

echo "pipe 60B, 2 processes: unetmap pkt-gen netmap:p{0 -> netmap:p}0 ($PIPE_COUNT pkts/run)"
memif_peer ""
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_unetmap "$r" || echo "run $r/$RUNS  unetmap  FAILED"
    if ((HAVE_TESTPMD)); then
        run_memif "$r" "$WORK/m$r" memif || echo "run $r/$RUNS  memif    FAILED"
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
