# lib.sh - shell shared by bench/pipe.sh, vale.sh and monitor.sh, which set ME (their
# name, for messages) and source it: defaults of the common environment, checks,
# child processes and cleanup, log parsing and the DPDK memif peer run.
# shellcheck shell=bash

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-"$HERE/../build"}
PKTGEN="$BUILD_DIR/tools/pkt-gen"
RUNS=${RUNS:-5}
MEMIF_SECONDS=${MEMIF_SECONDS:-20}
TESTPMD=${TESTPMD:-dpdk-testpmd}
KEEP_LOGS=${KEEP_LOGS:-0}

die() { echo "$ME: $*" >&2; exit 1; }

# check_env HINT VAR...: pkt-gen is built (HINT says how), each VAR is a positive
# integer and timeout(1) is there; sets HAVE_TESTPMD.
check_env() {
    local hint=$1 v
    shift
    [[ -x "$PKTGEN" ]] || die "pkt-gen not found at $PKTGEN (build it: $hint, or set BUILD_DIR)"
    for v in "$@"; do
        [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
    done
    command -v timeout >/dev/null || die "timeout (coreutils) is required"
    HAVE_TESTPMD=0
    if command -v "$TESTPMD" >/dev/null 2>&1; then HAVE_TESTPMD=1; fi
}

# bench_init STEM: the logs dir WORK, the DPDK --file-prefix stem TAG (STEM and
# our pid), and the cleanup on exit, Ctrl-C or TERM; it calls cleanup_hook too if
# the script defines one.
bench_init() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/unetmap-bench-${ME%.sh}.XXXXXX")
    TAG="$1$$"
    PIDS=()                 # every background child we started
    UNETMAP_DIR_CUR=""      # runtime dir of the unetmap run in progress
    exec 3>&2               # the real stderr, for traps firing inside 2>/dev/null blocks
    trap cleanup EXIT
    trap 'echo "$ME: interrupted" >&3; exit 130' INT
    trap 'echo "$ME: terminated" >&3; exit 143' TERM
}

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

# wait_child PID WHAT: wait for child PID to end and forget it; a non-zero exit
# status is reported as WHAT's.
wait_child() {
    local rc=0
    wait "$1" || rc=$?
    forget "$1"
    ((rc == 0)) || echo "$2 exited with status $rc" >&2
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    { for pid in "${PIDS[@]}"; do stop_pid "$pid"; done; } 2>/dev/null
    [[ -n "$UNETMAP_DIR_CUR" ]] && rm -rf "$UNETMAP_DIR_CUR"
    if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
    rm -rf /var/run/dpdk/"$TAG"_* 2>/dev/null || true
    if [[ "$KEEP_LOGS" == 1 ]]; then
        echo "logs kept in $WORK" >&3
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

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

# reap_within PID SECS: wait up to SECS for PID to end by itself, then stop it;
# sets REAP_RC to its exit status (143 if it had to be stopped) and forgets it.
reap_within() {
    local pid=$1 secs=$2 i
    REAP_RC=0
    for ((i = 0; i < secs * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        stop_pid "$pid"; REAP_RC=143
    else
        wait "$pid" || REAP_RC=$?
    fi
    forget "$pid"
}

# median of the numbers given as arguments (prints nothing if none)
median() {
    (($# > 0)) || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2;
              printf "%.3f\n", m }'
}

# steady_median LOG FIELD (bench/nic.sh, vhost.sh): "MEDIAN STEADY ALL": the median (Mpps) of testpmd's
# per-second FIELD (Rx-pps or Tx-pps) samples while traffic flowed, without the
# first and last two (ramp-up, partial seconds), how many samples that median is
# of and how many there were; fails if there was none
steady_median() {
    local samples=() k=2 n
    mapfile -t samples < <(grep -o "$2: *[0-9]*" "$1" | awk '$2 > 0 { print $2 }' || true)
    ((${#samples[@]} > 0)) || return 1
    while ((${#samples[@]} - 2 * k < 1 && k > 0)); do k=$((k - 1)); done
    n=$((${#samples[@]} - 2 * k))
    echo "$(awk -v v="$(median "${samples[@]:k:n}")" 'BEGIN { printf "%.3f", v / 1e6 }') $n ${#samples[@]}"
}

# pktgen_median LOG (vhost.sh, ipfw.sh): "MEDIAN STEADY ALL" of pkt-gen's per-second rates (Mpps)
pktgen_median() {
    local samples=() k=2 n
    mapfile -t samples < <(grep -aoE '^[0-9.]+ [KM]?pps' "$1" |
        awk '{ v = $1; if ($2 == "Kpps") v /= 1e3; else if ($2 == "pps") v /= 1e6; if (v > 0) print v }')
    ((${#samples[@]} > 0)) || return 1
    while ((${#samples[@]} - 2 * k < 1 && k > 0)); do k=$((k - 1)); done
    n=$((${#samples[@]} - 2 * k))
    echo "$(median "${samples[@]:k:n}") $n ${#samples[@]}"
}

summary_field() {  # summary_field LOG FUNC FIELD
    sed -n "/^summary: func=$2 /s/.*[[:space:]]$3=\([0-9.]*\).*/\1/p" "$1" | tail -n 1
}

# rxtx_summary DIR: from the summary lines of DIR/rx.out and DIR/tx.out, RX and TX
# (Mpps), RXP and TXP (packets) and SECS (the receive period)
rxtx_summary() {
    RX=$(summary_field "$1/rx.out" rx mpps)
    TX=$(summary_field "$1/tx.out" tx mpps)
    RXP=$(summary_field "$1/rx.out" rx packets)
    TXP=$(summary_field "$1/tx.out" tx packets)
    SECS=$(summary_field "$1/rx.out" rx seconds)
}

# rxtx_failed DIR WHAT: report a run without figures, with the ends of its logs
rxtx_failed() {
    echo "$2 (rx='$RX' tx='$TX')" >&2
    tail -n 3 "$1/rx.out" "$1/rx.err" "$1/tx.out" "$1/tx.err" >&2 || true
}

# new_unetmap_dir: a fresh runtime directory, in shared memory (tmpfs) as
# the library's default /dev/shm/unetmap: regions and status files on a
# disk's file system would pay for its writeback (BENCH_RUNTIME_BASE
# chooses another place).
new_unetmap_dir() {
    UNETMAP_DIR_CUR=$(mktemp -d "${BENCH_RUNTIME_BASE:-/dev/shm}/unetmap-${ME%.sh}.XXXXXX")
}
drop_unetmap_dir() {
    [[ -n "$UNETMAP_DIR_CUR" ]] && rm -rf "$UNETMAP_DIR_CUR"
    UNETMAP_DIR_CUR=""
}

# pkt-gen under timeout, PKTGEN_T=(timeout SECS "$PKTGEN"), set by the script;
# started as `UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" ARGS &` (a simple
# command, so $! is timeout's pid, which stop_pid can signal)

# start_rx LOGSTEM PORT [WHO]: start pkt-gen -f rx -W on PORT (CPU 1) and wait until
# it has the port open; sets RXPID. Fails (receiver stopped) if it did not open.
start_rx() {
    local stem=$1 port=$2 who=${3:-receiver}
    UNETMAP_DIR=$UNETMAP_DIR_CUR "${PKTGEN_T[@]}" -i "$port" -f rx -W -a 1 >"$stem.out" 2>"$stem.err" &
    RXPID=$!; PIDS+=("$RXPID")
    if ! wait_for "$stem.err" "pkt-gen: $port: " 10 "$RXPID" || ! grep -q 'rings of' "$stem.err"; then
        echo "$who did not open $port within 10 s:" >&2
        tail -n 5 "$stem.err" >&2
        stop_pid "$RXPID"; forget "$RXPID"
        return 1
    fi
}

# memif_peer DETAIL: the line naming the memif peer (DETAIL after its direction)
memif_peer() {
    if ((HAVE_TESTPMD)); then
        echo "peer: DPDK $TESTPMD net_memif client txonly -> server rxonly$1 (${MEMIF_SECONDS} s/run)"
    else
        echo "peer: DPDK memif could not be measured: $TESTPMD not found (install it: apt-get install dpdk-dev)"
    fi
}

# run_memif N DIR LABEL: DPDK testpmd over net_memif between two processes, client
# txonly -> server rxonly, for MEMIF_SECONDS; logs in DIR, figure in M_RX, printed
# as LABEL's.
M_RX=()
run_memif() {
    local n=$1 d=$2 label=$3 spid cpid sock samples steady k med tag
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
    printf 'run %d/%d  %s    rx %8.3f Mpps  (median of %d steady stats samples of %d)\n' \
        "$n" "$RUNS" "$label" "$med" "${#steady[@]}" "${#samples[@]}"
}

# ------------------------------------------------- a veth pair in two namespaces
# The script sets NS_A and NS_B (names) and NETNS=() before bench_init, and
# calls del_netns from its cleanup_hook.

# shellcheck disable=SC2317  # called by the scripts' cleanup_hook
del_netns() {
    local ns
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NETNS=()
}

# setup_link: veth vA (in NS_A) - vB (in NS_B), both up, IPv6 off (no
# autoconfiguration chatter on the link). 1 with the reason in LINK_WHY if
# it cannot be made.
LINK_WHY=""
setup_link() {
    local ns out i
    for ns in "$NS_A" "$NS_B"; do
        out=$(ip netns add "$ns" 2>&1) || { LINK_WHY="cannot create network namespaces (ip netns add: $out)"; return 1; }
        NETNS+=("$ns")
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    out=$( { ip link add vA netns "$NS_A" type veth peer name vB netns "$NS_B" &&
             ip -n "$NS_A" link set vA up && ip -n "$NS_B" link set vB up; } 2>&1 ) ||
        { LINK_WHY="cannot set up the veth pair: $out"; return 1; }
    for ((i = 0; i < 200; i++)); do
        if ip -n "$NS_A" -o link show dev vA | grep -q 'state UP' &&
           ip -n "$NS_B" -o link show dev vB | grep -q 'state UP'; then
            return 0
        fi
        sleep 0.05
    done
    LINK_WHY="the veth pair did not come up within 10 s"
    return 1
}
