#!/usr/bin/env bash
# Installs, builds, and pushes traffic between two processes with pkt-gen:
# through a netmap pipe, then through a VALE switch, printing the rates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
export UNETMAP_DIR
UNETMAP_DIR=$(mktemp -d /dev/shm/unetmap-demo.XXXXXX)
rxlog=$(mktemp)
rx=""
trap '[ -n "$rx" ] && kill $rx 2>/dev/null; rm -rf "$UNETMAP_DIR" "$rxlog"' EXIT
pg=build/tools/pkt-gen

# run_pair RXPORT TXPORT COUNT [extra tx options]: receiver first, then the sender.
run_pair() {
  local rxport=$1 txport=$2 count=$3
  shift 3
  $pg -i "$rxport" -f rx -W -a 1 >"$rxlog" 2>&1 &
  rx=$!
  for _ in $(seq 100); do grep -q "rings of" "$rxlog" && break; sleep 0.1; done
  $pg -i "$txport" -f tx -l 60 -b 512 -n "$count" -a 0 "$@" | sed 's/^/  tx: /'
  wait $rx
  rx=""
  grep -v "rings of" "$rxlog" | sed 's/^/  rx: /'
}

echo "== netmap pipe: pkt-gen -f tx on netmap:demo{0 -> pkt-gen -f rx on netmap:demo}0 (60-byte packets)"
run_pair 'netmap:demo}0' 'netmap:demo{0' "${DEMO_PIPE_COUNT:-300000000}"

echo
echo "== VALE switch vale0: pkt-gen -f tx on vale0:a -> pkt-gen -f rx on vale0:b (60-byte broadcast frames)"
run_pair 'vale0:b' 'vale0:a' "${DEMO_VALE_COUNT:-60000000}"
