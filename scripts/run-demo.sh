#!/usr/bin/env bash
# Boots the demo VM. Where this host's KVM can run Linux, govm runs here;
# otherwise (kvm_pvm without VT-x/AMD-V, as on some CI runners and cloud
# VMs) the same govm command runs inside a nested L1 guest under QEMU TCG
# with emulated AMD SVM. Extra arguments go to govm run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
ARGS=(--kernel KERNEL --initrd INITRD --mem 512M --cpus 2 "$@")
NESTED_APPEND=(--append quiet) # less traffic on the emulated L1 console

native=yes
if [ -d /sys/module/kvm_pvm ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then native=no; fi
[ -c /dev/kvm ] || native=no

if [ "$native" = yes ]; then
	a=("${ARGS[@]/KERNEL/$B/kernel/bzImage}"); a=("${a[@]/INITRD/$B/uroot.cpio}")
	echo "make run: govm run ${a[*]}   (Ctrl-A x quits)" >&2
	exec "$B/govm" run "${a[@]}"
fi

a=("${ARGS[@]/KERNEL//l2/bzImage}" "${NESTED_APPEND[@]}"); a=("${a[@]/INITRD//l2/initramfs.cpio}")
echo "make run: this host's /dev/kvm cannot boot Linux (kvm_pvm, no VT-x/AMD-V)," >&2
echo "make run: so govm runs inside a nested L1 guest (QEMU TCG with emulated AMD SVM):" >&2
echo "make run:   govm run ${a[*]}" >&2
echo "make run: the guest's console is below; power it off with 'shutdown -h' (or Ctrl-A x to leave QEMU)." >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/c"
q=""
for x in "${a[@]}"; do q+=" '${x//\'/\'\\\'\'}'"; done
printf 'cd /tmp\necho GOVM-START\ngovm run%s </dev/console\necho GOVM-RC=$?\n' "$q" > "$tmp/c/case.sh"
( cd "$tmp/c" && echo case.sh | cpio -o -H newc --quiet ) > "$tmp/case.cpio"
cat "$B/l1-base.cpio" "$tmp/case.cpio" > "$tmp/l1.cpio"
# govm.cpus=0: govm runs on L1's CPU 0 only, the workaround for the
# emulator's fault (README, "The nested emulator's fault").
qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 4G \
	-kernel "$B/kernel/bzImage" -initrd "$tmp/l1.cpio" -append "console=ttyS0 quiet panic=-1 govm.cpus=0" \
	-nographic -no-reboot -nodefaults -serial mon:stdio
