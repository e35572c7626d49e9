#!/usr/bin/env bash
# Installs what unetmap needs to build and test, from Debian's packages.
# Extra package names may be given as arguments.
set -euo pipefail
# clang-14 and libclang-rt-14-dev (libFuzzer, the sanitizer runtimes): the
# fuzz harnesses (scripts/fuzz.sh).
# dpkg-dev, flex, bison and libpcap0.8-dev: libpcap with its netmap module,
# built from Debian's libpcap source (scripts/libpcap.sh, unetmap-run);
# tcpdump, tshark and python3-scapy: the programs the pcap tests run on it.
# dpdk-dev (dpdk-testpmd): DPDK's virtio_user, the vhost-user front end of
# the vhost tests, and the peers of bench/.
pkgs=(cmake g++ gcc make pkg-config libgtest-dev googletest libxdp-dev libbpf-dev iproute2 procps
  iputils-ping netcat-openbsd clang-14 libclang-rt-14-dev binutils dpkg-dev flex bison
  libpcap0.8-dev tcpdump tshark python3-scapy dpdk-dev "$@")
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Debian's source packages (apt-get source libpcap): deb-src lines beside
# the deb ones, if the machine has none.
update=0
if ! grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      $SUDO tee /etc/apt/sources.list.d/unetmap-deb-src.sources >/dev/null
  else
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | $SUDO tee /etc/apt/sources.list.d/unetmap-deb-src.list >/dev/null
  fi
  echo "deps: added deb-src lines (Debian's source packages: libpcap)"
  update=1
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ $update = 1 ]; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  # tshark asks whether non-root users may capture: no (the default).
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
