#!/usr/bin/env bash
# pcap_port.sh - pcap-file ports (pcap:NAME): frames written to and read from a
# capture file in /dev/shm, unetmap pkt-gen on a pcap: port against the peer,
# DPDK testpmd on its pcap PMD (net_pcap: txonly into tx_pcap=FILE, rxonly from
# rx_pcap=FILE), in the same run. Runs alternate; prints per-run figures,
# medians and ratios.
#
# unetmap's figures are pkt-gen's (frames over the whole run); testpmd's are the
# median of its per-second rates while frames flowed, the first and last
# seconds left out (its reads end when the file does: the file must hold a few
# seconds of frames, hence the default count).
#
# Environment:
#   BUILD_DIR     unetmap build dir (default: <this dir>/../build)
#   RUNS          runs of each system (default 3)
#   PCAP_COUNT    60-byte frames per file (default 60000000: 4.6 GB in /dev/shm)
#   PCAP_SECONDS  lifetime of testpmd's write runs (default 6)
#   TESTPMD       testpmd binary (default dpdk-testpmd)
#   KEEP_LOGS=1   keep the logs directory (path printed at the end)
set -euo pipefail

ME=pcap_port.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
PCAP_COUNT=${PCAP_COUNT:-60000000}
PCAP_SECONDS=${PCAP_SECONDS:-6}

check_env "cd $BUILD_DIR && cmake .. && make pkt-gen" RUNS PCAP_COUNT PCAP_SECONDS
bench_init ubpc
FILES=$(mktemp -d /dev/shm/unetmap-bench-pcapfiles.XXXXXX)
cleanup_hook() { rm -rf "$FILES"; }
need=$((PCAP_COUNT * 76 * 2 / 1024 / 1024))
avail=$(df -Pm /dev/shm | awk 'NR == 2 { print $4 }')
((avail > need)) || die "/dev/shm has $avail MB free, the run needs $need (lower PCAP_COUNT)"
PKTGEN_T=(timeout 300 "$PKTGEN")

U_W=() U_R=() D_W=() D_R=()

# run_unetmap N: pkt-gen writes PCAP_COUNT frames to pcap:out, then reads them back.
run_unetmap() {
    local n=$1 d="$WORK/u$1" w r
    mkdir -p "$d"
    rm -f "$FILES/out.pcap"
    new_unetmap_dir
    UNETMAP_DIR=$UNETMAP_DIR_CUR UNETMAP_PCAP_DIR=$FILES "${PKTGEN_T[@]}" -i pcap:out/T -f tx -l 60 -b 512 \
        -n "$PCAP_COUNT" -a 0 >"$d/tx.out" 2>"$d/tx.err" || true
    UNETMAP_DIR=$UNETMAP_DIR_CUR UNETMAP_PCAP_DIR=$FILES "${PKTGEN_T[@]}" -i pcap:out/R -f rx -b 512 \
        -n "$PCAP_COUNT" -a 0 >"$d/rx.out" 2>"$d/rx.err" || true
    drop_unetmap_dir
    w=$(summary_field "$d/tx.out" tx mpps)
    r=$(summary_field "$d/rx.out" rx mpps)
    if [[ -z "$w" || -z "$r" || "$(summary_field "$d/rx.out" rx packets)" != "$PCAP_COUNT" ]]; then
        echo "run $n: unetmap: no summary, or not every frame read back" >&2
        tail -n 3 "$d/tx.err" "$d/rx.err" >&2 || true
        return 1
    fi
    U_W+=("$w"); U_R+=("$r")
    printf 'run %d/%d  unetmap  write %7.3f Mpps  read %7.3f Mpps\n' "$n" "$RUNS" "$w" "$r"
}

# testpmd LOG SECONDS VDEV MODE: one testpmd on CPU 0 (main) and 1 (forwarding).
testpmd() {
    timeout -s INT "$2" "$TESTPMD" -l 0,1 --main-lcore 0 --no-huge -m 512 --no-pci \
        --file-prefix="${TAG}_$RANDOM" --vdev "$3" -- --total-num-mbufs=32768 --stats-period 1 \
        --nb-cores=1 --forward-mode="$4" >"$1" 2>&1 </dev/null || true
}

# run_dpdk N: testpmd txonly into a capture file for PCAP_SECONDS, then rxonly
# from unetmap's file (until the file ends).
run_dpdk() {
    local n=$1 d="$WORK/d$1" w r secs
    mkdir -p "$d"
    rm -f "$FILES/dout.pcap"
    testpmd "$d/tx.log" "$PCAP_SECONDS" "net_pcap0,tx_pcap=$FILES/dout.pcap" txonly
    rm -f "$FILES/dout.pcap"
    [[ -f "$FILES/out.pcap" ]] || { echo "run $n: no file to read (unetmap's run failed)" >&2; return 1; }
    secs=$((PCAP_COUNT / 5000000 + 8))  # at 5 Mpps or more, with start-up
    testpmd "$d/rx.log" "$secs" "net_pcap0,rx_pcap=$FILES/out.pcap" rxonly
    read -r w _ < <(steady_median "$d/tx.log" Tx-pps) || w=""
    read -r r _ < <(steady_median "$d/rx.log" Rx-pps) || r=""
    if [[ -z "$w" || -z "$r" ]]; then
        echo "run $n: testpmd: no per-second rates" >&2
        tail -n 5 "$d/tx.log" "$d/rx.log" >&2 || true
        return 1
    fi
    D_W+=("$w"); D_R+=("$r")
    printf 'run %d/%d  DPDK     write %7.3f Mpps  read %7.3f Mpps\n' "$n" "$RUNS" "$w" "$r"
}

echo "pcap-file port, 60-byte frames, files in /dev/shm: unetmap pkt-gen -f tx to pcap:out, -f rx from it ($PCAP_COUNT frames)"
if ((HAVE_TESTPMD)); then
    echo "peer: DPDK $TESTPMD net_pcap: txonly into tx_pcap= (${PCAP_SECONDS} s), rxonly from rx_pcap= (unetmap's file)"
else
    echo "peer: DPDK net_pcap could not be measured: $TESTPMD not found (apt-get install dpdk-dev)"
fi
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_unetmap "$r" || echo "run $r/$RUNS  unetmap  FAILED"
    if ((HAVE_TESTPMD)); then run_dpdk "$r" || echo "run $r/$RUNS  DPDK     FAILED"; fi
done
echo
((${#U_W[@]} > 0)) || die "no successful unetmap run"
UW=$(median "${U_W[@]}") UR=$(median "${U_R[@]}")
if ((${#D_W[@]} > 0)); then
    DW=$(median "${D_W[@]}") DR=$(median "${D_R[@]}")
    echo "pcap port write: unetmap median $UW Mpps, DPDK net_pcap median $DW Mpps, ratio $(awk -v a="$UW" -v b="$DW" 'BEGIN { printf "%.2f", a / b }')"
    echo "pcap port read:  unetmap median $UR Mpps, DPDK net_pcap median $DR Mpps, ratio $(awk -v a="$UR" -v b="$DR" 'BEGIN { printf "%.2f", a / b }')"
else
    echo "pcap port write: unetmap median $UW Mpps; read: unetmap median $UR Mpps; DPDK not measured"
fi
