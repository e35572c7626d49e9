#!/usr/bin/env bash
# mkinitrd.sh KERNEL_DIR OUT: a small initramfs for the test guests of
# guests_test.sh. Debian's static busybox is its userland; the virtio-net
# modules come from KERNEL_DIR/modules (the guest kernel's, put there by
# scripts/deps.sh). Its /init reads its role from the kernel command line:
#   um.ip=A/LEN   the address of eth0
#   um.role=serve   make um.mb MiB of random data, print its md5, serve it
#                   to every TCP connection on port 5001 (busybox nc -e);
#                   stay up until QEMU is stopped
#   um.role=fetch   ping um.peer, fetch the data from um.peer:5001, print
#                   its length and md5, then power off
# Lines for the test start with "UM: ".
set -euo pipefail
kdir=$1 out=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp,mod}
cp /bin/busybox "$root/bin/busybox"
[[ $(ldd /bin/busybox 2>&1 || true) == *"not a dynamic"* ]] ||
  { echo "mkinitrd: /bin/busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
# In load order: what virtio_net needs first.
for m in failover net_failover virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net; do
  cp "$kdir/modules/$m.ko" "$root/mod/" 2>/dev/null || true
done
cat >"$root/bin/senddata" <<'S'
#!/bin/sh
cat /tmp/data
S
cat >"$root/init" <<'I'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
for a in $(cat /proc/cmdline); do
  case $a in um.*=*) k=${a%%=*}; eval "UM_${k#um.}=${a#*=}" ;; esac
done
for m in failover net_failover virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net; do
  [ -f /mod/$m.ko ] && insmod /mod/$m.ko 2>/dev/null
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
ip link set lo up
ip addr add "$UM_ip" dev eth0
ip link set eth0 up
echo "UM: up $(cut -d' ' -f1 /proc/uptime) features $(cat /sys/bus/virtio/devices/*/features 2>/dev/null)"
echo "UM: queues $(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)"
stats() {
  for s in rx_packets rx_bytes tx_packets tx_bytes; do echo -n "$s=$(cat /sys/class/net/eth0/statistics/$s) "; done
}
case "$UM_role" in
serve)
  dd if=/dev/urandom of=/tmp/data bs=1M count="${UM_mb:-8}" 2>/dev/null
  echo "UM: data $(wc -c </tmp/data) $(md5sum </tmp/data | cut -d' ' -f1)"
  while :; do nc -l -p 5001 -e /bin/senddata; echo "UM: served $(stats)"; done
  ;;
fetch)
  i=0
  until ping -c 1 -W 1 "$UM_peer" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 120 ] && break
  done
  if ping -c 3 -W 2 "$UM_peer" | grep -q " 0% packet loss"; then echo "UM: ping ok"; else echo "UM: ping failed"; fi
  t0=$(cut -d' ' -f1 /proc/uptime)
  nc "$UM_peer" 5001 >/tmp/got
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "UM: got $(wc -c </tmp/got) $(md5sum </tmp/got | cut -d' ' -f1) in $(echo "$t0 $t1" | awk '{ print $2 - $1 }') s"
  echo "UM: stats $(stats)"
  echo "UM: done"
  poweroff -f
  ;;
esac
sleep 600
poweroff -f
I
chmod +x "$root/init" "$root/bin/senddata"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
