#!/usr/bin/env bash
# Builds (once) and caches the test fixtures, all made with the reference tools:
#   $FIX/debian-minbase/     a real Debian 12 tree (debootstrap --variant=minbase)
#   $FIX/debian-mbr.qcow2    MBR disk, one ext4 partition made by `mke2fs -d` from that tree, as qcow2
#   $FIX/debian-gpt.raw      GPT disk (sgdisk): FAT32 ESP (mkfs.vfat + mcopy) and ext4 root (mke2fs -d)
#   $FIX/ntfs-gpt.raw        GPT disk, NTFS by mkntfs + ntfs-3g (scripts/fixture_ntfs.sh)
#   $FIX/rocky-mbr.raw       Rocky-Linux-9.4-like guest, rpm sqlite db, /boot + / (scripts/fixture_rocky.sh)
#   $FIX/rocky-lvm-xfs.raw   the same guest as Rocky installs it: /boot XFS, VG rl with XFS root + swap LVs
# Prints $FIX. Idempotent: finished fixtures are reused; delete the directory to rebuild.
set -euo pipefail
FIX=${DISKFAB_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/diskfab-fixtures}
mkdir -p "$FIX"
TREE="$FIX/debian-minbase"
if [ ! -f "$TREE.complete" ]; then
  rm -rf "$TREE" "$TREE.tmp"
  echo "fixtures: debootstrap Debian 12 minbase into $TREE (one time, a few minutes)" >&2
  debootstrap --variant=minbase bookworm "$TREE.tmp" http://deb.debian.org/debian >"$FIX/debootstrap.log" 2>&1 || {
    tail -20 "$FIX/debootstrap.log" >&2; exit 1; }
  rm -rf "$TREE.tmp/var/cache/apt/archives/"*.deb 2>/dev/null || true
  mv "$TREE.tmp" "$TREE"
  touch "$TREE.complete"
fi

# Fixed identities so fixtures are reproducible.
export E2FSPROGS_FAKE_TIME=1700000000
ROOT_UUID=4f0e6a54-2a4e-4c6b-9d3c-1a2b3c4d5e6f
MIB=$((1024 * 1024))

if [ ! -f "$FIX/debian-mbr.qcow2" ]; then
  t="$FIX/debian-mbr.raw.tmp"; rm -f "$t"
  truncate -s 2G "$t"
  echo 'label: dos
label-id: 0x1234abcd
start=2048, type=83, bootable' | sfdisk -q "$t"
  size_k=$(( (2048 * MIB - MIB) / 1024 ))
  mke2fs -q -F -t ext4 -L debroot -U "$ROOT_UUID" -E offset=$MIB -d "$TREE" "$t" "${size_k}k"
  qemu-img convert -f raw -O qcow2 "$t" "$FIX/debian-mbr.qcow2.tmp"
  rm -f "$t"; mv "$FIX/debian-mbr.qcow2.tmp" "$FIX/debian-mbr.qcow2"
fi

if [ ! -f "$FIX/debian-gpt.raw" ]; then
  t="$FIX/debian-gpt.raw.tmp"; rm -f "$t"
  truncate -s 2G "$t"
  sgdisk -U 11111111-2222-3333-4444-555555555555 \
    -n 1:2048:+64M -t 1:EF00 -c 1:EFI -u 1:aaaaaaaa-0000-4000-8000-000000000001 \
    -n 2:0:0 -t 2:8300 -c 2:root -u 2:aaaaaaaa-0000-4000-8000-000000000002 "$t" >/dev/null
  esp_off=$((2048 * 512)); esp_size=$((64 * MIB))
  root_first=$(sgdisk -i 2 "$t" | awk '/First sector/ {print $3}')
  root_last=$(sgdisk -i 2 "$t" | awk '/Last sector/ {print $3}')
  root_off=$((root_first * 512)); root_k=$(( (root_last - root_first + 1) / 2 ))
  esp="$FIX/esp.tmp"; rm -f "$esp"
  mkfs.vfat -F 32 -n ESP -i 12345678 -C "$esp" $((esp_size / 1024)) >/dev/null
  echo "timeout 3" > "$FIX/loader.conf"
  MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/debian ::/loader
  MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$FIX/loader.conf" ::/loader/loader.conf
  MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$TREE/etc/os-release" ::/EFI/debian/os-release.txt
  dd if="$esp" of="$t" bs=1M seek=$((esp_off / MIB)) conv=notrunc status=none
  rm -f "$esp" "$FIX/loader.conf"
  mke2fs -q -F -t ext4 -L root -U "$ROOT_UUID" -E offset=$root_off -d "$TREE" "$t" "${root_k}k"
  mv "$t" "$FIX/debian-gpt.raw"
fi
bash "$(dirname "$0")/fixture_lvm.sh" "$FIX" >&2
DISKFAB_FIXTURES="$FIX" bash "$(dirname "$0")/fixture_xfs.sh" >&2
bash "$(dirname "$0")/fixture_btrfs.sh" "$FIX"
# NTFS made by mkntfs and filled through ntfs-3g (see the script).
bash "$(dirname "$0")/fixture_ntfs.sh" "$FIX" >&2
bash "$(dirname "$0")/fixture_selinux.sh" "$FIX"
bash "$(dirname "$0")/fixture_rocky.sh" "$FIX"
echo "$FIX"
