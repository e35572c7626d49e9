#!/usr/bin/env bash
# python.sh - the Python module's batch API (import netmap) against scapy, in
# the same run: Mpps of one Python process (pinned to one core) sending and
# receiving 60-byte frames.
#
#   unetmap send   python: NetmapDesc.send(numpy array of 1024 frames) on
#                  netmap:p{0 for PY_SECONDS, drained by pkt-gen -f rx on p}0
#   unetmap recv   pkt-gen -f tx -n PY_COUNT on netmap:p{0 into python's
#                  NetmapDesc.recv_into(numpy buffer) on p}0
#   scapy sendp    sendp() of SCAPY_COUNT frames on one end of a veth pair
#   scapy sniff    sniff() on the other end while an AF_PACKET socket sends
#                  into the first for SNIFF_SECONDS (sniff is the bottleneck)
#
# The veth pair (vpa<pid>/vpb<pid>, IPv6 off) is made and deleted by the
# script; it carries only this traffic. Prints per-run figures, the medians
# and the ratios unetmap/scapy.
#
# Environment:
#   BUILD_DIR      unetmap build dir with tools/pkt-gen and python/netmap*.so
#                  (default: <this dir>/../build)
#   RUNS           runs (default 3; one run takes ~15 s)
#   PYTHON         interpreter the module was built for (default /usr/bin/python3)
#   PY_SECONDS     unetmap send: seconds per run (default 2)
#   PY_COUNT       unetmap recv: frames per run (default 60000000)
#   SCAPY_COUNT    scapy sendp: frames per run (default 10000)
#   SNIFF_SECONDS  scapy sniff: seconds of traffic per run (default 3)
#   KEEP_LOGS=1    keep the logs directory (path printed at the end)
set -euo pipefail

ME=python.sh
RUNS=${RUNS:-3}
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
PYTHON=${PYTHON:-/usr/bin/python3}
PY_SECONDS=${PY_SECONDS:-2}
PY_COUNT=${PY_COUNT:-60000000}
SCAPY_COUNT=${SCAPY_COUNT:-10000}
SNIFF_SECONDS=${SNIFF_SECONDS:-3}
HELPER="$HERE/python_bench.py"

check_env "cmake --build $BUILD_DIR --target pkt-gen netmap_python" RUNS PY_SECONDS PY_COUNT SCAPY_COUNT SNIFF_SECONDS
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON)"
PYMOD="$BUILD_DIR/python"
compgen -G "$PYMOD/netmap*.so" >/dev/null || die "the netmap module is not built in $PYMOD (cmake --build $BUILD_DIR --target netmap_python)"
PYTHONPATH="$PYMOD" "$PYTHON" -c 'import netmap, numpy' 2>/dev/null ||
    die "$PYTHON cannot import netmap and numpy from $PYMOD (apt-get install python3-numpy)"
HAVE_SCAPY=1
SCAPY_WHY=""
"$PYTHON" -c 'import scapy.all' 2>/dev/null || { HAVE_SCAPY=0; SCAPY_WHY="scapy not importable by $PYTHON (apt-get install python3-scapy)"; }
PIN0=() PIN1=()
if command -v taskset >/dev/null; then PIN0=(taskset -c 0) PIN1=(taskset -c 1); fi

bench_init ubpy
PKTGEN_T=(timeout 60 "$PKTGEN")
VA="vpa$$" VB="vpb$$"
VETH=0
cleanup_hook() { ((VETH)) && ip link del "$VA" 2>/dev/null; return 0; }

setup_veth() {
    local out i
    out=$( { ip link add "$VA" type veth peer name "$VB" &&
             sysctl -qw "net.ipv6.conf.$VA.disable_ipv6=1" "net.ipv6.conf.$VB.disable_ipv6=1" &&
             ip link set "$VA" up && ip link set "$VB" up; } 2>&1 ) || { SCAPY_WHY="cannot set up a veth pair: $out"; return 1; }
    VETH=1
    for ((i = 0; i < 200; i++)); do
        ip -o link show dev "$VA" | grep -q 'state UP' && ip -o link show dev "$VB" | grep -q 'state UP' && return 0
        sleep 0.05
    done
    SCAPY_WHY="the veth pair did not come up within 10 s"
    return 1
}

field() { summary_field "$1" "$2" "$3"; }   # LOG FUNC FIELD

U_TX=() U_RX=() S_TX=() S_RX=()

run_py_send() {
    local n=$1 d="$WORK/s$1" pid mpps
    mkdir -p "$d"
    new_unetmap_dir
    start_rx "$d/rx" 'netmap:p}0' "run $n: pkt-gen receiver" || { drop_unetmap_dir; return 1; }
    UNETMAP_DIR=$UNETMAP_DIR_CUR PYTHONPATH="$PYMOD" timeout 60 "${PIN0[@]}" "$PYTHON" "$HELPER" \
        send 'netmap:p{0' "$PY_SECONDS" 60 >"$d/py.out" 2>"$d/py.err" &
    pid=$!; PIDS+=("$pid")
    wait_child "$pid" "run $n: python sender"
    reap_within "$RXPID" 10
    drop_unetmap_dir
    mpps=$(field "$d/py.out" py-send mpps)
    [[ -n "$mpps" ]] || { echo "run $n: python send: no figure" >&2; tail -n 5 "$d/py.err" >&2; return 1; }
    U_TX+=("$mpps")
    printf 'run %d/%d  unetmap python send  %8.3f Mpps  (%s frames in %s s; pkt-gen rx got %s)\n' "$n" "$RUNS" \
        "$mpps" "$(field "$d/py.out" py-send packets)" "$(field "$d/py.out" py-send seconds)" "$(field "$d/rx.out" rx packets)"
}

run_py_recv() {
    local n=$1 d="$WORK/r$1" pid txpid mpps
    mkdir -p "$d"
    new_unetmap_dir
    UNETMAP_DIR=$UNETMAP_DIR_CUR PYTHONPATH="$PYMOD" timeout 60 "${PIN1[@]}" "$PYTHON" "$HELPER" \
        recv 'netmap:p}0' "$PY_COUNT" >"$d/py.out" 2>"$d/py.err" &
    pid=$!; PIDS+=("$pid")
    if ! wait_for "$d/py.err" ready 10 "$pid"; then
        echo "run $n: python receiver not ready within 10 s" >&2; tail -n 5 "$d/py.err" >&2
        stop_pid "$pid"; forget "$pid"; drop_unetmap_dir
        return 1
    fi
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i 'netmap:p{0' -f tx -l 60 -n "$PY_COUNT" -a 0 \
        >"$d/tx.out" 2>"$d/tx.err" &
    txpid=$!; PIDS+=("$txpid")
    wait_child "$txpid" "run $n: pkt-gen sender"
    reap_within "$pid" 15
    drop_unetmap_dir
    mpps=$(field "$d/py.out" py-recv mpps)
    [[ -n "$mpps" && "$mpps" != 0.0000 ]] || { echo "run $n: python recv: no figure" >&2; tail -n 5 "$d/py.err" "$d/tx.err" >&2; return 1; }
    U_RX+=("$mpps")
    printf 'run %d/%d  unetmap python recv  %8.3f Mpps  (%s frames in %s s; pkt-gen tx %s Mpps)\n' "$n" "$RUNS" \
        "$mpps" "$(field "$d/py.out" py-recv packets)" "$(field "$d/py.out" py-recv seconds)" "$(field "$d/tx.out" tx mpps)"
}

run_scapy_send() {
    local n=$1 d="$WORK/ss$1" mpps
    mkdir -p "$d"
    timeout 120 "${PIN0[@]}" "$PYTHON" "$HELPER" sendp "$VA" "$SCAPY_COUNT" 60 >"$d/out" 2>"$d/err" || true
    mpps=$(field "$d/out" scapy-sendp mpps)
    [[ -n "$mpps" ]] || { echo "run $n: scapy sendp: no figure" >&2; tail -n 5 "$d/err" >&2; return 1; }
    S_TX+=("$mpps")
    printf 'run %d/%d  scapy sendp          %8.4f Mpps  (%s frames in %s s)\n' "$n" "$RUNS" "$mpps" \
        "$(field "$d/out" scapy-sendp packets)" "$(field "$d/out" scapy-sendp seconds)"
}

run_scapy_sniff() {
    local n=$1 d="$WORK/sn$1" pid spid mpps
    mkdir -p "$d"
    timeout 60 "${PIN1[@]}" "$PYTHON" "$HELPER" sniff "$VB" 100000000 $((SNIFF_SECONDS + 1)) >"$d/out" 2>"$d/err" &
    pid=$!; PIDS+=("$pid")
    if ! wait_for "$d/err" ready 20 "$pid"; then
        echo "run $n: scapy sniff not ready within 20 s" >&2; tail -n 5 "$d/err" >&2
        stop_pid "$pid"; forget "$pid"
        return 1
    fi
    timeout 60 "${PIN0[@]}" "$PYTHON" "$HELPER" rawsend "$VA" "$SNIFF_SECONDS" 60 >"$d/tx.out" 2>"$d/tx.err" &
    spid=$!; PIDS+=("$spid")
    wait_child "$spid" "run $n: AF_PACKET sender"
    reap_within "$pid" 15
    mpps=$(field "$d/out" scapy-sniff mpps)
    [[ -n "$mpps" && "$mpps" != 0.0000 ]] || { echo "run $n: scapy sniff: no figure" >&2; tail -n 5 "$d/err" >&2; return 1; }
    S_RX+=("$mpps")
    printf 'run %d/%d  scapy sniff          %8.4f Mpps  (%s frames in %s s; offered %s Mpps)\n' "$n" "$RUNS" "$mpps" \
        "$(field "$d/out" scapy-sniff packets)" "$(field "$d/out" scapy-sniff seconds)" "$(field "$d/tx.out" raw-send mpps)"
}

if ((HAVE_SCAPY)); then setup_veth || HAVE_SCAPY=0; fi

echo "python 60B frames, one process per side, each pinned to one core:"
echo "  unetmap: python NetmapDesc.send / recv_into (numpy, 1024 frames per call) <-> pkt-gen over netmap:p{0/p}0"
if ((HAVE_SCAPY)); then
    echo "  scapy:   sendp($SCAPY_COUNT frames) on $VA, sniff on $VB fed by an AF_PACKET sender ($SNIFF_SECONDS s)"
else
    echo "  scapy:   not measured: $SCAPY_WHY"
fi
echo "runs: $RUNS"
echo

for ((r = 1; r <= RUNS; r++)); do
    run_py_send "$r" || echo "run $r/$RUNS  unetmap python send  FAILED"
    run_py_recv "$r" || echo "run $r/$RUNS  unetmap python recv  FAILED"
    if ((HAVE_SCAPY)); then
        run_scapy_send "$r" || echo "run $r/$RUNS  scapy sendp  FAILED"
        run_scapy_sniff "$r" || echo "run $r/$RUNS  scapy sniff  FAILED"
    fi
done

echo
echo "unetmap python send Mpps per run: ${U_TX[*]:-none}"
echo "unetmap python recv Mpps per run: ${U_RX[*]:-none}"
((HAVE_SCAPY)) && echo "scapy sendp Mpps per run: ${S_TX[*]:-none}" && echo "scapy sniff Mpps per run: ${S_RX[*]:-none}"

((${#U_TX[@]} > 0 || ${#U_RX[@]} > 0)) || die "no successful unetmap run"
# median with 4 decimals (scapy's figures are below lib.sh's 3)
median4() {
    (($# > 0)) || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.4f\n", m }'
}
# report WHAT UNETMAP_FIGURES -- SCAPY_FIGURES: the medians and their ratio
report() {
    local what=$1 v side=u um sm
    local u=() s=()
    shift
    for v in "$@"; do
        if [[ "$v" == -- ]]; then side=s; continue; fi
        if [[ $side == u ]]; then u+=("$v"); else s+=("$v"); fi
    done
    if ((${#u[@]} == 0)); then
        echo "python $what: unetmap FAILED"
        return 0
    fi
    um=$(median4 "${u[@]}")
    if ((${#s[@]} > 0)); then
        sm=$(median4 "${s[@]}")
        echo "python $what, 60B, Mpps per core: unetmap median $um, scapy median $sm, ratio $um/$sm = $(awk -v a="$um" -v b="$sm" 'BEGIN { printf "%.0f", a / b }')"
    else
        echo "python $what, 60B, Mpps per core: unetmap median $um, scapy not measured (${SCAPY_WHY:-all its runs failed})"
    fi
}
report "send (NetmapDesc.send vs scapy sendp)" "${U_TX[@]}" -- "${S_TX[@]}"
report "recv (NetmapDesc.recv_into vs scapy sniff)" "${U_RX[@]}" -- "${S_RX[@]}"
