#!/usr/bin/env bash
# unetmap as a user gets it: installed, then used with nothing of the build
# tree.
#   1. cmake --install into a scratch prefix, which is then moved elsewhere
#      (nothing may point back: RUNPATHs, pkg-config and CMake files are
#      relative); the programs below run with the build and source trees
#      hidden (a mount namespace with empty file systems over them);
#   2. libnetmap.so exports only C symbols: no unetmap:: C++ symbol, no
#      symbol outside netmap's ABI, libnetmap's API and unetmap_*;
#   3. a C program built with pkg-config alone, a C++ one with
#      find_package alone, both over a pipe with every byte checked; a plain
#      netmap program (no -lnetmap) run with LD_PRELOAD of the installed
#      library;
#   4. the installed vale-ctl starts a worker (a vhost-user port) that runs
#      from the installed tree, lists it and stops it;
#   5. cpack makes the Debian packages: their contents and dependencies are
#      checked, they are unpacked into a scratch root and the C program is
#      built and run against that root.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd) S=$(cd "$2" && pwd)
UNETMAP_DIR=$(mktemp -d /dev/shm/unetmap-install.XXXXXX)
export UNETMAP_DIR
WORK=$(mktemp -d /tmp/unetmap-install.XXXXXX)
cleanup() { rm -rf "$UNETMAP_DIR" "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
# grep -q at the end of a pipe stops reading early: the writer's SIGPIPE
# would fail the pipe (pipefail). This one reads to the end.
has() { grep "$@" >/dev/null; }
# Run a command where the build and source trees are empty directories.
hidden() {
    unshare -m bash -c 'mount -t tmpfs tmpfs "$1" && mount -t tmpfs tmpfs "$2" && shift 2 && exec "$@"' _ "$B" "$S" "$@"
}

step "1. install, then move the tree"
cmake --install "$B" --prefix "$WORK/first" >"$WORK/install.log" || { cat "$WORK/install.log"; fail "cmake --install"; }
mv "$WORK/first" "$WORK/p"
P=$WORK/p
LIB=$(dirname "$(find "$P" -name 'libnetmap.so.1' | head -1)")
[[ -f $LIB/libnetmap.so.1 ]] || fail "no libnetmap.so.1 installed"
for f in include/net/netmap.h include/net/netmap_user.h include/libnetmap.h include/unetmap/unetmap.h \
         include/unetmap/netmap.hpp bin/pkt-gen bin/vale-ctl bin/nm-regions; do
    [[ -e $P/$f ]] || fail "$f is not installed"
done
[[ -x $LIB/unetmap-worker && -x $LIB/unetmap-vhost && -x $LIB/unetmap-attach ]] || fail "the workers are not beside the library"
[[ -f $LIB/pkgconfig/netmap.pc ]] || fail "no pkg-config file"
[[ -f $LIB/cmake/unetmap/unetmapConfig.cmake ]] || fail "no CMake package"
[[ $(readlink "$LIB/libnetmap.so") == libnetmap.so.1 ]] || fail "libnetmap.so is not the link to the soname"
readelf -d "$LIB/libnetmap.so.1" | has 'SONAME.*\[libnetmap.so.1\]' || fail "no soname libnetmap.so.1"

step "2. exported symbols"
cxx=$(nm -DC --defined-only "$LIB/libnetmap.so.1" | grep -c 'unetmap::' || true)
[[ $cxx == 0 ]] || fail "libnetmap.so exports $cxx unetmap:: symbols"
others=$(nm -D --defined-only "$LIB/libnetmap.so.1" | awk '{print $3}' |
    grep -vE '^(nm_|nmport_|nmreq_|nmctx_|unetmap_)' |
    grep -vxE '(__)?(open|open64|openat|openat64)(_2)?|close|dup[23]?|fcntl(64)?|ioctl|mmap(64)?|fork|(__)?p?poll(_chk)?|p?select|epoll_(ctl|wait|pwait)|recvm?msg' || true)
[[ -z $others ]] || fail "libnetmap.so exports more than its API: $others"
nm -D --defined-only "$LIB/libnetmap.so.1" | has -w nmport_open || fail "nmport_open is not exported"
nm -D --defined-only "$LIB/libnetmap.so.1" | has -w unetmap_port_counters || fail "unetmap_port_counters is not exported"

step "3. programs built against the installed tree"
export PKG_CONFIG_PATH=$LIB/pkgconfig
# shellcheck disable=SC2046
cc -Wall -Werror -o "$WORK/pipe_c" "$S/tests/install/pipe_c.c" $(pkg-config --cflags --libs netmap) \
    -Wl,-rpath,"$LIB" || fail "the C program does not build with pkg-config"
[[ $(pkg-config --modversion netmap) == 1.* ]] || fail "pkg-config version $(pkg-config --modversion netmap)"
ldd "$WORK/pipe_c" | has "$LIB/libnetmap.so.1" || fail "the C program does not load the installed library"
hidden "$WORK/pipe_c" ic 3000 || fail "the C program over a pipe"
cmake -S "$S/tests/install" -B "$WORK/cxx" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_RPATH="$LIB" >"$WORK/cxx.log" 2>&1 ||
    { cat "$WORK/cxx.log"; fail "find_package(unetmap)"; }
cmake --build "$WORK/cxx" >>"$WORK/cxx.log" 2>&1 || { cat "$WORK/cxx.log"; fail "the C++ program does not build"; }
grep -rq "$B" "$WORK/cxx/CMakeCache.txt" && fail "the C++ build found something in the build tree"
hidden "$WORK/cxx/pipe_cxx" icx 3000 || fail "the C++ program over a pipe"
cc -Wall -Werror -o "$WORK/plain" "$S/tests/c/plain_pipe.c" $(pkg-config --cflags netmap)
hidden env LD_PRELOAD="$LIB/libnetmap.so.1" "$WORK/plain" ip 2000 5 || fail "a plain netmap program with LD_PRELOAD"

step "4. a worker from the installed tree"
hidden "$P/bin/vale-ctl" -a "vale9:vm,vhost=$WORK/vm.sock" || fail "installed vale-ctl -a ...,vhost="
wpid=$("$P/bin/vale-ctl" -W -j | python3 -c 'import json,sys; print([w["pid"] for w in json.load(sys.stdin) if w["kind"] == "vhost"][0])')
[[ $wpid -gt 1 ]] || fail "no vhost worker pid"
exe=$(readlink "/proc/$wpid/exe")
[[ $exe == "$LIB/unetmap-vhost" ]] || fail "the worker runs $exe, not the installed one"
hidden "$P/bin/vale-ctl" -s vale9 | has 'vale9:vm' || fail "vale-ctl -s does not show the port"
hidden "$P/bin/vale-ctl" -d vale9:vm || fail "installed vale-ctl -d"
hidden "$P/bin/nm-regions" >/dev/null || fail "installed nm-regions"
# The receiver first: the sender starts once it says it has its rings.
hidden timeout 30 "$P/bin/pkt-gen" -i 'netmap:ig}0' -f rx -n 1000 >"$WORK/rx.log" 2>&1 &
RX=$!
for _ in $(seq 100); do has 'rings of' "$WORK/rx.log" && break; sleep 0.1; done
has 'rings of' "$WORK/rx.log" || { cat "$WORK/rx.log"; fail "installed pkt-gen rx did not open its port"; }
hidden timeout 30 "$P/bin/pkt-gen" -i 'netmap:ig{0' -f tx -n 1000 -l 60 >"$WORK/tx.log" 2>&1 ||
    { cat "$WORK/tx.log"; fail "installed pkt-gen tx"; }
wait "$RX" || { cat "$WORK/rx.log"; fail "installed pkt-gen rx"; }
has 'packets=1000 ' "$WORK/rx.log" || { cat "$WORK/rx.log"; fail "installed pkt-gen rx: not 1000 frames"; }

step "5. Debian packages"
(cd "$B" && cpack -G DEB -B "$WORK/deb" >"$WORK/cpack.log" 2>&1) || { tail -30 "$WORK/cpack.log"; fail "cpack"; }
shopt -s nullglob
debs=("$WORK"/deb/*.deb)
[[ ${#debs[@]} -ge 3 ]] || fail "cpack made ${#debs[@]} packages"
for d in "${debs[@]}"; do
    name=$(dpkg-deb -f "$d" Package)
    dpkg-deb -c "$d" >"$WORK/$name.list"
    case $name in
        libnetmap1) grep -q 'usr/lib.*/libnetmap.so.1.0.0$' "$WORK/$name.list" || fail "$name has no library"
                    grep -q 'usr/lib.*/unetmap-worker$' "$WORK/$name.list" || fail "$name has no worker"
                    dpkg-deb -f "$d" Depends | has libc6 || fail "$name has no dependencies: $(dpkg-deb -f "$d" Depends)";;
        libnetmap-dev) grep -q 'usr/include/net/netmap_user.h$' "$WORK/$name.list" || fail "$name has no headers"
                       grep -q 'pkgconfig/netmap.pc$' "$WORK/$name.list" || fail "$name has no netmap.pc"
                       dpkg-deb -f "$d" Depends | has 'libnetmap1 (= ' || fail "$name does not depend on libnetmap1";;
        unetmap-tools) grep -q 'usr/bin/pkt-gen$' "$WORK/$name.list" || fail "$name has no pkt-gen"
                       dpkg-deb -f "$d" Depends | has 'libnetmap1' || fail "$name does not depend on libnetmap1";;
        python3-netmap) grep -q 'dist-packages/netmap' "$WORK/$name.list" || fail "$name has no module";;
        *) fail "an unexpected package $name";;
    esac
    dpkg -x "$d" "$WORK/root"
done
for name in libnetmap1 libnetmap-dev unetmap-tools; do
    [[ -f $WORK/$name.list ]] || fail "no package $name"
done
RLIB=$(dirname "$(find "$WORK/root" -name 'libnetmap.so.1' | head -1)")
# shellcheck disable=SC2046
cc -o "$WORK/pipe_deb" "$S/tests/install/pipe_c.c" $(PKG_CONFIG_PATH=$RLIB/pkgconfig pkg-config --cflags --libs netmap) \
    -Wl,-rpath,"$RLIB" || fail "the C program does not build against the packages"
hidden "$WORK/pipe_deb" id 1000 || fail "the C program against the packages"
echo "install test: ok"
