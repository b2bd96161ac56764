#!/usr/bin/env bash
# Builds (once) $FIX/ntfs-gpt.raw: a GPT disk whose partition 1 (Microsoft basic data, 1 MiB in)
# is NTFS made by mkntfs and populated through the ntfs-3g FUSE driver:
#   /debian/{etc,doc}        cp -a of part of the Debian tree (symlinks included)
#   /Windows/System32/config SOFTWARE and SYSTEM hives built by hivexregedit (as e2e_inspect_windows)
#   /compressed/             a directory with the NTFS compression flag: files stored LZNT1-compressed
#   /sparse.bin              10 MiB with two written islands (sparse runs)
#   /ads.txt                 alternate data streams (ntfs-3g streams_interface=xattr)
#   /bigdir/                 3000 entries (an $INDEX_ALLOCATION B+tree of several levels)
#   /links/                  symlinks made by ntfs-3g, a junction and a symlink reparse point
#   /frag.bin                a file fragmented into hundreds of runs (attribute list)
#   /Long File Name.txt      a Win32 long name with a DOS 8.3 alias
# Usage: fixture_ntfs.sh FIXDIR. Idempotent (the finished image is reused).
set -euo pipefail
FIX=$1
OUT="$FIX/ntfs-gpt.raw"
[ -f "$OUT" ] && exit 0
TREE="$FIX/debian-minbase"
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
MNT="$T/mnt"; LOOP=""
cleanup() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    for _ in 1 2 3 4 5; do umount "$MNT" 2>/dev/null && break; sleep 1; done
    mountpoint -q "$MNT" && umount -l "$MNT"
  fi
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  rm -rf "$T"
}
trap cleanup EXIT
img="$T/disk.raw"
truncate -s 96M "$img"
sgdisk -U 22222222-3333-4444-5555-666666666666 \
  -n 1:2048:0 -t 1:0700 -c 1:Windows -u 1:bbbbbbbb-0000-4000-8000-000000000001 "$img" >/dev/null
last=$(sgdisk -i 1 "$img" | awk '/Last sector/ {print $3}')
LOOP=$(losetup -f --show -o $((2048 * 512)) --sizelimit $(( (last - 2048 + 1) * 512 )) "$img")
mkntfs -q -F -Q -L WINNTFS -c 4096 -p 2048 -H 255 -S 63 "$LOOP" >/dev/null
mkdir -p "$MNT"
ntfs-3g -o streams_interface=xattr,compression "$LOOP" "$MNT"

# Part of the Debian tree.
mkdir -p "$MNT/debian"
cp -a "$TREE/etc" "$MNT/debian/etc"
cp -a "$TREE/usr/share/doc" "$MNT/debian/doc"

# Windows hives (the same content as crates/diskfab-cli/tests/e2e_inspect_windows.rs).
cfg="$MNT/Windows/System32/config"
mkdir -p "$cfg" "$MNT/Program Files"
python3 "$HERE/../crates/diskfab-cli/tests/blank_hive.py" "$T/SOFTWARE"
python3 "$HERE/../crates/diskfab-cli/tests/blank_hive.py" "$T/SYSTEM"
cat >"$T/sw.reg" <<'REG'
Windows Registry Editor Version 5.00

[\Microsoft]

[\Microsoft\Windows NT]

[\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows 10 Pro"
"CurrentBuild"="22631"
"EditionID"="Professional"
"InstallationType"="Client"
"DisplayVersion"="23H2"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentVersion"="6.3"

[\Microsoft\Windows]

[\Microsoft\Windows\CurrentVersion]

[\Microsoft\Windows\CurrentVersion\Uninstall]

[\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip]
"DisplayName"="7-Zip 23.01 (x64)"
"DisplayVersion"="23.01"

[\Microsoft\Windows\CurrentVersion\Uninstall\{0A1B}]
"DisplayName"="Virtio-win-driver-installer"
"DisplayVersion"="0.1.240"
REG
cat >"$T/sys.reg" <<'REG'
Windows Registry Editor Version 5.00

[\Select]
"Current"=dword:00000001

[\ControlSet001]

[\ControlSet001\Services]

[\ControlSet001\Services\Tcpip]

[\ControlSet001\Services\Tcpip\Parameters]
"Hostname"="WIN-NTFS01"

[\ControlSet001\Control]

[\ControlSet001\Control\Session Manager]

[\ControlSet001\Control\Session Manager\Environment]
"PROCESSOR_ARCHITECTURE"="AMD64"

[\ControlSet001\Services\viostor]
"Start"=dword:00000000
"Type"=dword:00000001
"ImagePath"=str(2):"system32\\drivers\\viostor.sys"

[\ControlSet001\Services\netkvm]
"Start"=dword:00000003
"Type"=dword:00000001
"ImagePath"=str(2):"system32\\drivers\\netkvm.sys"

[\MountedDevices]
"\\DosDevices\\C:"=hex:44,4d,49,4f,3a,49,44,3a,bb,bb,bb,bb,00,00,00,40,80,00,00,00,00,00,00,01
REG
hivexregedit --merge "$T/SOFTWARE" "$T/sw.reg"
hivexregedit --merge "$T/SYSTEM" "$T/sys.reg"
cp "$T/SOFTWARE" "$T/SYSTEM" "$cfg/"

# Compressed files: the directory's compression flag makes ntfs-3g compress what is written in it.
mkdir -p "$MNT/compressed"
setfattr -n system.ntfs_attrib_be -v 0x00000800 "$MNT/compressed"
for i in $(seq 1 40); do cat "$TREE/usr/share/common-licenses/GPL-3"; done >"$MNT/compressed/services40.txt"
cp "$TREE/usr/share/common-licenses/GPL-3" "$MNT/compressed/services"
head -c 200000 /dev/urandom >"$T/rand"; cat "$T/rand" "$TREE/usr/share/common-licenses/GPL-3" >"$MNT/compressed/mixed.bin"
printf 'short\n' >"$MNT/compressed/tiny.txt"

# Sparse file: two islands in 10 MiB.
truncate -s 10M "$MNT/sparse.bin"
printf 'island one' | dd of="$MNT/sparse.bin" bs=1 seek=$((3 * 1024 * 1024)) conv=notrunc status=none
head -c 70000 "$TREE/usr/share/common-licenses/GPL-3" | dd of="$MNT/sparse.bin" bs=1 seek=$((7 * 1024 * 1024 + 100)) conv=notrunc status=none

# Alternate data streams.
printf 'main stream\n' >"$MNT/ads.txt"
setfattr -n user.Zone.Identifier -v '[ZoneTransfer]ZoneId=3' "$MNT/ads.txt"
head -c 3000 "$TREE/usr/share/common-licenses/GPL-3" >"$T/big-ads"
setfattr -n user.big -v "0x$(od -An -v -tx1 "$T/big-ads" | tr -d " \n")" "$MNT/ads.txt"

# A directory with thousands of entries.
mkdir -p "$MNT/bigdir"
for i in $(seq -w 1 3000); do printf '%s\n' "$i" >"$MNT/bigdir/entry-$i.txt"; done

# Names: a long name (ntfs-3g also writes no DOS alias; the Windows-made alias is below), mixed case.
printf 'long\n' >"$MNT/Long File Name.txt"
setfattr -n system.ntfs_dos_name -v 'LONGFI~1.TXT' "$MNT/Long File Name.txt"
# Hard links with long names: their $FILE_NAME attributes overflow the record (attribute list).
printf 'linked\n' >"$MNT/hardlinked.txt"
for i in 1 2 3 4 5 6; do
  ln "$MNT/hardlinked.txt" "$MNT/hl-$i-$(printf 'n%.0s' $(seq 1 200))"
done
printf 'Mixed\n' >"$MNT/MiXeD.CaSe"

# Links: ntfs-3g symlinks, a junction and a symlink reparse point (Windows-style).
mkdir -p "$MNT/links"
ln -s ../ads.txt "$MNT/links/rel"
ln -s /Windows/System32 "$MNT/links/abs"
mkdir "$MNT/links/junction" "$MNT/links/wsym"
python3 - "$MNT/links" <<'PY'
import os, struct, sys
def reparse(tag, sub, prt, extra):
    s = sub.encode('utf-16-le'); p = prt.encode('utf-16-le')
    body = struct.pack('<HHHH', 0, len(s), len(s) + 2, len(p)) + extra + s + b'\0\0' + p + b'\0\0'
    return struct.pack('<IHH', tag, len(body), 0) + body
d = sys.argv[1]
os.setxattr(d + '/junction', 'system.ntfs_reparse_data',
            reparse(0xA0000003, '\\??\\C:\\Windows\\System32', 'C:\\Windows\\System32', b''))
os.setxattr(d + '/wsym', 'system.ntfs_reparse_data',
            reparse(0xA000000C, '..\\compressed\\tiny.txt', '..\\compressed\\tiny.txt', struct.pack('<I', 1)))
PY

# A fragmented file: appends interleaved with other allocations give it hundreds of runs.
mkdir -p "$MNT/fill"
head -c $((1500 * 4096)) /dev/urandom >"$T/frag"
for i in $(seq 0 1499); do
  dd if="$T/frag" bs=4096 skip="$i" count=1 status=none >>"$MNT/frag.bin"
  printf x >"$MNT/fill/f$i"; truncate -s 4096 "$MNT/fill/f$i"; printf y >>"$MNT/fill/f$i"
done
rm -rf "$MNT/fill"

sync
for _ in 1 2 3 4 5; do umount "$MNT" 2>/dev/null && break; sleep 1; done
mountpoint -q "$MNT" && { echo "fixture_ntfs: cannot unmount $MNT" >&2; exit 1; }
losetup -d "$LOOP"; LOOP=""
mv "$img" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
