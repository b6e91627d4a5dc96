#!/bin/bash
# IPIP end to end in a QEMU guest (this machine's kernel has no ipip module; Debian's stock
# kernel does). Usage: tests/ipip-vm/run.sh BIN_DIR
#   BIN_DIR holds brindle-node, brindle-cni and brindlectl (debug or release).
# Downloads Debian's kernel and busybox-static once (cached in target/ipip-vm), builds an
# initramfs with the host's iproute2 and the stripped Brindle binaries, boots it under TCG
# with no network link to the host, and exits 0 iff the guest printed BRINDLE-IPIP: PASS.
# Needs: apt-get (download only), python3, qemu-system-x86_64, strip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bins=$(cd "$1" && pwd)
work="$here/../../target/ipip-vm"
mkdir -p "$work"
cd "$work"

if [ ! -f vmlinux ]; then
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  kver=${kpkg#linux-image-}
  mkdir -p debs && (cd debs && apt-get download "$kpkg" busybox-static >/dev/null)
  rm -rf kpkg bb && mkdir -p kpkg bb
  dpkg-deb --fsys-tarfile debs/${kpkg}_*.deb | tar -x -C kpkg ./boot/vmlinuz-$kver \
    ./lib/modules/$kver/kernel/net/ipv4/ipip.ko ./lib/modules/$kver/kernel/net/ipv4/tunnel4.ko \
    ./lib/modules/$kver/kernel/net/ipv4/ip_tunnel.ko ./lib/modules/$kver/kernel/drivers/net/veth.ko
  dpkg-deb -x debs/busybox-static_*.deb bb
  # The ELF inside vmlinuz boots without the decompressor (slow under TCG).
  python3 - "kpkg/boot/vmlinuz-$kver" <<'PY'
import lzma, sys
d = open(sys.argv[1], "rb").read(); pos = 0
while True:
    i = d.find(b"\xfd7zXZ\x00", pos)
    if i < 0:
        raise SystemExit("no xz payload")
    try:
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:])
        if out[:4] == b"\x7fELF":
            open("vmlinux", "wb").write(out)
            break
    except lzma.LZMAError:
        pass
    pos = i + 1
PY
fi

kver=$(ls kpkg/lib/modules)
root="$work/root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,proc,sys,dev,run,tmp}
cp bb/bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
for m in net/ipv4/tunnel4 net/ipv4/ip_tunnel net/ipv4/ipip drivers/net/veth; do
  cp "kpkg/lib/modules/$kver/kernel/$m.ko" "$root/lib/modules/"
done
add_bin() { # a host binary and the libraries ldd names
  cp "$1" "$root$2"
  for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
add_bin /bin/ip /usr/sbin/ip
for b in brindle-node brindle-cni brindlectl; do
  strip -o "$work/$b" "$bins/$b"
  add_bin "$work/$b" "/bin/$b"
done
cp "$here/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | "$work/bb/bin/busybox" cpio -o -H newc -R 0:0 | gzip -1) > initrd.gz

log="$work/console.log"
timeout -k 5 "${IPIP_VM_TIMEOUT:-420}" qemu-system-x86_64 -M pc -accel tcg -m 1024 -smp 1 -nographic \
  -kernel vmlinux -initrd initrd.gz -append "console=ttyS0 quiet panic=-1" \
  -no-reboot -nic none </dev/null >"$log" 2>&1 || true
grep -a "BRINDLE-IPIP" "$log" || tail -n 60 "$log"
grep -aq "BRINDLE-IPIP: PASS" "$log"
