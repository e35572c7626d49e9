#!/usr/bin/env bash
# Installs the dependencies, builds unetmap twice (optimised, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in
# both builds; then runs each libFuzzer harness for a bounded time
# (FUZZ_SECONDS each, default 40: two minutes in all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
fail=0
for variant in release sanitize; do
  dir=build
  args=()
  if [ "$variant" = sanitize ]; then
    dir=build-sanitize
    args=(-DUNETMAP_SANITIZE=ON)
  fi
  echo "=== $variant build ($dir)"
  bash scripts/build.sh "$dir" "${args[@]}"
  echo "=== $variant tests"
  (cd "$dir" && ctest --output-on-failure -j2 --timeout 300) || fail=1
done
echo "=== fuzz (build-fuzz)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-40}" || fail=1
exit $fail
