#!/usr/bin/env bash
# Builds (once) the XFS fixtures with the reference tools (mkfs.xfs, the kernel, xfs_io):
#   $FIX/xfs-v5.raw  1 GiB sparse raw XFS v5 (mkfs.xfs defaults: CRCs, bigtime, reflink, finobt),
#                    the Debian minbase tree copied in through a loop mount (cp -a keeps xattrs and
#                    owners), plus /xfstest: a 5000-entry directory (node form), 60- and 600-entry
#                    directories (block, leaf), a sparse file, unwritten extents, a 6000-extent file
#                    (B+tree data fork), xattrs (security.selinux, 300 names, a 53 KB remote value),
#                    short and long symlinks, hard links, device nodes, a year-2100 timestamp.
#   $FIX/xfs-v4.raw  64 MiB XFS v4 (-m crc=0) populated by mkfs.xfs -p from $FIX/xfs-v4-src (the
#                    kernel refuses v4 mounts, so tests compare against that source tree).
# Needs root (loop mount). Idempotent: finished images are reused.
set -euo pipefail
FIX=${DISKFAB_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/diskfab-fixtures}
TREE="$FIX/debian-minbase"
[ -f "$TREE.complete" ] || { echo "fixture_xfs: $TREE missing: run scripts/fixtures.sh" >&2; exit 1; }
UUID5=5f0e6a54-2a4e-4c6b-9d3c-1a2b3c4d5e70
UUID4=5f0e6a54-2a4e-4c6b-9d3c-1a2b3c4d5e74

if [ ! -f "$FIX/xfs-v5.raw" ]; then
  t="$FIX/xfs-v5.raw.tmp"; rm -f "$t"; truncate -s 1G "$t"
  mkfs.xfs -q -f -L debxfs -m uuid=$UUID5 "$t"
  mnt=$(mktemp -d); trap 'umount "$mnt" 2>/dev/null || true; rmdir "$mnt"' EXIT
  mount -o loop "$t" "$mnt"
  cp -a "$TREE/." "$mnt/"
  x="$mnt/xfstest"; mkdir -p "$x/node" "$x/block" "$x/leaf"
  (cd "$x/node" && seq -f 'entry-%05g-with-a-longer-name' 1 5000 | xargs touch)
  (cd "$x/block" && seq -f 'b%g' 1 60 | xargs touch)
  (cd "$x/leaf" && seq -f 'leaf-entry-%g' 1 600 | xargs touch)
  truncate -s 300M "$x/sparse"
  printf 'head' | dd of="$x/sparse" conv=notrunc status=none
  printf 'middle' | dd of="$x/sparse" bs=1 seek=$((100 * 1024 * 1024 + 5)) conv=notrunc status=none
  printf 'tail' | dd of="$x/sparse" bs=1 seek=$((300 * 1024 * 1024 - 4)) conv=notrunc status=none
  xfs_io -f -c "falloc 0 1m" -c "pwrite -q -S 0x41 64k 8k" "$x/unwritten"
  cmds=(); for i in $(seq 0 5999); do cmds+=(-c "pwrite -q -S $((i % 250 + 1)) $((i * 8192)) 4096"); done
  xfs_io -f "${cmds[@]}" "$x/extents"
  # Interleaved appends with syncs: fragmented extents without holes.
  for i in $(seq 0 199); do
    head -c 4096 /dev/urandom >> "$x/frag-a"; head -c 4096 /dev/urandom >> "$x/frag-b"
    [ $((i % 20)) = 0 ] && sync "$x/frag-a" "$x/frag-b"
  done
  echo hello > "$x/attrs"
  setfattr -n security.selinux -v system_u:object_r:etc_t:s0 "$x/attrs"
  setfattr -n user.small -v tiny "$x/attrs"
  head -c 40000 /dev/urandom | base64 -w0 > "$FIX/xfs-bigattr.tmp"
  setfattr -n user.big -v "$(cat "$FIX/xfs-bigattr.tmp")" "$x/attrs"; rm -f "$FIX/xfs-bigattr.tmp"
  echo short > "$x/short-attrs"; setfattr -n user.one -v 1 "$x/short-attrs"
  setfattr -n security.selinux -v unconfined_u:object_r:user_home_t:s0 "$x/short-attrs"
  echo many > "$x/many-attrs"
  for i in $(seq 1 300); do setfattr -n "user.attr-$i" -v "value-$i-$(printf '%080d' "$i")" "$x/many-attrs"; done
  setfattr -n trusted.t -v trustme "$x/many-attrs"
  ln -s ../etc/os-release "$x/short-link"
  ln -s "/$(printf 'long-component-%03d/' $(seq 1 45))end" "$x/long-link"
  ln "$x/attrs" "$x/hard-link"
  mknod "$x/null" c 1 3; mknod "$x/loop9" b 7 9; mkfifo "$x/fifo"
  echo future > "$x/future"; touch -d '2100-01-02 03:04:05' "$x/future"
  chown 1234:5678 "$x/future"; chmod 4751 "$x/future"
  umount "$mnt"; rmdir "$mnt"; trap - EXIT
  xfs_repair -n "$t" >/dev/null 2>&1 || { echo "fixture_xfs: xfs_repair -n failed on v5" >&2; exit 1; }
  mv "$t" "$FIX/xfs-v5.raw"
fi

if [ ! -f "$FIX/xfs-v4.raw" ]; then
  src="$FIX/xfs-v4-src"; rm -rf "$src"; mkdir -p "$src/dir/sub" "$src/wide"
  cp "$TREE/etc/os-release" "$TREE/etc/passwd" "$src/"
  cp "$TREE/usr/bin/ls" "$src/dir/sub/ls"
  (cd "$src/wide" && seq -f 'wide-entry-%g' 1 400 | xargs touch)
  ln -s os-release "$src/link"
  ln -s "/$(printf 'v4-component-%03d/' $(seq 1 30))end" "$src/long-link"
  proto="$FIX/xfs-v4.proto"
  # Protofile (mkfs.xfs(8)): a boot-image line, a size line, the root, then each entry.
  walk() { # dir indent
    local e n m
    for e in "$1"/*; do
      n=$(basename "$e"); m=$(stat -c %a "$e")
      if [ -L "$e" ]; then echo "$2$n l--$m 0 0 $(readlink "$e")"
      elif [ -d "$e" ]; then echo "$2$n d--$m 0 0"; walk "$e" "$2 "; echo "$2\$"
      else echo "$2$n ---$m 0 0 $e"; fi
    done
  }
  { echo /dev/null; echo "0 0"; echo "d--755 0 0"; walk "$src" " "; echo '$'; } > "$proto"
  t="$FIX/xfs-v4.raw.tmp"; rm -f "$t"; truncate -s 300M "$t"
  mkfs.xfs -q -f -m crc=0 -m uuid=$UUID4 -L v4xfs -p "$proto" "$t"
  xfs_repair -n "$t" >/dev/null 2>&1 || { echo "fixture_xfs: xfs_repair -n failed on v4" >&2; exit 1; }
  mv "$t" "$FIX/xfs-v4.raw"
fi
