# Shared by the kipfw tests (sourced): KIPFW, IPFW and WORK are set, and
# fail() is defined, by the test.

# kipfw_start ARGS...: kipfw ARGS in the background (KPID); returns once
# ipfw reaches it, fails the test if it exits or does not answer in 5 s.
kipfw_start() {
    "$KIPFW" "$@" >"$WORK/kipfw.out" 2>&1 &
    KPID=$!
    for _ in $(seq 100); do
        "$IPFW" list >/dev/null 2>&1 && return 0
        kill -0 "$KPID" 2>/dev/null || fail "kipfw exited: $(cat "$WORK/kipfw.out")"
        sleep 0.05
    done
    fail "kipfw did not answer within 5 s"
}
