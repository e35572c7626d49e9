#!/usr/bin/env bash
# ab.sh OLD_BUILD NEW_BUILD - the same benchmarks on two builds of unetmap, run
# alternately in one session so that both see the same machine: pkt-gen 60-byte
# frames through a netmap pipe (netmap:p{0 -> netmap:p}0) and through a VALE
# switch (vale0:a -> vale0:b, unicast after the switch learned b's MAC), sender
# on CPU 0, receiver on CPU 1, a fresh UNETMAP_DIR per run. Prints each run's
# receiver Mpps and the medians, and the ratio NEW/OLD. Use it to show a change
# does not make the data path slower (build the old tree with scripts/build.sh
# in a git worktree).
#
# Environment: RUNS (default 5), PIPE_N (packets per pipe run, default
# 200000000), VALE_N (per VALE run, default 60000000), CASES (default
# "pipe vale": the cases to run).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR" >&2; exit 2; }
OLD=$1 NEW=$2
RUNS=${RUNS:-5} PIPE_N=${PIPE_N:-200000000} VALE_N=${VALE_N:-60000000} CASES=${CASES:-pipe vale}
for b in "$OLD" "$NEW"; do
  [[ -x $b/tools/pkt-gen ]] || { echo "ab.sh: no $b/tools/pkt-gen (build it first)" >&2; exit 2; }
done

# run BUILD RX_PORT TX_PORT COUNT [tx args]: the receiver's Mpps
run() {
  local b=$1 rxp=$2 txp=$3 n=$4 d rx i
  shift 4
  d=$(mktemp -d /dev/shm/unetmap-ab.XXXXXX)
  UNETMAP_DIR=$d taskset -c 1 "$b/tools/pkt-gen" -i "$rxp" -f rx -W -a 1 >"$d/rx.out" 2>"$d/rx.err" &
  rx=$!
  for ((i = 0; i < 200; i++)); do
    grep -q "rings of" "$d/rx.err" 2>/dev/null && break
    sleep 0.05
  done
  if [[ $txp == vale* ]]; then  # one frame from b, so that the switch learns its MAC
    UNETMAP_DIR=$d "$b/tools/pkt-gen" -i "$rxp" -f tx -n 1 -l 60 -S 02:00:00:00:00:0b \
      -D ff:ff:ff:ff:ff:ff >/dev/null 2>&1 || true
  fi
  UNETMAP_DIR=$d taskset -c 0 timeout 120 "$b/tools/pkt-gen" -i "$txp" -f tx -l 60 -b 512 \
    -n "$n" -a 0 "$@" >"$d/tx.out" 2>"$d/tx.err" || true
  wait "$rx" || true
  grep -ohE "func=rx .*mpps=[0-9.]+" "$d/rx.out" "$d/rx.err" | tail -1 | sed 's/.*mpps=//'
  rm -rf "$d"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

has() { [[ " $CASES " == *" $1 "* ]]; }
# summary LABEL OLD_FIGURES... -- NEW_FIGURES...
summary() {
  local label=$1 o=() n=() side=o
  shift
  for x in "$@"; do
    if [[ $x == -- ]]; then side=n; elif [[ $side == o ]]; then o+=("$x"); else n+=("$x"); fi
  done
  local mo mn
  mo=$(median "${o[@]}") mn=$(median "${n[@]}")
  echo "$label: old median $mo Mpps ($(printf '%s\n' "${o[@]}" | sort -g | sed -n '1p;$p' | paste -sd-)), new median $mn Mpps ($(printf '%s\n' "${n[@]}" | sort -g | sed -n '1p;$p' | paste -sd-)), ratio $(awk -v a="$mn" -v b="$mo" 'BEGIN{printf "%.2f", a/b}')"
}

declare -a OP NP OV NV
for ((r = 1; r <= RUNS; r++)); do
  line="run $r/$RUNS"
  if has pipe; then
    OP+=("$(run "$OLD" 'netmap:p}0' 'netmap:p{0' "$PIPE_N")")
    NP+=("$(run "$NEW" 'netmap:p}0' 'netmap:p{0' "$PIPE_N")")
    line+="  pipe old ${OP[-1]} new ${NP[-1]}"
  fi
  if has vale; then
    OV+=("$(run "$OLD" vale0:b vale0:a "$VALE_N" -D 02:00:00:00:00:0b)")
    NV+=("$(run "$NEW" vale0:b vale0:a "$VALE_N" -D 02:00:00:00:00:0b)")
    line+="  vale old ${OV[-1]} new ${NV[-1]}"
  fi
  echo "$line Mpps"
done
if has pipe; then summary "pipe 60B" "${OP[@]}" -- "${NP[@]}"; fi
if has vale; then summary "VALE 60B unicast" "${OV[@]}" -- "${NV[@]}"; fi
