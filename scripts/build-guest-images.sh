#!/usr/bin/env bash
# Builds the real-guest images the QEMU compute driver boots (src/compute/qemu), once, offline, from
# Debian packages, into a cache directory (default .tools/guest-images/, or $GUEST_IMAGE_DIR):
#
#   vmlinuz          the Debian cloud kernel, unpacked from its .deb (apt-get download + dpkg-deb -x);
#                    the kernel is never installed on this host
#   initrd.gz        busybox-static, the 8 modules the guest needs (virtio disk, ACPI power button) and an
#                    init script: it counts its boots in sector 0 of its disk, reads its image label from
#                    sector 1, prints `GUEST-BOOT boot=N image=LABEL uptime=S` then `HEARTBEAT n` each second
#   <image>.qcow2    one base per image, its label in sector 1:
#                      cirros    cooperative: acpid powers it off on an ACPI power-button press
#                      stubborn  ignores ACPI (no acpid), for the forced power-off after the timeout
#                      dirty     cooperative, and rewrites 24 MiB of memory in a loop, so a precopy live
#                                migration does not converge unless forced
#   stamp            the inputs the images were built from; a second run with the same inputs is instant
#
# As root it apt-installs what is missing (qemu-system-x86 qemu-utils busybox-static). Nothing else on the
# host changes. Usage: scripts/build-guest-images.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${GUEST_IMAGE_DIR:-$ROOT/.tools/guest-images}"
IMAGES=(cirros stubborn dirty)
# The base disks' virtual size; an instance's overlay is the flavor's root disk, at least this.
BASE_SIZE_MB=16
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev)

log() { echo "build-guest-images: $*" >&2; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The current cloud kernel package (linux-image-6.1.0-NN-cloud-amd64) through the meta-package; when
# apt knows none (no lists), a cache built before is kept as it is.
kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')"
if [[ -z "$kpkg" ]]; then
  if [[ -f "$OUT/stamp" ]]; then
    log "apt knows no linux-image-cloud-amd64; keeping the images in $OUT"
    exit 0
  fi
  apt-get update -qq
  kpkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
fi
[[ -n "$kpkg" ]] || { log "cannot resolve linux-image-cloud-amd64"; exit 1; }
kver="$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')"
bbver="$(dpkg-query -W -f='${Version}' busybox-static)"
stamp="kernel=$kpkg $kver busybox=$bbver script=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

if [[ "${1:-}" != "--force" && -f "$OUT/stamp" && "$(cat "$OUT/stamp")" == "$stamp" ]]; then
  ok=1
  for f in vmlinuz initrd.gz "${IMAGES[@]/%/.qcow2}"; do [[ -s "$OUT/$f" ]] || ok=0; done
  if ((ok)); then
    log "up to date in $OUT ($stamp)"
    exit 0
  fi
fi

log "building into $OUT from $kpkg $kver and busybox-static $bbver"
mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/tmp}/guest-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download runs as _apt

# --- the kernel: downloaded and unpacked, never installed ---
(cd "$work" && apt-get download -qq "$kpkg")
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"

# --- the initramfs ---
rd="$work/initrd"
mkdir -p "$rd"/{bin,dev,proc,sys,tmp,lib/mod,etc/acpi/PWRF}
cp "$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -1)" "$rd/bin/busybox"
for m in "${MODULES[@]}"; do
  ko="$(find "$work/kernel/lib/modules" -name "$m.ko" | head -1)"
  [[ -n "$ko" ]] || { log "module $m.ko not in $kpkg"; exit 1; }
  cp "$ko" "$rd/lib/mod/"
done
# busybox acpid maps KEY_POWER to the action PWRF/00000080 under /etc/acpi. PID 1 is a shell script,
# which ignores the signal plain poweroff sends it: -f powers off at once.
printf '#!/bin/sh\nsync; poweroff -f\n' >"$rd/etc/acpi/PWRF/00000080"
chmod 755 "$rd/etc/acpi/PWRF/00000080"
cat >"$rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
# In dependency order; a module whose dependencies moved in a kernel point release is tried again.
left="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev"
for pass in 1 2 3; do
  failed=""
  for m in $left; do insmod /lib/mod/$m.ko 2>/dev/null || failed="$failed $m"; done
  left=$failed; [ -z "$left" ] && break
done
[ -z "$left" ] || echo "GUEST-ERROR modules not loaded:$left"
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
# The image label in sector 1 of the root disk (written into the base image).
label=$(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | tr -dc 'a-zA-Z0-9._-')
# The stubborn image ignores the ACPI power button: no acpid.
[ "$label" = stubborn ] || acpid -l /tmp/acpid.log
# The boot counter in the first 16 bytes of sector 0, on disk: a power cycle counts, a rebuild restarts.
n=$(dd if=/dev/vda bs=16 count=1 2>/dev/null | tr -dc 0-9); n=$((${n:-0}+1))
printf '%016d' $n | dd of=/dev/vda bs=16 count=1 conv=notrunc,fsync 2>/dev/null
echo "GUEST-BOOT boot=$n image=$label uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ "$label" = dirty ]; then
  # Rewrites 24 MiB of page cache (no zero pages) as fast as the vCPU can.
  yes 0123456789abcdef | head -c 25165824 >/tmp/src
  (while true; do dd if=/tmp/src of=/tmp/dst bs=1M conv=notrunc 2>/dev/null; done) &
fi
i=0; while true; do i=$((i+1)); echo "HEARTBEAT $i"; sleep 1; done
INIT
chmod 755 "$rd/init"
(cd "$rd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initrd.gz"

# --- one qcow2 base per image: zeros (boot counter 0) and the label in sector 1 ---
for image in "${IMAGES[@]}"; do
  raw="$work/$image.raw"
  truncate -s "${BASE_SIZE_MB}M" "$raw"
  printf '%s' "$image" | dd of="$raw" bs=512 seek=1 conv=notrunc status=none
  qemu-img convert -q -f raw -O qcow2 "$raw" "$work/$image.qcow2"
done

# Files move in whole; the stamp last, so an interrupted run builds again.
rm -f "$OUT/stamp"
for f in vmlinuz initrd.gz "${IMAGES[@]/%/.qcow2}"; do mv -f "$work/$f" "$OUT/$f"; done
echo "$stamp" >"$OUT/stamp"
log "done: $(cd "$OUT" && ls | tr '\n' ' ')"
