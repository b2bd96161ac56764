#!/usr/bin/env bash
# Builds (once) the btrfs fixtures from $FIX/debian-minbase with btrfs-progs and the kernel:
#   $FIX/btrfs-mkfs-r.raw   mkfs.btrfs -r of the Debian tree: the OS at the top level (subvolume 5)
#   $FIX/btrfs-fedora.raw   Fedora's layout: DUP metadata, top level holding only the subvolumes
#                           `root` (the Debian tree, copied with cp -a on a loop mount) and `home`
#                           (zstd/, zlib/, lzo/ written with that compression, a 1 GiB sparse
#                           file, preallocated space, xattrs incl. security.selinux, symlinks,
#                           hard links, a nested subvolume `home/nested`); default subvolume 5.
# Idempotent: a finished fixture is reused. Usage: fixture_btrfs.sh FIXDIR
set -euo pipefail
FIX=$1
TREE="$FIX/debian-minbase"
[ -f "$TREE.complete" ] || { echo "fixture_btrfs: $TREE missing" >&2; exit 1; }

if [ ! -f "$FIX/btrfs-mkfs-r.raw" ]; then
  t="$FIX/btrfs-mkfs-r.raw.tmp"; rm -f "$t"
  truncate -s 1G "$t"
  mkfs.btrfs -q -f -L debroot -U 5b0a1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d -r "$TREE" "$t"
  mv "$t" "$FIX/btrfs-mkfs-r.raw"
fi

if [ ! -f "$FIX/btrfs-fedora.raw" ]; then
  t="$FIX/btrfs-fedora.raw.tmp"; rm -f "$t"
  truncate -s 1G "$t"
  mkfs.btrfs -q -f -m dup -d single -L fedora -U 6c1b2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e "$t"
  mnt=$(mktemp -d)
  loop=""
  cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
    rmdir "$mnt"
  }
  trap cleanup EXIT
  loop=$(losetup -f --show "$t")
  mount -t btrfs "$loop" "$mnt"
  btrfs -q subvolume create "$mnt/root"
  btrfs -q subvolume create "$mnt/home"
  cp -a "$TREE/." "$mnt/root/"
  h="$mnt/home"
  # Written with write(2) into each directory: cp and cat would reflink (copy_file_range) the
  # extents of one uncompressed copy instead of compressing new ones.
  text() {
    python3 - "$1" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(60000):
        f.write(f"line {i} of a compressible btrfs fixture file, {i * 7919 % 10007}\n")
PY
  }
  text "$h/text.txt"
  for c in zstd zlib lzo; do
    mkdir "$h/$c"
    btrfs property set "$h/$c" compression "$c"
    cp -a "$TREE/usr/share/doc" "$TREE/etc" "$h/$c/"
    text "$h/$c/text.txt"
    head -c 300 "$h/text.txt" > "$h/$c/small-inline.txt"
  done
  truncate -s 1G "$h/sparse"
  printf 'middle' | dd of="$h/sparse" bs=1 seek=$((300 * 1024 * 1024)) conv=notrunc status=none
  printf 'tail' | dd of="$h/sparse" bs=1 seek=$((1024 * 1024 * 1024 - 4)) conv=notrunc status=none
  fallocate -l 4M "$h/prealloc"
  printf 'written into preallocated space' | dd of="$h/prealloc" bs=1 seek=8192 conv=notrunc status=none
  echo "labelled" > "$h/labelled"
  setfattr -n security.selinux -v "system_u:object_r:user_home_t:s0" "$h/labelled"
  setfattr -n user.color -v blue "$h/labelled"
  setfattr -n user.empty "$h/labelled"
  ln -s labelled "$h/link-short"
  ln -s "$(printf 'x%.0s' $(seq 1 300))" "$h/link-long"
  ln "$h/labelled" "$h/hardlink"
  mkfifo "$h/fifo"
  mknod "$h/null" c 1 3
  mknod "$h/sda" b 8 0
  chown 1000:1000 "$h/labelled"
  chmod 4750 "$h/labelled"
  btrfs -q subvolume create "$h/nested"
  echo "inside a nested subvolume" > "$h/nested/file"
  sync
  umount "$mnt"
  losetup -d "$loop"; loop=""
  mv "$t" "$FIX/btrfs-fedora.raw"
fi
