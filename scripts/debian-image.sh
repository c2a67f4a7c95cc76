#!/usr/bin/env bash
# Builds a Debian bookworm guest with systemd from Debian's packages, for
# TestDebianGuest: its own kernel and initramfs-tools initrd, and an ext4
# root file system image. Usage: debian-image.sh OUTDIR. OUTDIR gets
# vmlinuz, initrd.img and root.img; an OUTDIR that already has them (and
# this script's content hash in OUTDIR/built-by) is kept, so the image is
# built once per version of this script.
#
# The guest runs one unit of its own, govm-check.service: once the boot
# has settled (systemctl is-system-running --wait) it prints the state,
# systemctl --failed and the boot's timing as GOVM-DEBIAN lines on the
# console (through the kernel's log), and powers off with systemctl
# poweroff.
set -euo pipefail
out=$1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
hash=$(sha256sum "$0" | cut -c1-16)
if [ -s "$out/root.img" ] && [ "$(cat "$out/built-by" 2>/dev/null)" = "$hash" ]; then
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "debian-image.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$out"
root=$(mktemp -d "$out/root.XXXXXX")
trap 'rm -rf "$root" "$out/root.img.tmp"' EXIT
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools \
	bookworm "$root" "$MIRROR" >"$out/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$out/debootstrap.log" >&2; exit 1; }

echo govm-debian >"$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
cat >"$root/etc/systemd/system/govm-check.service" <<'UNIT'
[Unit]
Description=govm: report the boot's state and power off
After=multi-user.target

[Service]
# simple, not oneshot: a oneshot still starting would keep the boot from
# finishing, and is-system-running --wait would wait for itself.
Type=simple
# Written to /dev/kmsg: the kernel's log reaches the console whatever the
# gettys do to ttyS0, and journald forwards nothing below notice there.
ExecStart=/bin/sh -c 'exec >/dev/kmsg 2>&1; state=$(systemctl is-system-running --wait); echo "GOVM-DEBIAN state=$state"; systemctl --failed --no-legend --plain | sed "s/^/GOVM-DEBIAN failed: /"; echo "GOVM-DEBIAN rtc=$(cat /sys/class/rtc/rtc0/name 2>/dev/null || echo none)"; echo "GOVM-DEBIAN $(systemd-analyze 2>/dev/null | head -n 1)"; echo GOVM-DEBIAN-DONE; systemctl poweroff'

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/govm-check.service "$root/etc/systemd/system/multi-user.target.wants/govm-check.service"
# Nothing the test needs from these: smaller image, quicker copy.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
# ext4 made from the tree (mke2fs -d), a fifth larger than its content.
kib=$(du -sk "$root" | cut -f1)
rm -f "$out/root.img.tmp"
mkfs.ext4 -q -F -L debian-root -d "$root" "$out/root.img.tmp" "$((kib * 6 / 5 + 65536))k"
mv "$out/root.img.tmp" "$out/root.img"
echo "$hash" >"$out/built-by"
