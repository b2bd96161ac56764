#!/usr/bin/env bash
# Writes seed inputs for the hive, packages and initramfs fuzz targets into OUT/{hive,packages,
# initramfs} with the reference tools (hivex, rpm/rpmbuild, cpio + compressors).
# Usage: bash scripts/fuzz_inspect_seeds.sh OUT
set -euo pipefail
OUT=$1; S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
mkdir -p "$OUT/hive" "$OUT/packages" "$OUT/initramfs"
python3 crates/diskfab-cli/tests/blank_hive.py "$S/SYSTEM"
printf '[\\Select]\n"Current"=dword:00000001\n\n[\\ControlSet001]\n\n[\\ControlSet001\\Services]\n\n[\\ControlSet001\\Services\\viostor]\n"Start"=dword:00000000\n"ImagePath"=str(2):"x.sys"\n\n[\\Microsoft]\n\n[\\Microsoft\\Windows NT]\n\n[\\Microsoft\\Windows NT\\CurrentVersion]\n"ProductName"="Windows 10 Pro"\n"CurrentBuild"="22631"\n' > "$S/s.reg"
hivexregedit --merge "$S/SYSTEM" "$S/s.reg"
cp "$S/SYSTEM" "$OUT/hive/seed-hivex"
head -c 4200 "$S/SYSTEM" > "$OUT/hive/seed-hivex-cut"
mkdir -p "$S/top" "$S/root"
printf 'Name: seed\nEpoch: 1\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n%%description\nd\n%%files\n' > "$S/seed.spec"
rpmbuild -bb --quiet --define "_topdir $S/top" "$S/seed.spec" >/dev/null 2>&1
rpm --define '_db_backend sqlite' --root "$S/root" --dbpath /var/lib/rpm --initdb
rpm --define '_db_backend sqlite' --root "$S/root" --dbpath /var/lib/rpm -i --nodeps --noscripts "$S"/top/RPMS/noarch/*.rpm 2>/dev/null
python3 - "$S/root/var/lib/rpm/rpmdb.sqlite" "$OUT/packages" <<'PY'
import sqlite3,sys,os
blob=sqlite3.connect(sys.argv[1]).execute('select blob from Packages').fetchone()[0]
open(os.path.join(sys.argv[2],'seed-rpm-header'),'wb').write(b'\0'+blob)
p=os.path.join(os.environ.get('TMPDIR','/tmp'),'seed-%d.sqlite'%os.getpid())
c=sqlite3.connect(p); c.execute('PRAGMA page_size=512'); c.execute('CREATE TABLE Packages(hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)')
c.execute('INSERT INTO Packages(blob) VALUES (?)',(blob,)); c.execute('INSERT INTO Packages(blob) VALUES (?)',(b'\xff'*40,)); c.commit(); c.close()
open(os.path.join(sys.argv[2],'seed-rpmdb-sqlite'),'wb').write(b'\1'+open(p,'rb').read()); os.remove(p)
PY
printf '\002Package: a\nStatus: install ok installed\nVersion: 1:2-3\n\n' > "$OUT/packages/seed-dpkg"
printf '\003P:musl\nV:1.2.4-r2\nA:x86_64\n\n' > "$OUT/packages/seed-apk"
printf '\004%%NAME%%\nlinux\n\n%%VERSION%%\n6.6-1\n' > "$OUT/packages/seed-pacman"
printf '\005network:\n  ethernets:\n    e:\n      match: {macaddress: "52:54:00:00:00:01"}\n      dhcp4: true\n      routes: [{to: default, via: 10.0.0.1}]\n' > "$OUT/packages/seed-netplan"
mkdir -p "$S/ir/kernel/x86/microcode" "$S/irm/lib/modules/6.1/kernel/drivers/block"
echo u > "$S/ir/kernel/x86/microcode/GenuineIntel.bin"; echo m > "$S/irm/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko.xz"
(cd "$S/ir" && find . | cpio -o -H newc --quiet) > "$S/early.cpio"
(cd "$S/irm" && find . | cpio -o -H newc --quiet) > "$S/main.cpio"
for c in "gzip -9" "xz --check=crc32" "zstd -q" "lz4 -l -q"; do
  n=${c%% *}; { cat "$S/early.cpio"; $c < "$S/main.cpio"; } > "$OUT/initramfs/seed-$n"
done
# Multi-segment images: early cpio, zstd, zero padding, xz; and two gzip members then lz4 legacy.
mkdir -p "$S/irn/lib/modules/6.1/kernel/drivers/net"; echo m > "$S/irn/lib/modules/6.1/kernel/drivers/net/virtio_net.ko"
(cd "$S/irn" && find . | cpio -o -H newc --quiet) > "$S/net.cpio"
{ cat "$S/early.cpio"; zstd -q < "$S/main.cpio"; head -c 8 /dev/zero; xz --check=crc32 < "$S/net.cpio"; } > "$OUT/initramfs/seed-multi-zstd-xz"
{ gzip < "$S/main.cpio"; gzip < "$S/net.cpio"; lz4 -l -q < "$S/net.cpio"; } > "$OUT/initramfs/seed-multi-gzip2-lz4"
# A dirty hive followed by its transaction log (fuzz_hive splits at the log's regf signature).
cp "$S/SYSTEM" "$S/S1"
printf '[\\ControlSet001\\Services\\viostor]\n"Start"=dword:00000003\n"Group"="SCSI miniport"\n' > "$S/s1.reg"
hivexregedit --merge "$S/S1" "$S/s1.reg"
python3 crates/diskfab-cli/tests/hive_log.py "$S/SYSTEM" "$S/S1" "$S/dirty" "$S/dirty.LOG1"
cat "$S/dirty" "$S/dirty.LOG1" > "$OUT/hive/seed-dirty-with-log"
