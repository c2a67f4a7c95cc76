#!/usr/bin/env bash
# Builds everything the demo VM and the end-to-end tests boot, into build/:
#   build/kernel/bzImage, build/kernel/vmlinux    Debian's linux-image-cloud-amd64
#   build/kernel/modules/*.ko                     kvm, kvm-amd, kvm-intel, irqbypass, tun (for L1)
#   build/kernel/lib-modules/RELEASE/             the guest modules govm exec loads, as in /lib/modules
#   build/kernel-generic/                         Debian's generic kernel (it has 9p) and its modules, for
#                                                 the exec benchmark's QEMU-over-9p peer
#   build/govm, build/govm-agent, build/govm-host static binaries (govm-host:
#                                                 the tests' host side)
#   build/uroot.cpio                              u-root initramfs with govm-agent as uinit
#   build/gokvm                                   gokvm, pinned by go.mod's tool directive
#   build/l1-peers.cpio                           QEMU and gokvm for L1, the benchmarks' peers
#   build/l1-base.cpio                            busybox and e2fsprogs initramfs for the nested L1 (see scripts/l1-init)
# Each step is skipped when its output is newer than its inputs. Needs root
# for apt-get only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/build
mkdir -p "$B/kernel/modules"
UROOT_VERSION=v0.16.0

log() { echo "assets: $*" >&2; }

# lib_modules SRC DST copies the part of an unpacked /lib/modules/RELEASE
# that govm exec (virtio, the console, virtio-fs, overlayfs) and the 9p
# peer of its benchmark load, with the lists (there is no modules.dep:
# depmod never ran on an unpacked package).
lib_modules() {
	rm -rf "$2"; mkdir -p "$2"
	cp "$1/modules.builtin" "$1/modules.order" "$2/"
	# A kernel without some of them (the cloud one has no 9p) is fine.
	( cd "$1" && { find kernel/drivers/virtio kernel/drivers/char/virtio_console.ko kernel/fs/fuse \
		kernel/fs/overlayfs kernel/fs/9p kernel/net/9p kernel/fs/netfs kernel/fs/fscache \
		kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko \
		-name '*.ko*' 2>/dev/null || true; } |
		cpio -pdm --quiet "$2" )
}

need_pkgs=()
for p in qemu-system-x86:qemu-system-x86_64 busybox-static:busybox cpio:cpio lz4:lz4 e2fsprogs:mkfs.ext4 debootstrap:debootstrap; do
	command -v "${p#*:}" >/dev/null 2>&1 || need_pkgs+=("${p%%:*}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	log "installing ${need_pkgs[*]}"
	SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# 1. The kernel: Debian's cloud kernel, as both L1 and L2.
if [ ! -s "$B/kernel/bzImage" ] || [ ! -e "$B/kernel/guest-modules/virtio-rng.ko" ] \
	|| ! compgen -G "$B/kernel/lib-modules/*/kernel/drivers/net/virtio_net.ko" >/dev/null; then
	log "fetching linux-image-cloud-amd64"
	tmp=$(mktemp -d)
	( cd "$tmp"
	  apt-get download linux-image-cloud-amd64 >/dev/null 2>&1 || { apt-get update -qq && apt-get download linux-image-cloud-amd64 >/dev/null; }
	  dep=$(dpkg-deb -f linux-image-cloud-amd64_*.deb Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -1)
	  apt-get download "$dep" >/dev/null
	  dpkg-deb -x linux-image-[0-9]*.deb x )
	cp "$tmp"/x/boot/vmlinuz-* "$B/kernel/bzImage"
	basename "$tmp"/x/boot/vmlinuz-* | sed 's/^vmlinuz-//' > "$B/kernel/version"
	mdir=$(echo "$tmp"/x/lib/modules/*/kernel)
	for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd arch/x86/kvm/kvm-intel drivers/net/tun; do
		cp "$mdir/$m.ko" "$B/kernel/modules/"
	done
	# The guest's virtio drivers (modules in Debian's kernel), for u-root.
	mkdir -p "$B/kernel/guest-modules"
	for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
		drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
		net/core/failover drivers/net/net_failover drivers/net/virtio_net drivers/char/hw_random/virtio-rng; do
		cp "$mdir/$m.ko" "$B/kernel/guest-modules/"
	done
	# What govm exec's initramfs takes from /lib/modules/RELEASE.
	rel=$(cat "$B/kernel/version")
	lib_modules "$tmp/x/lib/modules/$rel" "$B/kernel/lib-modules/$rel"
	rm -rf "$tmp"
fi

# 1b. Debian's generic kernel, which has 9p (the cloud kernel has not),
#     for the exec benchmark's QEMU peer over 9p; both VMMs boot it there.
if [ ! -s "$B/kernel-generic/bzImage" ] || [ ! -d "$B/kernel-generic/lib-modules" ]; then
	log "fetching linux-image-amd64"
	tmp=$(mktemp -d)
	( cd "$tmp"
	  apt-get download linux-image-amd64 >/dev/null 2>&1 || { apt-get update -qq && apt-get download linux-image-amd64 >/dev/null; }
	  dep=$(dpkg-deb -f linux-image-amd64_*.deb Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -1)
	  apt-get download "$dep" >/dev/null
	  dpkg-deb -x linux-image-[0-9]*.deb x )
	mkdir -p "$B/kernel-generic"
	cp "$tmp"/x/boot/vmlinuz-* "$B/kernel-generic/bzImage"
	rel=$(basename "$tmp"/x/boot/vmlinuz-* | sed 's/^vmlinuz-//')
	echo "$rel" > "$B/kernel-generic/version"
	lib_modules "$tmp/x/lib/modules/$rel" "$B/kernel-generic/lib-modules/$rel"
	rm -rf "$tmp"
fi

# 2. An uncompressed ELF vmlinux from the bzImage's LZ4 payload
#    (boot protocol: payload_offset at 0x248 and payload_length at 0x24c,
#    relative to the protected-mode code after (setup_sects+1)*512 bytes).
if [ ! -s "$B/kernel/vmlinux" ] || [ "$B/kernel/bzImage" -nt "$B/kernel/vmlinux" ]; then
	log "extracting vmlinux"
	u8()  { od -An -tu1 -j "$1" -N1 "$B/kernel/bzImage" | tr -d ' '; }
	u32() { od -An -tu4 -j "$1" -N4 "$B/kernel/bzImage" | tr -d ' '; }
	ss=$(u8 $((0x1f1))); [ "$ss" -eq 0 ] && ss=4
	off=$(( (ss + 1) * 512 + $(u32 $((0x248))) ))
	len=$(u32 $((0x24c)))
	tail -c +$((off + 1)) "$B/kernel/bzImage" | head -c "$len" | lz4 -dc > "$B/kernel/vmlinux.tmp" 2>/dev/null || true
	head -c 4 "$B/kernel/vmlinux.tmp" | grep -q ELF || { log "vmlinux extraction failed"; exit 1; }
	mv "$B/kernel/vmlinux.tmp" "$B/kernel/vmlinux"
fi

# 3. govm and the guest agent, static.
log "building govm, govm-agent and govm-host"
# Replace a binary only when it changed, so later steps see a stable mtime.
build_static() {
	CGO_ENABLED=0 go build -trimpath ${3:+-ldflags="$3"} -o "$1.tmp" "$2"
	if cmp -s "$1.tmp" "$1"; then rm "$1.tmp"; else mv "$1.tmp" "$1"; fi
}
# govm's link flags (see the Makefile): its heap on small pages.
build_static "$B/govm" ./cmd/govm "${GOVM_LDFLAGS:--X=runtime.godebugDefault=disablethp=1}"
build_static "$B/govm-agent" ./guest/cmd/govm-agent
build_static "$B/govm-host" ./internal/govm-host
build_static "$B/govm-net" ./cmd/govm-net
# gokvm, the Go peer the benchmarks run next to govm, at the version go.mod's
# tool directive pins.
build_static "$B/gokvm" github.com/bobuhiro11/gokvm

# 4. The u-root initramfs (L2's root file system), from u-root's own module.
if [ ! -s "$B/uroot.cpio" ] || [ "$B/govm-agent" -nt "$B/uroot.cpio" ]; then
	GOBIN_DIR=$(go env GOPATH)/bin
	if [ ! -x "$GOBIN_DIR/u-root" ]; then
		log "installing u-root $UROOT_VERSION"
		go install "github.com/u-root/u-root@$UROOT_VERSION"
	fi
	src=$(go env GOMODCACHE)/github.com/u-root/u-root@$UROOT_VERSION
	[ -d "$src" ] || go mod download "github.com/u-root/u-root@$UROOT_VERSION"
	log "building the u-root initramfs"
	files=(-files "$B/govm-agent:bin/govm-agent")
	for k in "$B"/kernel/guest-modules/*.ko; do files+=(-files "$k:lib/modules/govm/$(basename "$k")"); done
	( cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 "$GOBIN_DIR/u-root" -o "$B/uroot.cpio.tmp" \
		"${files[@]}" -uinitcmd=/bin/govm-agent \
		core ) >/dev/null 2>"$B/uroot.log" || { cat "$B/uroot.log" >&2; exit 1; }
	mv "$B/uroot.cpio.tmp" "$B/uroot.cpio"
fi

# 5. QEMU and gokvm for L1, the peers the benchmarks run next to govm
#    (appended to L1's initramfs only by the cases that ask for them).
if [ ! -s "$B/l1-peers.cpio" ] || [ "$B/l1-peers.cpio" -ot scripts/assets.sh ] || [ "$B/gokvm" -nt "$B/l1-peers.cpio" ]; then
	log "building the L1 peers archive"
	q=$(mktemp -d)
	qemu=$(command -v qemu-system-x86_64)
	mkdir -p "$q/usr/bin" "$q/usr/share/qemu"
	cp "$qemu" "$q/usr/bin/qemu-system-x86_64"
	cp "$B/gokvm" "$q/usr/bin/gokvm"
	ldd "$qemu" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
		mkdir -p "$q$(dirname "$lib")"
		cp -L "$lib" "$q$lib"
	done
	# Firmware a -kernel boot loads: SeaBIOS, the Linux loader option ROM,
	# the TPR patching ROM, and the PVH loader for an ELF vmlinux.
	for f in bios-256k.bin linuxboot_dma.bin kvmvapic.bin pvh.bin; do
		src=""
		for d in /usr/share/qemu /usr/share/seabios; do [ -e "$d/$f" ] && { src="$d/$f"; break; }; done
		[ -n "$src" ] || { log "QEMU firmware $f not found"; exit 1; }
		cp -L "$src" "$q/usr/share/qemu/$f"
	done
	( cd "$q" && find . | cpio -o -H newc --quiet ) > "$B/l1-peers.cpio"
	rm -rf "$q"
fi


# 6. The L1 base initramfs: busybox, the KVM modules, govm, the L2 kernel and
#    initramfs. Test cases append a second cpio with /case.sh.
if [ -s "$B/l1-base.cpio" ] && [ "$B/l1-base.cpio" -nt "$B/govm" ] && [ "$B/l1-base.cpio" -nt "$B/uroot.cpio" ] \
	&& [ "$B/l1-base.cpio" -nt "$B/govm-host" ] && [ "$B/l1-base.cpio" -nt "$B/govm-net" ] \
	&& [ "$B/l1-base.cpio" -nt scripts/l1-init ] && [ "$B/l1-base.cpio" -nt "$B/kernel/bzImage" ] \
	&& [ "$B/l1-base.cpio" -nt scripts/assets.sh ]; then
	log "up to date"
	exit 0
fi
log "building the L1 initramfs"
l1=$(mktemp -d)
mkdir -p "$l1"/{bin,sbin,dev,proc,sys,tmp,lib/modules,l2,etc}
cp "$(command -v busybox)" "$l1/bin/busybox"
for a in sh mount insmod poweroff cat echo ls mkdir sleep grep head tail dd sync uname rm cp sha256sum ip ifconfig wc seq timeout kill ps date nc mkfifo printf cut tr sed awk ping tee test taskset \
	udhcpc nslookup wget su id chown chmod stat env md5sum; do
	ln -sf busybox "$l1/bin/$a"
done
cp "$B"/kernel/modules/*.ko "$l1/lib/modules/"
# e2fsprogs, for the disk tests' host side (make an ext4 image, read a
# guest's file back, check the file system), with the libraries they load.
for b in mke2fs e2fsck debugfs; do
	p=$(command -v "$b")
	cp "$p" "$l1/sbin/$b"
	ldd "$p" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
		mkdir -p "$l1$(dirname "$lib")"
		cp -L "$lib" "$l1$lib"
	done
done
cp /etc/mke2fs.conf "$l1/etc/"
cp "$B/govm" "$l1/bin/govm"
cp "$B/govm-net" "$l1/bin/govm-net"
cp "$B/govm-host" "$l1/bin/govm-host" # the tests' host side
cp "$B/kernel/bzImage" "$l1/l2/bzImage"
cp "$B/uroot.cpio" "$l1/l2/initramfs.cpio"
cp scripts/l1-init "$l1/init"
chmod +x "$l1/init"
( cd "$l1" && find . | cpio -o -H newc --quiet ) > "$B/l1-base.cpio"
rm -rf "$l1"
log "done: $(du -sh "$B" | cut -f1) in build/"
