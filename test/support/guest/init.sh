#!/bin/sh
# /init of enjin's test guest, packed by test/support/guest/build-guest.ts. It runs as pid 1 from the
# initramfs (busybox-static with its applets as symlinks in /bin) and:
#   - loads the virtio, ACPI button and evdev modules listed in /etc/modules, in that order;
#   - configures eth0 for qemu's user-mode network (10.0.2.15/24, gateway 10.0.2.2);
#   - serves /www with busybox httpd on $PORT (the vm driver puts PORT on the kernel command line);
#   - powers off when the ACPI power button is pressed (QMP system_powerdown);
#   - talks on the virtio-serial port named enjin.ctl: "ready" each time it opens the port, "pong" to
#     "ping" while httpd runs and "fail <why>" when it does not (see agent/supervise/vm-channel.ts).
# If anything vital fails, init exits: the kernel panics (panic=-1) and qemu (-no-reboot) ends, so
# the host sees the VM exit instead of a guest that never gets ready.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "enjin-guest: $*" >/dev/console; }
fatal() { say "fatal: $*"; exit 1; }
# devtmpfs makes device nodes asynchronously: wait a little for one to appear.
await_node() {
  i=0
  while [ ! -e "$1" ] && [ "$i" -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
  [ -e "$1" ]
}

while read -r module; do
  insmod "/lib/modules/$module.ko" || fatal "insmod $module failed"
done </etc/modules

[ -n "$PORT" ] || fatal "no PORT on the kernel command line"
ip link set lo up
ip link set eth0 up || fatal "no eth0 (is virtio_net loaded?)"
ip addr add 10.0.2.15/24 dev eth0 || fatal "cannot address eth0"
ip route add default via 10.0.2.2 || fatal "cannot add the default route"
httpd -p "$PORT" -h /www || fatal "httpd did not start on port $PORT"

for event in /sys/class/input/event*; do
  [ "$(cat "$event/device/name" 2>/dev/null)" = "Power Button" ] || continue
  node="/dev/input/${event##*/}"
  await_node "$node" && (head -c 1 "$node" >/dev/null && poweroff -f) &
done

ctl=""
for port in /sys/class/virtio-ports/*; do
  [ "$(cat "$port/name" 2>/dev/null)" = enjin.ctl ] && ctl="/dev/${port##*/}"
done
[ -n "$ctl" ] || fatal "no virtio-serial port named enjin.ctl"
await_node "$ctl" || fatal "$ctl did not appear"
say "serving on port $PORT, control channel $ctl, kernel uptime $(cut -d" " -f1 /proc/uptime) s"

# Writing blocks until the host end is connected; reading returns end-of-file once it disconnects,
# and the port is opened again for the next host (an agent that restarted).
while :; do
  if exec 3<>"$ctl"; then
    echo ready >&3
    while read -r line <&3; do
      case "$line" in
      ping)
        if pidof httpd >/dev/null; then echo pong >&3; else echo "fail httpd is not running" >&3; fi
        ;;
      esac
    done
    exec 3>&-
  fi
  sleep 0.2
done
