#!/usr/bin/env bash
# Installs what unetmap needs to build and test, from Debian's packages.
# Extra package names may be given as arguments.
set -euo pipefail
# clang-14 and libclang-rt-14-dev (libFuzzer, the sanitizer runtimes): the
# fuzz harnesses (scripts/fuzz.sh).
# dpkg-dev, flex, bison and libpcap0.8-dev: libpcap with its netmap module,
# built from Debian's libpcap source (scripts/libpcap.sh, unetmap-run);
# tcpdump, tshark and python3-scapy: the programs the pcap tests run on it;
# tshark's editcap makes the pcapng file of the nmreplay test; tcpreplay:
# bench/replay.sh's peer.
# dpdk-dev (dpdk-testpmd): DPDK's virtio_user, the vhost-user front end of
# the vhost tests, and the peers of bench/.
# qemu-system-x86, busybox-static and cpio: the Linux guests of
# tests/qemu (their kernel: guest_kernel below). ethtool: kipfw's namespace
# test turns the veth peers' checksum offload off (AF_XDP sees no checksum state).
# pybind11-dev, python3-dev, python3-numpy, python3-pytest: the Python module
# (python/) and its tests; groff and man-db: the manual pages' check (man/).
pkgs=(cmake g++ gcc make pkg-config libgtest-dev googletest libxdp-dev libbpf-dev iproute2 procps
  iputils-ping netcat-openbsd clang-14 libclang-rt-14-dev binutils dpkg-dev flex bison
  libpcap0.8-dev tcpdump tshark tcpreplay python3-scapy dpdk-dev qemu-system-x86 busybox-static cpio ethtool nftables
  pybind11-dev python3-dev python3-numpy python3-pytest groff man-db "$@")
# Installed without their recommendations (QEMU's would bring a GUI).
bare=(qemu-system-x86)
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
  with=() without=()
  for p in "${missing[@]}"; do
    if [[ " ${bare[*]} " == *" $p "* ]]; then without+=("$p"); else with+=("$p"); fi
  done
  [ ${#with[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${with[@]}" >/dev/null
  [ ${#without[@]} -eq 0 ] ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${without[@]}" >/dev/null
fi

# The test guests' kernel: Debian's, unpacked from its package (not
# installed: this machine's boot is not touched) into $GUEST_KERNEL, the
# image and the virtio-net modules only.
GUEST_KERNEL=${GUEST_KERNEL:-/var/lib/unetmap/guest-kernel}
guest_kernel() {
  local pkg tmp
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
  [ -n "$pkg" ] || { echo "deps: no Debian kernel package found for the test guests" >&2; return 1; }
  [ -f "$GUEST_KERNEL/package" ] && [ "$(cat "$GUEST_KERNEL/package")" = "$pkg" ] && return 0
  echo "deps: unpacking $pkg for the test guests into $GUEST_KERNEL"
  tmp=$(mktemp -d)
  (cd "$tmp" && chown _apt "$tmp" 2>/dev/null; apt-get download -qq "$pkg" >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && apt-get download -qq "$pkg"; })
  mkdir -p "$tmp/x"
  dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' \
    '*/virtio.ko' '*/virtio_ring.ko' '*/virtio_pci*.ko' '*/virtio_net.ko' '*/failover.ko' '*/net_failover.ko'
  $SUDO rm -rf "$GUEST_KERNEL"
  $SUDO mkdir -p "$GUEST_KERNEL/modules"
  $SUDO cp "$tmp"/x/boot/vmlinuz-* "$GUEST_KERNEL/vmlinuz"
  find "$tmp/x" -name '*.ko' -exec $SUDO cp {} "$GUEST_KERNEL/modules/" \;
  echo "$pkg" | $SUDO tee "$GUEST_KERNEL/package" >/dev/null
  rm -rf "$tmp"
}
guest_kernel
