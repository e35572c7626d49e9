#!/usr/bin/env bash
# dummynet's delay lines in the packets' own buffers: kipfw between two
# netmap pipes of one memory region, a rule sending UDP to a pipe with a
# delay; nm_udp sends numbered frames of every length and checks each
# byte of what arrives.
#   1. with the default extra buffers every piped packet of 512 bytes or
#      more is held zero copy (shorter ones as copies), all arrive intact
#      and in order, and every extra buffer comes back to the pair once the
#      line is empty;
#   2. `pipe delete` while packets are held gives their buffers back, and
#      the region's buffer count is what it was;
#   3. kill -9 of kipfw while it holds packets in their own buffers; a new
#      kipfw with only 16 extra buffers on the same pipes holds as many as
#      it can zero copy and copies the rest, and again all arrive intact;
#   4. -B 0: copies only, all intact.
# Usage: kipfw_dummynet_test.sh BUILD_DIR
set -euo pipefail
B=$1
KIPFW=$B/tools/kipfw IPFW=$B/tools/ipfw UDP=$B/tests/nm_udp REGIONS=$B/tools/nm-regions
UNETMAP_DIR=$(mktemp -d /dev/shm/unetmap-kipfw-dn.XXXXXX)
export UNETMAP_DIR
WORK=$(mktemp -d)
KPID=
cleanup() {
    [[ -n $KPID ]] && kill -9 "$KPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$UNETMAP_DIR" "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$WORK/rules" <<'EOF'
pipe 1 config delay 20ms queue 5000
add 100 pipe 1 udp from any to any 5000
add 200 allow ip from any to any
EOF

# shellcheck source=kipfw_lib.sh
. "$(dirname "$0")/kipfw_lib.sh"
# start_kipfw [OPTIONS...]: kipfw with the rules between r}0 and s{0.
start_kipfw() { kipfw_start "$@" -f "$WORK/rules" 'netmap:r}0' 'netmap:s{0'; }

# stat EXPR: a value of `ipfw stats` (d: the direction r -> s, dn: dummynet).
stat() {
    "$IPFW" stats | python3 -c "import json,sys; s=json.load(sys.stdin); d=s['directions'][0]; dn=s['dummynet']; print($1)"
}

# wait_for EXPR WANT: until stat EXPR prints WANT (5 s).
wait_for() {
    local v
    for _ in $(seq 100); do
        v=$(stat "$1")
        [[ $v == "$2" ]] && return 0
        sleep 0.05
    done
    fail "$1 is $v, not $2"
}

# big N: how many of nm_udp's frames 0..N-1 are 512 bytes or more (held zero copy)
big() { python3 -c "print(sum(1 for k in range($1) if 60 + k * 37 % 1455 >= 512))"; }

bufs_in_use() { "$REGIONS" -m 1 -j | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["bufs_in_use"])'; }

# transfer N: N frames through the pipe, checked at s}0.
transfer() {
    "$UDP" recv 'netmap:s}0' "$1" 20000 >"$WORK/rx.out" 2>&1 &
    local rx=$!
    "$UDP" send 'netmap:r{0' "$1" 5000 || fail "nm_udp send failed"
    wait "$rx" || fail "receiver: $(cat "$WORK/rx.out")"
    grep -qx "ok $1" "$WORK/rx.out" || fail "receiver: $(cat "$WORK/rx.out")"
}

# 1. zero copy, the default 4096 extra buffers
start_kipfw
spare0=$(stat "d['spare_buffers']")
[[ $spare0 == 4096 ]] || fail "the pair has $spare0 extra buffers, not 4096"
[[ $(stat "d['mode']") == zero-copy ]] || fail "the pipes are not in one region"
transfer 3000
wait_for "dn['held']" 0
[[ $(stat "d['piped']") == 3000 ]] || fail "piped $(stat "d['piped']") of 3000"
[[ $(stat "d['piped_zero_copy']") == $(big 3000) ]] || fail "held zero copy: $(stat "d['piped_zero_copy']"), not $(big 3000)"
[[ $(stat "d['spare_buffers']") == "$spare0" ]] || fail "extra buffers after: $(stat "d['spare_buffers']")"

# 2. packets held in a long delay, then the pipe deleted
in_use0=$(bufs_in_use)
"$IPFW" pipe 1 config delay 60s queue 5000
"$UDP" send 'netmap:r{0' 500 5000 || fail "nm_udp send failed"
wait_for "dn['held']" 500
[[ $(stat "d['spare_buffers']") == $((spare0 - $(big 500))) ]] || fail "500 held, extra buffers $(stat "d['spare_buffers']")"
"$IPFW" pipe 1 delete
wait_for "dn['held']" 0
[[ $(stat "d['spare_buffers']") == "$spare0" ]] || fail "after delete: extra buffers $(stat "d['spare_buffers']")"
[[ $(bufs_in_use) == "$in_use0" ]] || fail "region buffers in use: $in_use0 before, $(bufs_in_use) after"

# 3. kill -9 while holding, then a kipfw with 16 extra buffers
"$IPFW" pipe 1 config delay 60s queue 5000
"$UDP" send 'netmap:r{0' 300 5000 || fail "nm_udp send failed"
wait_for "dn['held']" 300
kill -9 "$KPID"; wait "$KPID" 2>/dev/null || true
start_kipfw -B 16
[[ $(stat "d['spare_buffers']") == 16 ]] || fail "-B 16: $(stat "d['spare_buffers']") extra buffers"
transfer 3000
wait_for "dn['held']" 0
zc=$(stat "d['piped_zero_copy']")
[[ $(stat "d['piped']") == 3000 ]] || fail "piped $(stat "d['piped']") of 3000"
((zc >= 16)) || fail "-B 16: only $zc held zero copy"
[[ $(stat "d['spare_buffers']") == 16 ]] || fail "-B 16: $(stat "d['spare_buffers']") extra buffers after"
echo "-B 16: $zc of 3000 held zero copy"
kill "$KPID"; wait "$KPID" 2>/dev/null || true

# 4. copies only
start_kipfw -B 0
transfer 2000
wait_for "dn['held']" 0
[[ $(stat "d['piped']") == 2000 ]] || fail "piped $(stat "d['piped']") of 2000"
[[ $(stat "d['piped_zero_copy']") == 0 ]] || fail "-B 0 held $(stat "d['piped_zero_copy']") zero copy"
if "$KIPFW" -B 70000 'netmap:r}0' 'netmap:s{0' 2>"$WORK/err"; then fail "-B 70000 was taken"; fi
grep -q "extra buffers is 0..65536" "$WORK/err" || fail "-B 70000: $(cat "$WORK/err")"
echo "kipfw_dummynet_test: ok"
