#!/usr/bin/env bash
# vhost.sh - vhost-user ports on a VALE switch beside DPDK's own vhost-user
# backend, in the same run. The guests are DPDK's testpmd with
# net_virtio_user (no hugepages: ../shared/peers), the "VM" of every case;
# its forwarding lcore is CPU 1. Cases, for each frame size:
#   1. vm->switch: testpmd txonly -> vale0:a (vhost-user, its worker on
#                  CPU 0) -> VALE -> pkt-gen rx on vale0:p (CPU VS_RX_CPU,
#                  a ring of VS_RX_SLOTS slots). Figure: what pkt-gen
#                  received, median of its steady per-second rates.
#   2. switch->vm: pkt-gen tx on vale0:q (CPU SV_TX_CPU) -> VALE -> vale0:a
#                  -> testpmd rxonly. Figure: testpmd's Rx-pps.
#   3. vm->vm:     testpmd txonly -> vale0:a -> VALE -> vale0:b -> a second
#                  testpmd rxonly (its forwarding lcore CPU 0; b's worker on
#                  CPU VV_B_CPU). Four busy processes on two cores. Figure:
#                  the receiver's Rx-pps.
#                  By default (VV_B_CPU=1) a worker never shares its core
#                  with the guest it hands frames to: on one core two busy
#                  pollers take turns at time-slice ends only, so a handoff
#                  there moves one 1024-descriptor virtqueue per slice.
#                  pkt-gen rx (case 1) sleeps in poll while its ring is
#                  empty, so beside the worker it takes only the CPU it uses;
#                  pkt-gen tx (case 2) is unpaced and never sleeps.
#   4. peer:       testpmd net_vhost <-> testpmd net_virtio_user (DPDK's
#                  backend in a testpmd of its own, two processes), both ways:
#                  virtio_user txonly -> vhost rxonly, vhost txonly ->
#                  virtio_user rxonly. Figure: the receiver's Rx-pps.
#                  And the same three topologies as cases 1-3 through
#                  DPDK's own switch (run_peer_switch: testpmd io forwarding
#                  between net_vhost and net_memif ports, three processes).
#      peer_half:  DPDK's pair again, a busy loop sharing its backend's
#                  core: the CPU budget unetmap's worker has in case 2,
#                  where the sender shares its core.
#   5. tso:        VM to VM with 64 KB TCP frames and TSO on (bench/vhost_tso:
#                  two virtio-net drivers acking checksum and TSO offloads,
#                  a sender and a receiver thread) through vale0:a -> vale0:b,
#                  beside DPDK's testpmd with two net_vhost ports (tso=1) and
#                  io forwarding between them. Figure: Gbit/s received.
#                  DPDK's vhost delivers the frames whole but without their
#                  TSO header (its ports do not offer TSO to testpmd).
# Each unetmap run in a fresh UNETMAP_DIR. Prints per-run figures, medians,
# and the ratio of each unetmap case to the peer's same direction.
# Cases 1, 2 and 4 (DPDK's pair) also print the CPU one frame costs the
# backend: its CPU time over the steady seconds (/proc/PID/stat) over the
# frames received. unetmap's worker sleeps when it finds nothing and shares
# its core; DPDK's backend polls a core of its own, so its figure is an upper
# bound (a core over the frames).
#
# Environment:
#   BUILD_DIR      unetmap build dir (default: <this dir>/../build)
#   RUNS           runs of each case (default 3)
#   VHOST_SECONDS  seconds of traffic per run (default 8)
#   SIZES          frame sizes, testpmd's --txpkts (default "64 1514")
#   VQ_SIZE        virtqueue size of every virtio_user "VM" and testpmd's rxd/txd,
#                  the peer's included (default 1024: on two cores a guest
#                  polls once per time slice, and 256 descriptors are a few
#                  hundred microseconds of traffic)
#   VHOST_SLOTS    slots of the vhost-user ports' rings (default 16384: as the
#                  receiver's, room for what arrives while the worker waits
#                  for its CPU)
#   VS_RX_SLOTS    slots of pkt-gen's ring in case 1 (default 16384)
#   VS_RX_CPU, SV_TX_CPU
#                  CPU of pkt-gen in cases 1 and 2 (default 0: beside the
#                  worker, the guest alone on CPU 1, as DPDK's pair has a
#                  core each side; 1 puts it beside the guest)
#   SV_RATE        pkt-gen's rate in case 2 (its -R, frames per second; default
#                  unpaced: VALE drops what the port's ring cannot take, and the
#                  sender beside the worker spends its share of the core on
#                  frames that are dropped)
#   VV_B_CPU       CPU of worker b in case 3 (default 1: each worker beside
#                  the other VM; 0 puts both workers on CPU 0)
#   PEER_FWD_CPU, PEER_RX_CPU
#                  CPUs of DPDK's switch and of the receiver in run_peer_switch
#                  (defaults 0 and the switch's; the sender is on the other)
#   CASES          which cases run (default all: "vs sv vv peer peer_half
#                  peer_vm_app peer_app_vm peer_vm_vm tso")
#   KEEP_LOGS=1    keep the logs directory (path printed at the end)
set -euo pipefail

ME=vhost.sh
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
VHOST_SECONDS=${VHOST_SECONDS:-8}
SIZES=${SIZES:-"64 1514"}
VHOST_SLOTS=${VHOST_SLOTS:-16384}
VS_RX_SLOTS=${VS_RX_SLOTS:-16384}
VQ_SIZE=${VQ_SIZE:-1024}
CASES=${CASES:-"vs sv vv peer peer_half peer_vm_app peer_app_vm peer_vm_vm tso"}
VS_RX_CPU=${VS_RX_CPU:-0}
SV_TX_CPU=${SV_TX_CPU:-0}
SV_RATE=${SV_RATE:-}
VV_B_CPU=${VV_B_CPU:-1}
PEER_FWD_CPU=${PEER_FWD_CPU:-0}
VALECTL="$BUILD_DIR/tools/vale-ctl"
TSO="$BUILD_DIR/bench/vhost_tso"

check_env "bash scripts/build.sh" RUNS VHOST_SECONDS VHOST_SLOTS VS_RX_SLOTS VQ_SIZE
PEER_RX_CPU=${PEER_RX_CPU:-$PEER_FWD_CPU}
for v in VS_RX_CPU SV_TX_CPU VV_B_CPU PEER_FWD_CPU PEER_RX_CPU; do [[ ${!v} == [01] ]] || die "$v is a CPU: 0 or 1 (got '${!v}')"; done
((HAVE_TESTPMD)) || die "$TESTPMD not found (apt-get install dpdk-dev)"
[[ -x "$VALECTL" ]] || die "vale-ctl not found at $VALECTL"
[[ -x "$BUILD_DIR/unetmap-vhost" ]] || die "unetmap-vhost not found in $BUILD_DIR"
bench_init vh
PKTGEN_T=(timeout $((VHOST_SECONDS + 30)) "$PKTGEN")
EAL=(--no-huge -m 512 --no-pci)
APP=(--total-num-mbufs=32768 --stats-period 1 --nb-cores=1 --rxd="$VQ_SIZE" --txd="$VQ_SIZE")

# testpmd LOG TAG MAIN_LCORE VDEV MODE SIZE [SECONDS]: a testpmd in the
# background (its forwarding lcore is the other CPU); sets TPID.
testpmd() {
    local log=$1 tag=$2 main=$3 vdev=$4 mode=$5 size=$6 secs=${7:-$((VHOST_SECONDS + 4))}
    [[ $vdev == net_virtio_user* ]] && vdev+=",queue_size=$VQ_SIZE"
    timeout "$secs" "$TESTPMD" -l 0,1 --main-lcore "$main" "${EAL[@]}" --file-prefix="$tag" \
        --vdev="$vdev" -- "${APP[@]}" --forward-mode="$mode" --txpkts="$size" >"$log" 2>&1 </dev/null &
    TPID=$!; PIDS+=("$TPID")
}

# attach NAME [CPU]: vale0:NAME a vhost-user port at $UNETMAP_DIR_CUR/NAME.sock,
# its worker pinned to CPU (default 0); sets WPID, the worker's pid.
attach() {
    UNETMAP_DIR=$UNETMAP_DIR_CUR "$VALECTL" -a "vale0:$1,vhost=$UNETMAP_DIR_CUR/$1.sock,slots=$VHOST_SLOTS" || return 1
    local w
    w=$(pgrep -f "unetmap-vhost vale0 $1 " | head -1)
    WPID=$w
    [[ -n "$w" ]] && taskset -p -c "${2:-0}" "$w" >/dev/null
}

# drop_ports: detach vale0:a and vale0:b (their workers stop), then drop the
# runtime directory (a worker still running when it goes would make it
# again, empty).
drop_ports() {
    local p
    for p in a b; do UNETMAP_DIR=$UNETMAP_DIR_CUR "$VALECTL" -d "vale0:$p" >/dev/null 2>&1 || true; done
    drop_unetmap_dir
}

declare -A FIG  # FIG[case/size] = "v1 v2 ..."
record() { FIG[$1]="${FIG[$1]:-} $2"; }

# cpu_window PID OUT: in the background (its pid in CWPID), the CPU (in
# cores: user + system time over wall time) that PID and its threads use
# from 3 s after now to 2 s before VHOST_SECONDS are over (the steady
# seconds the medians take), written to OUT. Polling processes use a whole
# core whatever they do; the worker sleeps when it finds nothing, so its
# share is what its frames cost.
cpu_window() {
    local pid=$1 out=$2 len=$((VHOST_SECONDS > 6 ? VHOST_SECONDS - 5 : 1))
    (
        tick=$(getconf CLK_TCK)
        # utime and stime: fields 14 and 15, 12 and 13 after "pid (comm) "
        used() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null; }
        sleep 3; a=$(used) || exit 0; t0=$(date +%s.%N)
        sleep "$len"; b=$(used) || exit 0; t1=$(date +%s.%N)
        [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" -v t="$tick" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.3f\n", (b - a) / t / (e - s) }' >"$out"
    ) &
    CWPID=$!; PIDS+=("$CWPID")
}

# cpu_per_frame KEY SIZE CORES_FILE MPPS LABEL: once cpu_window is over,
# records FIG[cpu_KEY/SIZE], the nanoseconds of CPU one frame cost
# (cores / Mpps * 1000); prints them.
cpu_per_frame() {
    local c
    if [[ -n ${CWPID:-} ]]; then wait "$CWPID" 2>/dev/null || true; forget "$CWPID"; CWPID=; fi
    c=$(cat "$3" 2>/dev/null) || return 0
    [[ -n $c ]] || return 0
    local ns
    ns=$(awk -v c="$c" -v m="$4" 'BEGIN { if (m > 0) printf "%.0f", c / m * 1000 }')
    [[ -n $ns ]] || return 0
    record "cpu_$1/$2" "$ns"
    printf '          %s uses %s cores: %s ns of CPU a frame\n' "$5" "$c" "$ns"
}

# record_rx N SIZE KEY LABEL LOG [LOGS...]: the median of testpmd's steady
# Rx-pps in LOG, recorded as FIG[KEY/SIZE], printed with LABEL and left in
# RX; without one, the last lines of LOGS and 1.
record_rx() {
    local n=$1 size=$2 key=$3 label=$4 log=$5 rx k all
    shift 5
    if ! read -r rx k all < <(steady_median "$log" Rx-pps); then
        echo "run $n: $label $size: no figure" >&2; tail -n 3 "$@" >&2; return 1
    fi
    RX=$rx
    record "$key/$size" "$rx"
    printf 'run %d/%d  %5s B  %-19s %7.3f Mpps  (testpmd rx, median of %s of %s s)\n' \
        "$n" "$RUNS" "$size" "$label" "$rx" "$k" "$all"
}

run_vm_switch() {
    local n=$1 size=$2 d="$WORK/vs_${2}_$1" rx k all
    mkdir -p "$d"
    new_unetmap_dir
    attach a || { drop_ports; return 1; }
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i "vale0:p@conf:slots=$VS_RX_SLOTS" -f rx -a "$VS_RX_CPU" \
        >"$d/rx.out" 2>"$d/rx.err" &
    local rxpid=$!; PIDS+=("$rxpid")
    wait_for "$d/rx.err" "rings of" 10 "$rxpid" || { echo "run $n: receiver did not start" >&2; return 1; }
    local w=$WPID
    testpmd "$d/vm.log" "${TAG}_${n}_vs" 0 "net_virtio_user0,path=$UNETMAP_DIR_CUR/a.sock" txonly "$size"
    local tp=$TPID
    [[ -n $w ]] && cpu_window "$w" "$d/worker.cpu"
    wait "$tp" 2>/dev/null || true; forget "$tp"
    stop_pid "$rxpid"; forget "$rxpid"
    drop_ports
    if ! read -r rx k all < <(pktgen_median "$d/rx.out"); then
        echo "run $n: vm->switch $size: no figure" >&2; tail -n 3 "$d/rx.err" "$d/vm.log" >&2; return 1
    fi
    record "vm->switch/$size" "$rx"
    printf 'run %d/%d  %5s B  unetmap vm->switch  %7.3f Mpps  (pkt-gen rx, median of %s of %s s)\n' \
        "$n" "$RUNS" "$size" "$rx" "$k" "$all"
    cpu_per_frame "vm->switch" "$size" "$d/worker.cpu" "$rx" "the worker"
}

run_switch_vm() {
    local n=$1 size=$2 d="$WORK/sv_${2}_$1" plen=$(($2 - 4))
    mkdir -p "$d"
    new_unetmap_dir
    attach a || { drop_ports; return 1; }
    testpmd "$d/vm.log" "${TAG}_${n}_sv" 0 "net_virtio_user0,path=$UNETMAP_DIR_CUR/a.sock" rxonly "$size"
    local tp=$TPID
    wait_for "$d/vm.log" "Rx-pps:" 20 "$tp" || { echo "run $n: testpmd not ready" >&2; return 1; }
    local w=$WPID
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i vale0:q -f tx -l "$plen" -a "$SV_TX_CPU" ${SV_RATE:+-R "$SV_RATE"} \
        >"$d/tx.out" 2>"$d/tx.err" &
    local txpid=$!; PIDS+=("$txpid")
    [[ -n $w ]] && cpu_window "$w" "$d/worker.cpu"
    wait "$tp" 2>/dev/null || true; forget "$tp"
    stop_pid "$txpid"; forget "$txpid"
    drop_ports
    record_rx "$n" "$size" "switch->vm" "unetmap switch->vm" "$d/vm.log" "$d/tx.err" "$d/vm.log" || return 1
    cpu_per_frame "switch->vm" "$size" "$d/worker.cpu" "$RX" "the worker"
}

run_vm_vm() {
    local n=$1 size=$2 d="$WORK/vv_${2}_$1"
    mkdir -p "$d"
    new_unetmap_dir
    # Each worker beside the other VM, never its own guest: CPU 0 has worker a
    # and guest b's poller, CPU 1 worker b and guest a's. Every handoff (guest
    # a -> a -> b -> guest b) crosses cores; on one core, a worker and the
    # guest it feeds take turns only at time-slice ends (one virtqueue each).
    if ! attach a 0 || ! attach b "$VV_B_CPU"; then drop_ports; return 1; fi
    testpmd "$d/b.log" "${TAG}_${n}_vvb" 1 "net_virtio_user0,path=$UNETMAP_DIR_CUR/b.sock" rxonly "$size" \
        $((VHOST_SECONDS + 8))
    local tb=$TPID
    wait_for "$d/b.log" "Rx-pps:" 20 "$tb" || { echo "run $n: testpmd b not ready" >&2; return 1; }
    testpmd "$d/a.log" "${TAG}_${n}_vva" 0 "net_virtio_user0,path=$UNETMAP_DIR_CUR/a.sock" txonly "$size"
    local ta=$TPID
    wait "$ta" 2>/dev/null || true; forget "$ta"
    stop_pid "$tb"; forget "$tb"
    drop_ports
    record_rx "$n" "$size" "vm->vm" "unetmap vm->vm" "$d/b.log" "$d/a.log" "$d/b.log"
}

# The peer: DPDK's vhost backend (net_vhost, in testpmd) and net_virtio_user.
# DIR: "to_host" (virtio_user txonly -> vhost rxonly) or "to_guest". With
# SHARED=1 a busy loop shares the backend's core (CPU 0) all along, as
# pkt-gen's sender shares the worker's in case 2: DPDK's pair on unetmap's
# CPU budget (case peer_half).
run_peer() {
    local n=$1 size=$2 dir=$3 shared=${4:-0} key=peer_$3 d="$WORK/peer_${3}_${2}_$1" hmode vmode rxlog spin=
    ((shared)) && key=peer_half_$dir d="$WORK/peer_half_${dir}_${size}_$n"
    mkdir -p "$d"
    if ((shared)); then
        taskset -c 0 timeout $((VHOST_SECONDS + 20)) bash -c 'while :; do :; done' &
        spin=$!; PIDS+=("$spin")
    fi
    if [[ $dir == to_host ]]; then hmode=rxonly vmode=txonly rxlog=host.log
    else hmode=txonly vmode=rxonly rxlog=vm.log; fi
    testpmd "$d/host.log" "${TAG}_${n}_ph" 1 "net_vhost0,iface=$d/vhost.sock,queues=1" "$hmode" "$size" \
        $((VHOST_SECONDS + 8))
    local th=$TPID
    wait_for "$d/host.log" "vhost-user server: socket created" 20 "$th" ||
        wait_for "$d/host.log" "Port 0" 5 "$th" || true
    testpmd "$d/vm.log" "${TAG}_${n}_pv" 0 "net_virtio_user0,path=$d/vhost.sock,queues=1" "$vmode" "$size"
    local tv=$TPID hp
    hp=$(pgrep -P "$th" | head -1)
    [[ -n $hp ]] && cpu_window "$hp" "$d/backend.cpu"
    wait "$tv" 2>/dev/null || true; forget "$tv"
    stop_pid "$th"; forget "$th"
    if [[ -n $spin ]]; then stop_pid "$spin"; forget "$spin"; fi
    record_rx "$n" "$size" "$key" "DPDK $dir${spin:+ shared}" "$d/$rxlog" "$d/host.log" "$d/vm.log" || return 1
    cpu_per_frame "$key" "$size" "$d/backend.cpu" "$RX" "DPDK's backend (polling${spin:+ a shared core})"
}

# The peers of cases 1-3 in their own topology: DPDK's vhost switch,
# testpmd io forwarding between two ports (as OVS-DPDK or VPP sits between
# VMs), a VM's port net_vhost, an application's net_memif (DPDK's shared
# memory packet interface; the application a testpmd over net_memif):
#   vm_vm:  guest a (virtio_user txonly) -> vhost0 -> io fwd -> vhost1 -> guest b (rxonly)
#   vm_app: guest (txonly) -> vhost0 -> io fwd -> memif1 -> testpmd rxonly
#   app_vm: testpmd txonly -> memif0 -> io fwd -> vhost1 -> guest (rxonly)
# Three busy pollers on two cores, as unetmap's three or four: the switch
# forwards on CPU PEER_FWD_CPU, the sender on the other, the receiver on
# PEER_RX_CPU (default: beside the switch). Figure: the receiver's Rx-pps.
run_peer_switch() {
    local n=$1 size=$2 topo=$3 fc=$PEER_FWD_CPU rc=$PEER_RX_CPU
    local d="$WORK/peer_${3}_${2}_$1" in out
    mkdir -p "$d"
    in=net_vhost0,iface=$d/in.sock,queues=1 out=net_vhost1,iface=$d/out.sock,queues=1
    [[ $topo == app_vm ]] && in=net_memif0,role=server,socket=$d/in.sock
    [[ $topo == vm_app ]] && out=net_memif1,role=server,socket=$d/out.sock
    timeout $((VHOST_SECONDS + 12)) "$TESTPMD" -l 0,1 --main-lcore $((1 - fc)) "${EAL[@]}" -m 1024 \
        --file-prefix="${TAG}_${n}_${topo}_s" --vdev="$in" --vdev="$out" -- "${APP[@]}" --forward-mode=io \
        >"$d/switch.log" 2>&1 </dev/null &
    local ts=$!; PIDS+=("$ts")
    wait_for "$d/switch.log" "Rx-pps:" 20 "$ts" || { echo "run $n: peer switch not ready" >&2; return 1; }
    in=net_virtio_user0,path=$d/in.sock,queues=1 out=net_virtio_user0,path=$d/out.sock,queues=1
    [[ $topo == app_vm ]] && in=net_memif0,role=client,socket=$d/in.sock
    [[ $topo == vm_app ]] && out=net_memif0,role=client,socket=$d/out.sock
    testpmd "$d/rx.log" "${TAG}_${n}_${topo}_r" $((1 - rc)) "$out" rxonly "$size" $((VHOST_SECONDS + 8))
    local tr=$TPID
    wait_for "$d/rx.log" "Rx-pps:" 20 "$tr" || { echo "run $n: peer receiver not ready" >&2; return 1; }
    testpmd "$d/tx.log" "${TAG}_${n}_${topo}_t" "$fc" "$in" txonly "$size"
    local tt=$TPID
    wait "$tt" 2>/dev/null || true; forget "$tt"
    stop_pid "$tr"; forget "$tr"
    stop_pid "$ts"; forget "$ts"
    record_rx "$n" "$size" "peer_$topo" "DPDK io fwd $topo" "$d/rx.log" "$d/switch.log" "$d/rx.log"
}

run_tso() {
    local n=$1 d="$WORK/tso_$1" g
    mkdir -p "$d"
    new_unetmap_dir
    if ! attach a || ! attach b; then drop_ports; return 1; fi
    timeout $((VHOST_SECONDS + 30)) "$TSO" "$UNETMAP_DIR_CUR/a.sock" "$UNETMAP_DIR_CUR/b.sock" "$VHOST_SECONDS" \
        >"$d/unetmap.out" 2>&1 || true
    drop_ports
    if g=$(sed -n 's/^median: \([0-9.]*\) Gbit\/s/\1/p' "$d/unetmap.out") && [[ -n "$g" ]]; then
        record "tso" "$g"
        printf 'run %d/%d  64 KB TSO  unetmap vm->vm      %7.2f Gbit/s  (%s)\n' "$n" "$RUNS" "$g" \
            "$(grep -c 'with their TSO header' "$d/unetmap.out") s, $(tail -n 2 "$d/unetmap.out" | head -1 | sed 's/.*: //')"
    else
        echo "run $n: tso: no figure" >&2; tail -n 3 "$d/unetmap.out" >&2
    fi
    local sock="$d/vh"
    timeout $((VHOST_SECONDS + 20)) "$TESTPMD" -l 0,1 --main-lcore 0 "${EAL[@]}" -m 1024 --file-prefix="${TAG}_${n}_tso" \
        --vdev="net_vhost0,iface=${sock}0.sock,queues=1,tso=1" --vdev="net_vhost1,iface=${sock}1.sock,queues=1,tso=1" \
        -- --total-num-mbufs=65536 --nb-cores=1 --forward-mode=io --tx-offloads=0x800c --stats-period 1 \
        >"$d/testpmd.log" 2>&1 </dev/null &
    local tp=$!; PIDS+=("$tp")
    # (vhost_tso connects as soon as the sockets are there, retrying for 10 s.)
    timeout $((VHOST_SECONDS + 30)) "$TSO" "${sock}0.sock" "${sock}1.sock" "$VHOST_SECONDS" >"$d/dpdk.out" 2>&1 || true
    stop_pid "$tp"; forget "$tp"
    if g=$(sed -n 's/^median: \([0-9.]*\) Gbit\/s/\1/p' "$d/dpdk.out") && [[ -n "$g" ]]; then
        record "peer_tso" "$g"
        printf 'run %d/%d  64 KB TSO  DPDK vhost io fwd   %7.2f Gbit/s  (%s)\n' "$n" "$RUNS" "$g" \
            "$(tail -n 2 "$d/dpdk.out" | head -1 | sed 's/.*: //')"
    else
        echo "run $n: peer tso: no figure" >&2; tail -n 3 "$d/dpdk.out" "$d/testpmd.log" >&2
    fi
}

echo "unetmap: testpmd net_virtio_user <-> vale0 vhost-user ports (worker a on CPU 0, b on CPU $VV_B_CPU) <-> pkt-gen (CPU $VS_RX_CPU rx, $SV_TX_CPU tx${SV_RATE:+ at $SV_RATE frames/s}) / testpmd"
echo "peer: DPDK testpmd net_vhost <-> testpmd net_virtio_user; ${VHOST_SECONDS} s per run, $RUNS runs"
want() { [[ " $CASES " == *" $1 "* ]]; }
for n in $(seq 1 "$RUNS"); do
    for size in $SIZES; do
        want vs && { run_vm_switch "$n" "$size" || true; }
        want sv && { run_switch_vm "$n" "$size" || true; }
        want vv && { run_vm_vm "$n" "$size" || true; }
        want peer && { run_peer "$n" "$size" to_host || true; }
        want peer && { run_peer "$n" "$size" to_guest || true; }
        want peer_half && { run_peer "$n" "$size" to_host 1 || true; }
        want peer_half && { run_peer "$n" "$size" to_guest 1 || true; }
        for topo in vm_app app_vm vm_vm; do want "peer_$topo" && { run_peer_switch "$n" "$size" "$topo" || true; }; done
    done
    want tso && [[ -x "$TSO" ]] && { run_tso "$n" || true; }
done

echo
echo "medians (Mpps):"
for size in $SIZES; do
    # shellcheck disable=SC2086
    vs=$(median ${FIG[vm->switch/$size]:-}) sv=$(median ${FIG[switch->vm/$size]:-})
    # shellcheck disable=SC2086
    vv=$(median ${FIG[vm->vm/$size]:-}) ph=$(median ${FIG[peer_to_host/$size]:-})
    # shellcheck disable=SC2086
    pg=$(median ${FIG[peer_to_guest/$size]:-}) pv=$(median ${FIG[peer_vm_vm/$size]:-})
    # shellcheck disable=SC2086
    pa=$(median ${FIG[peer_vm_app/$size]:-}) pb=$(median ${FIG[peer_app_vm/$size]:-})
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
    printf '%5s B  vm->switch %s (x%s of DPDK virtio->vhost %s)  switch->vm %s (x%s of DPDK vhost->virtio %s)  vm->vm %s\n' \
        "$size" "${vs:--}" "$(ratio "$vs" "$ph")" "${ph:--}" "${sv:--}" "$(ratio "$sv" "$pg")" "${pg:--}" "${vv:--}"
    # shellcheck disable=SC2086
    cvs=$(median ${FIG[cpu_vm->switch/$size]:-}) csv=$(median ${FIG[cpu_switch->vm/$size]:-})
    # shellcheck disable=SC2086
    cph=$(median ${FIG[cpu_peer_to_host/$size]:-}) cpg=$(median ${FIG[cpu_peer_to_guest/$size]:-})
    whole() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v }'; }
    printf '%5s B  CPU a frame (ns): worker vm->switch %s (DPDK backend %s)  switch->vm %s (DPDK backend %s)\n' \
        "$size" "$(whole "$cvs")" "$(whole "$cph")" "$(whole "$csv")" "$(whole "$cpg")"
    # shellcheck disable=SC2086
    hh=$(median ${FIG[peer_half_to_host/$size]:-}) hg=$(median ${FIG[peer_half_to_guest/$size]:-})
    # (Case 1's worker shares CPU 0 with a receiver that sleeps when it
    # finds nothing: a busy loop is not its budget, so no ratio to it.)
    [[ -n $hh$hg ]] && printf '%5s B  DPDK pair, its backend sharing CPU 0 with a busy loop: to the guest %s (switch->vm x%s)  to the backend %s\n' \
        "$size" "${hg:--}" "$(ratio "$sv" "$hg")" "${hh:--}"
    printf '%5s B  in the same topology (DPDK testpmd io fwd between vhost/memif ports, 3 processes): vm->switch x%s of %s  switch->vm x%s of %s  vm->vm x%s of %s\n' \
        "$size" "$(ratio "$vs" "$pa")" "${pa:--}" "$(ratio "$sv" "$pb")" "${pb:--}" "$(ratio "$vv" "$pv")" "${pv:--}"
done
if [[ -n "${FIG[tso]:-}${FIG[peer_tso]:-}" ]]; then
    # shellcheck disable=SC2086
    t=$(median ${FIG[tso]:-}) pt=$(median ${FIG[peer_tso]:-})
    printf '64 KB TSO  vm->vm %s Gbit/s (x%s of DPDK vhost io forwarding %s Gbit/s)\n' "${t:--}" \
        "$(awk -v a="$t" -v b="$pt" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }')" "${pt:--}"
fi
