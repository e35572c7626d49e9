#!/usr/bin/env bash
# Installs what unetmap needs to build and test, from Debian's packages.
# Extra package names may be given as arguments (e.g. dpdk-dev for bench/).
set -euo pipefail
# clang-14 and libclang-rt-14-dev (libFuzzer, the sanitizer runtimes): the
# fuzz harnesses (scripts/fuzz.sh).
pkgs=(cmake g++ gcc make pkg-config libgtest-dev googletest libxdp-dev libbpf-dev iproute2 procps
  iputils-ping netcat-openbsd clang-14 libclang-rt-14-dev "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
