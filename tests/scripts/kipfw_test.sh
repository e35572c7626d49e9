#!/usr/bin/env bash
# kipfw between two netmap pipes, with real processes: pkt-gen sends on
# one pipe, kipfw filters into the other, pkt-gen counts what arrives.
#   1. a ruleset file with a bad line is refused, naming the line;
#   2. rules from a file let UDP to port 1234 through, counted per rule;
#   3. `ipfw add` of a deny rule while kipfw runs stops it, counted;
#      a refused command exits 65 and changes nothing;
#   4. another user cannot reach kipfw's socket, nor fake one for root's
#      ipfw; a chain's head alone in
#      its first slot is judged whole, and kipfw does not spin for its end;
#   5. kill -9 of kipfw, restarted with the same file: the pipes are
#      usable and the ruleset is the file's again.
# Usage: kipfw_test.sh BUILD_DIR
set -euo pipefail
B=$1
KIPFW=$B/tools/kipfw IPFW=$B/tools/ipfw PKTGEN=$B/tools/pkt-gen
UNETMAP_DIR=$(mktemp -d /dev/shm/unetmap-kipfw.XXXXXX)
export UNETMAP_DIR
WORK=$(mktemp -d)
KPID=
cleanup() {
    [[ -n $KPID ]] && kill -9 "$KPID" 2>/dev/null || true
    [[ -n ${CH_PID:-} ]] && kill -9 "$CH_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$UNETMAP_DIR" "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# shellcheck source=kipfw_lib.sh
. "$(dirname "$0")/kipfw_lib.sh"
# start_kipfw FILE: kipfw with FILE between the pipes.
start_kipfw() { kipfw_start -f "$1" 'netmap:p}0' 'netmap:q{0'; }

# send_and_count N [denied]: N UDP frames to port 1234 into p{0; prints
# how many reached q}0. The receiver stops once it has all N (a wait that
# needs no guess of how long the frames take); for frames a rule denies
# (none due), once kipfw's counters show it took all N.
send_and_count() {
    local n=(-n "$1")
    [[ ${2:-} == denied ]] && n=()
    timeout -s INT 20 "$PKTGEN" -i 'netmap:q}0' -f rx "${n[@]}" >"$WORK/rx.out" 2>&1 &
    local rx=$! ready=
    for _ in $(seq 200); do grep -q "rings of" "$WORK/rx.out" 2>/dev/null && ready=1 && break; sleep 0.05; done
    [[ -n $ready ]] || fail "pkt-gen rx did not start: $(cat "$WORK/rx.out")"
    timeout 20 "$PKTGEN" -i 'netmap:p{0' -f tx -n "$1" -l 60 -d 10.1.0.1:1234 >"$WORK/tx.out" 2>&1 || fail "pkt-gen tx: $(cat "$WORK/tx.out")"
    if [[ ${2:-} == denied ]]; then
        local seen=0
        for _ in $(seq 200); do
            seen=$("$IPFW" stats | python3 -c 'import json,sys; d=json.load(sys.stdin)["directions"][0]; print(d["packets"]+d["denied"])')
            ((seen >= TOTAL + $1)) && break
            sleep 0.05
        done
        ((seen >= TOTAL + $1)) || fail "kipfw took $((seen - TOTAL)) of $1 frames"
        kill -INT "$rx"
    fi
    TOTAL=$((TOTAL + $1))
    wait "$rx" || true
    sed -nE 's/.*func=rx packets=([0-9]+).*/\1/p' "$WORK/rx.out"
}

rule_packets() {  # rule_packets N: packets counted by rule N
    "$IPFW" stats | python3 -c "import json,sys; print([r['packets'] for r in json.load(sys.stdin)['rules'] if r['number']==$1][0])"
}

# 1. a bad line
printf 'add 100 allow udp from any to any 1234\nadd 200 alow ip from any to any\n' >"$WORK/bad.rules"
if "$KIPFW" -f "$WORK/bad.rules" 'netmap:p}0' 'netmap:q{0' 2>"$WORK/bad.err"; then fail "a bad ruleset was taken"; fi
grep -q "bad.rules:2: invalid action \`alow'" "$WORK/bad.err" || fail "bad line not named: $(cat "$WORK/bad.err")"

# 2. the file's rules
cat >"$WORK/good.rules" <<'EOF'
# kipfw_test
ipfw add 100 allow udp from any to any 1234
add 200 count ip from any to any
EOF
start_kipfw "$WORK/good.rules"
TOTAL=0
got=$(send_and_count 1000)
[[ $got == 1000 ]] || fail "allowed: $got of 1000 frames arrived"
[[ $(rule_packets 100) == 1000 ]] || fail "rule 100 counted $(rule_packets 100)"

# 3. a deny rule added while running
"$IPFW" -q add 50 deny udp from any to any 1234
got=$(send_and_count 500 denied)
[[ $got == 0 ]] || fail "denied: $got frames arrived"
[[ $(rule_packets 50) == 500 ]] || fail "rule 50 counted $(rule_packets 50)"
set +e
"$IPFW" add 60 bogus ip from any to any 2>"$WORK/err"; rc=$?
set -e
[[ $rc == 65 ]] || fail "a refused rule exited $rc"
grep -q "invalid action \`bogus'" "$WORK/err" || fail "refusal: $(cat "$WORK/err")"
[[ $("$IPFW" list | wc -l) == 4 ]] || fail "ruleset changed: $("$IPFW" list)"

# 4. another user
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    set +e
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$IPFW" list >/dev/null 2>"$WORK/err"; rc=$?
    set -e
    [[ $rc == 69 ]] || fail "another user's ipfw exited $rc: $(cat "$WORK/err")"
fi

# 4a. an ipfw of root does not talk to a socket another user serves
#     (another member of a shared runtime directory could listen there).
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    FAKE=$(mktemp -d /tmp/kipfw-fake.XXXXXX); chmod 0777 "$FAKE"
    setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind('$FAKE/kipfw.x.sock'); s.listen(1)
print('ready', flush=True)
c, _ = s.accept(); c.sendall(b'0\\nfake rules\\n'); c.close()" >"$WORK/fake.out" 2>&1 &
    FPID=$!
    for _ in $(seq 100); do grep -q ready "$WORK/fake.out" 2>/dev/null && break; sleep 0.05; done
    set +e
    UNETMAP_DIR=$FAKE "$IPFW" -n x list >"$WORK/fake.list" 2>"$WORK/err"; rc=$?
    set -e
    kill "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true
    rm -rf "$FAKE"
    [[ $rc == 69 ]] || fail "ipfw talked to another user's socket (exit $rc): $(cat "$WORK/fake.list")"
    grep -q "neither root nor this user" "$WORK/err" || fail "refusal: $(cat "$WORK/err")"
fi

# 4b. a chain whose Ethernet header comes alone in its first slot: the
#     rules see the whole head (UDP to port 22 is not allowed), and while
#     the rest has not come kipfw waits without spinning.
CHAIN=$B/tests/nm_chain
coproc CH { "$CHAIN" 'netmap:p{0' 22; }
read -r -t 5 line <&"${CH[0]}" || fail "nm_chain did not start"
[[ $line == "head sent" ]] || fail "nm_chain: $line"
t0=$(awk '{print $14+$15}' "/proc/$KPID/stat")
sleep 1
t1=$(awk '{print $14+$15}' "/proc/$KPID/stat")
(( t1 - t0 < 30 )) || fail "kipfw used $((t1 - t0)) ticks of 100 in a second waiting for a chain's end"
denied0=$("$IPFW" stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["directions"][0]["denied"])')
echo rest >&"${CH[1]}"
read -r -t 5 line <&"${CH[0]}" || fail "nm_chain did not finish"
for _ in $(seq 100); do
    denied=$("$IPFW" stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["directions"][0]["denied"])')
    ((denied > denied0)) && break
    sleep 0.05
done
((denied == denied0 + 1)) || fail "the chain to port 22 was not denied (denied $denied0 -> $denied)"
echo bye >&"${CH[1]}"; wait "$CH_PID" 2>/dev/null || true

# 5. kill -9 and a restart with the same file
kill -9 "$KPID"; wait "$KPID" 2>/dev/null || true
start_kipfw "$WORK/good.rules"
[[ $("$IPFW" list | wc -l) == 3 ]] || fail "restarted ruleset: $("$IPFW" list)"
TOTAL=0
got=$(send_and_count 1000)
[[ $got == 1000 ]] || fail "after kill -9: $got of 1000 frames arrived"
echo "kipfw_test: ok"
