#!/usr/bin/env bash
# Installs, builds, and pushes traffic through a netmap pipe between two
# processes with pkt-gen, printing the rates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
export UNETMAP_DIR
UNETMAP_DIR=$(mktemp -d /dev/shm/unetmap-demo.XXXXXX)
rxlog=$(mktemp)
trap 'kill $rx 2>/dev/null || true; rm -rf "$UNETMAP_DIR" "$rxlog"' EXIT
count=${DEMO_COUNT:-300000000}
pg=build/tools/pkt-gen

echo "== netmap pipe: pkt-gen -f rx on netmap:demo}0, pkt-gen -f tx on netmap:demo{0 (60-byte packets)"
$pg -i 'netmap:demo}0' -f rx -W -a 1 >"$rxlog" 2>&1 &
rx=$!
for _ in $(seq 100); do grep -q "rings of" "$rxlog" && break; sleep 0.1; done
$pg -i 'netmap:demo{0' -f tx -l 60 -b 512 -n "$count" -a 0 | sed 's/^/  tx: /'
wait $rx
sed 's/^/  rx: /' "$rxlog" | grep -v "rings of"
