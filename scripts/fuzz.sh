#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: builds the libFuzzer harnesses (tests/fuzz,
# clang, ASan+UBSan, in build-fuzz/) and runs each for SECONDS (default 30)
# on a copy of its seed corpus (tests/fuzz/corpus/<name>; the tree is never
# written). One line per harness; exits non-zero on any finding (crash, UB,
# leak, hang, out of memory, a failed check), whose input is kept in
# build-fuzz/findings/ with the log:
#   build-fuzz/tests/fuzz/<name>_fuzz build-fuzz/findings/<file>   # replay it
# FUZZERS="name ring" limits the run to those harnesses; FUZZ_FLAGS adds
# libFuzzer flags (FUZZ_FLAGS=-seed=N replays a run).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
fuzzers=${FUZZERS:-name nmreq ring vhost offload ipfw}
dir=build-fuzz

cxx="" cc=""
for v in -14 ""; do
  if command -v "clang++$v" >/dev/null && command -v "clang$v" >/dev/null; then
    cxx="clang++$v" cc="clang$v"
    break
  fi
done
if [ -z "$cxx" ]; then
  echo "fuzz: clang not found (bash scripts/deps.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_CXX_COMPILER="$cxx" -DUNETMAP_FUZZ=ON -DBUILD_TESTING=OFF -DUNETMAP_PCAP=OFF >/dev/null
targets=()
for f in $fuzzers; do targets+=("${f}_fuzz"); done
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" >/dev/null

# The harnesses' runtime directories (and the corpus copies) live here.
work=$(mktemp -d /dev/shm/unetmap-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir/findings"
export UNETMAP_FUZZ_TMP=$work
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fail=0
for f in $fuzzers; do
  corpus=$work/$f-corpus
  cp -r "tests/fuzz/corpus/$f" "$corpus"
  log=$work/$f.log
  rc=0
  # -timeout: an input that runs 10 s is a hang. The outer timeout is a
  # backstop for a run that never ends.
  timeout $((secs + 120)) "$dir/tests/fuzz/${f}_fuzz" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_FLAGS:-} -artifact_prefix="$work/$f-" "$corpus" \
    >"$log" 2>&1 || rc=$?
  stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  runs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]*([0-9]+)/\1/p' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$stats")
  found=$(find "$work" -maxdepth 1 -name "$f-*" -type f | head -1)
  if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
    echo "fuzz $f: ok, ${runs:-?} inputs in ${secs}s, coverage ${cov:-?}, corpus ${corp:-?}"
    continue
  fi
  # A slow unit (one input ran 10 s or more without reaching the hang check)
  # is replayed alone: slow again is a finding, fast is a stall of the
  # machine, reported with the input and its replay time and not failed.
  if [ "$rc" -eq 0 ] && [[ $(basename "$found") == "$f-slow-unit-"* ]]; then
    t0=$(date +%s%N)
    rrc=0
    timeout 60 "$dir/tests/fuzz/${f}_fuzz" "$found" >"$work/$f.replay" 2>&1 || rrc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    input=\'$(head -c 300 "$found" | LC_ALL=C cat -v | tr '\n' '|')\'
    if [ "$rrc" -eq 0 ] && [ "$ms" -lt 2000 ]; then
      echo "fuzz $f: ok, ${runs:-?} inputs in ${secs}s, coverage ${cov:-?}, corpus ${corp:-?};" \
        "one slow unit did not reproduce (${ms} ms alone): input $input"
      continue
    fi
    echo "fuzz $f: slow unit reproduced (${ms} ms alone, exit $rrc): input $input"
  fi
  fail=1
  keep=""
  if [ -n "$found" ]; then
    keep="$dir/findings/$(basename "$found")"
    cp "$found" "$keep"
  fi
  cp "$log" "$dir/findings/$f.log"
  what=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+[^(]*|runtime error: .*|FUZZ CHECK FAILED: .*' "$log" | head -1 || true)
  echo "fuzz $f: FAILED (exit $rc): ${what:-see log}; input ${keep:-none}, log $dir/findings/$f.log"
  grep -E 'ERROR|FUZZ CHECK|runtime error|SUMMARY|#[0-9]+ 0x[0-9a-f]+ in unetmap' "$log" | head -20 | sed 's/^/  /'
done
exit $fail
