#!/usr/bin/env bash
# scripts/libpcap.sh OUT NETMAP_LIBDIR INCLUDE_DIR
# libpcap with its netmap module (pcap-netmap.c, --enable-netmap), built
# from Debian's own libpcap source package against unetmap's headers and
# libnetmap.so: the same soname (libpcap.so.0.8), version script and so
# ABI as the system's libpcap, which Debian builds without netmap. Nothing
# of libpcap is kept in the project tree: the source is fetched into OUT/src
# with `apt-get source` (scripts/deps.sh adds the deb-src lines), once.
# Result: OUT/lib/libpcap.so.0.8 (unetmap-run puts OUT/lib first).
set -euo pipefail
out=$1 libdir=$2 inc=$3
mkdir -p "$out/src" "$out/lib"
src=$(ls -d "$out"/src/libpcap-*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  if ! (cd "$out/src" && apt-get source -qq libpcap >"$out/src/apt-get.log" 2>&1); then
    cat "$out/src/apt-get.log" >&2
    echo "libpcap.sh: 'apt-get source libpcap' failed: run scripts/deps.sh (it adds Debian's" \
      "deb-src lines and installs dpkg-dev, flex and bison), or configure with -DUNETMAP_PCAP=OFF" >&2
    exit 1
  fi
  src=$(ls -d "$out"/src/libpcap-*/ | head -1)
fi
obj=$out/obj
if [ ! -f "$obj/Makefile" ]; then
  rm -rf "$obj"
  cp -r "$src" "$obj"
  # Debian's configuration less the modules unetmap has no use for; the
  # netmap module is found by its check of net/netmap_user.h.
  (cd "$obj" && ./configure -q --enable-netmap --disable-rdma --disable-bluetooth --disable-dbus \
    --without-dpdk --without-dag --without-septel --without-snf --without-turbocap \
    CPPFLAGS="-I$inc" CFLAGS="-g -O2") >"$out/configure.log" 2>&1 || {
    cat "$out/configure.log" >&2
    exit 1
  }
  grep -q '^#define PCAP_SUPPORT_NETMAP 1' "$obj/config.h" || {
    echo "libpcap.sh: libpcap's configure did not take its netmap module (see $obj/config.log)" >&2
    exit 1
  }
fi
# libpcap's Makefile does not know unetmap's headers: its netmap module is
# rebuilt whenever this runs (CMake runs it when they change).
rm -f "$obj"/pcap-netmap*.o
libs=$(sed -n 's/^LIBS *= *//p' "$obj/Makefile")
make -s -C "$obj" -j"$(nproc)" shared CPPFLAGS="-I$inc" \
  LIBS="$libs -L$libdir -Wl,-rpath,$libdir -lnetmap" >"$out/make.log" 2>&1 || {
  cat "$out/make.log" >&2
  exit 1
}
rm -f "$out"/lib/libpcap.so*
cp -P "$obj"/libpcap.so.* "$out/lib/"
