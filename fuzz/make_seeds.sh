#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into OUT/<target>/ (default fuzz/seeds, which is
# committed) from real material: reference tools (qemu-img, qemu-io, sfdisk, mkfs.fat + mtools,
# rpmbuild, cpio, hivex, useradd/chpasswd) and files of the Debian minbase tree
# ($DISKFAB_FIXTURES/debian-minbase, see scripts/fixtures.sh). Network configurations are
# written by hand in each format's documented syntax; netplan's come from netplan's own examples.
# Committed seeds stay small (each target ≤ ~256 KiB before git's compression); `--full` (used by
# scripts/fuzz.sh for the working corpus) keeps longer image prefixes.
# After regenerating: update the pinned counts in crates/diskfab-core/tests/fuzz_regressions.rs.
# Usage: bash fuzz/make_seeds.sh [OUT] [--full]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-fuzz/seeds}; FULL=${2:-}
FIX=${DISKFAB_FIXTURES:-$HOME/.cache/diskfab-fixtures}; MB=$FIX/debian-minbase
[ -f "$MB/etc/passwd" ] || { echo "make_seeds: $MB missing: run bash scripts/fixtures.sh" >&2; exit 1; }
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
d() { mkdir -p "$OUT/$1"; echo "$OUT/$1"; }
# head N: the committed length, or LONG with --full.
cut_to() { if [ -n "$FULL" ]; then echo "$2"; else echo "$1"; fi; }

# --- disk image formats ---------------------------------------------------------------------
o=$(d qcow2); head -c 200000 /dev/urandom > "$S/data.raw"
qemu-img convert -q -c -O qcow2 -o cluster_size=4096 "$S/data.raw" "$S/comp.q"
qemu-img convert -q -O qcow2 -o cluster_size=512 "$S/data.raw" "$S/c512.q"
qemu-img create -q -f qcow2 -o compat=0.10 "$S/v2.q" 1M
qemu-img create -q -f qcow2 -b data.raw -F raw "$S/ovl.q"
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k "$S/extl2.q" 1M
qemu-io -c "write -P 7 2k 3k" -c "write -z 8k 1k" -c "write -c -P 9 32k 16k" "$S/extl2.q" >/dev/null
(cd "$S" && qemu-img create -q -f qcow2 -o data_file=df.raw,cluster_size=4k df.q 1M \
  && qemu-io -c "write -P 7 0 8k" df.q >/dev/null)
qemu-img create -q -f qcow2 -o cluster_size=4k "$S/snap.q" 1M
qemu-io -c "write -P 1 0 16k" "$S/snap.q" >/dev/null && qemu-img snapshot -c one "$S/snap.q"
qemu-io -c "write -P 2 4k 4k" "$S/snap.q" >/dev/null && qemu-img snapshot -c two "$S/snap.q"
head -c 65536 "$S/extl2.q" > "$o/seed-extl2"; head -c 20480 "$S/df.q" > "$o/seed-df"
head -c 57484 "$S/snap.q" > "$o/seed-snap"
for n in comp c512 v2 ovl; do head -c "$(cut_to 24576 65536)" "$S/$n.q" > "$o/seed-$n"; done

o=$(d mbr_gpt)   # sector-exact layouts so that whole 64 KiB disks hold every table
truncate -s 64K "$S/mbr.raw" "$S/gpt.raw"
printf 'label: dos\nstart=4,size=28,type=83\nstart=32,size=96,type=5\nstart=34,size=30,type=82\nstart=66,size=62,type=83\n' \
  | sfdisk -q "$S/mbr.raw" >/dev/null
printf 'label: gpt\nfirst-lba: 34\nstart=34,size=30,type=L\nstart=64,size=30,type=U\n' | sfdisk -q "$S/gpt.raw" >/dev/null
cp "$S/mbr.raw" "$o/seed-mbr-logical"; cp "$S/gpt.raw" "$o/seed-gpt"

o=$(d vdi)
qemu-img create -q -f vdi "$S/d.vdi" 4M && qemu-io -f vdi -c "write -P 7 0 8k" "$S/d.vdi" >/dev/null
qemu-img create -q -f vdi -o static=on "$S/s.vdi" 2M
for n in d s; do head -c "$(cut_to 16384 65536)" "$S/$n.vdi" > "$o/seed-$n"; done

o=$(d vhd)
qemu-img create -q -f vpc "$S/d.vhd" 6M && qemu-io -f vpc -c "write -P 7 0 8k" "$S/d.vhd" >/dev/null
qemu-img create -q -f vpc "$S/e.vhd" 6M
qemu-img create -q -f vpc -o subformat=fixed "$S/f.vhd" 64k
head -c "$(cut_to 65536 1048576)" "$S/d.vhd" > "$o/seed-dynamic-data"
cp "$S/e.vhd" "$o/seed-dynamic-empty"; cp "$S/f.vhd" "$o/seed-fixed"

o=$(d vmdk)
head -c 300000 /dev/urandom > "$S/v.raw"; truncate -s 1M "$S/v.raw"
for f in monolithicSparse streamOptimized monolithicFlat; do
  qemu-img convert -q -O vmdk -o subformat=$f "$S/v.raw" "$S/$f.vmdk"
done
head -c "$(cut_to 98304 1048576)" "$S/monolithicSparse.vmdk" > "$o/seed-sparse"
head -c "$(cut_to 98304 1048576)" "$S/streamOptimized.vmdk" > "$o/seed-stream"
cp "$S/monolithicFlat.vmdk" "$o/seed-flat-descriptor"

# vhdx (fuzz_vhdx's layout: the first 320 KiB, then the first 64 KiB of each following MiB;
# mostly zeroes, which git compresses away): dynamic with data, fixed, a pending log.
o=$(d vhdx)
qemu-img create -q -f vhdx -o block_size=1M "$S/s.vhdx" 24M && qemu-io -f vhdx -c "write -P 7 3M 8k" "$S/s.vhdx" >/dev/null
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$S/f.vhdx" 4M
printf '[inject-error]\nevent = "pwritev"\nerrno = "5"\nsector = "4096"\nonce = "off"\niotype = "write"\n' > "$S/bd.conf"
qemu-img create -q -f vhdx -o block_size=1M "$S/dirty.vhdx" 24M
qemu-io -c "write -P 0x21 1M 5M" -c abort "json:{\"driver\":\"vhdx\",\"cache\":{\"no-flush\":true},\"file\":{\"driver\":\"blkdebug\",\"config\":\"$S/bd.conf\",\"image\":{\"driver\":\"file\",\"filename\":\"$S/dirty.vhdx\"}}}" >/dev/null 2>&1 || true
for n in s f dirty; do
  { head -c 327680 "$S/$n.vhdx"; for m in $(seq 1 "$(cut_to 4 11)"); do dd if="$S/$n.vhdx" bs=64K skip=$((m * 16)) count=1 status=none; done; } > "$o/seed-$n"
done

# --- files diskfab parses from guests -------------------------------------------------------
o=$(d accounts)   # passwd NUL shadow NUL group, from minbase and after useradd/chpasswd/usermod
R=$S/root; mkdir -p "$R/etc"; cp "$MB"/etc/{passwd,shadow,group,gshadow,login.defs} "$R/etc/"
acct() { { cat "$R/etc/passwd"; printf '\0'; cat "$R/etc/shadow"; printf '\0'; cat "$R/etc/group"; } > "$o/$1"; }
acct seed-minbase
groupadd -R "$R" -g 27 sudo 2>/dev/null || true
useradd -R "$R" -M -s /bin/bash -G sudo alice
echo 'alice:fuzz-seed-password' | chpasswd -R "$R" -c SHA512
useradd -R "$R" -M -u 1500 -s /bin/sh bob && usermod -R "$R" -L bob
acct seed-useradd
printf 'root:x:0:0:root:/root:/bin/bash\nadm:x:3:4:adm:/var/adm:/sbin/nologin\nops:x:1000:10::/home/ops:/bin/bash\n\0root:!!::0:99999:7:::\nops::19000:0:99999:7:::\n\0root:x:0:\nwheel:x:10:ops\n' > "$o/seed-wheel"

o=$(d file_contexts)   # Debian's reference policy (scripts/fixture_selinux.sh): FILE_CONTEXTS %% PATHS
SP=$FIX/selinux-default
P=$'/etc/passwd\n/usr/bin/ls\n/home/alice/.ssh/authorized_keys\n/var/www/html/index.html\n/lib/systemd/systemd\n/var/run/x\n/dev/null'
{ head -n "$(cut_to 150 5000)" "$SP/file_contexts"; printf '%%%%\n%s\n' "$P"; } > "$o/seed-base"
{ grep -v '^#' "$SP/file_contexts.homedirs" | sed -n '1,60p'; printf '%%%%\n%s\n' "$P"; } > "$o/seed-homedirs"
grep -E '^/(usr|etc|var)' "$SP/file_contexts" | tail -n 120 > "$S/fc-tail"
{ cat "$S/fc-tail"; printf '%%%%\n%s\n' "$P"; awk '$1 !~ /[][().*+?|^$\\{]/ {print $1}' "$S/fc-tail" | sed -n '1,20p'; } > "$o/seed-tail"

o=$(d sudoers)   # Debian's sudo package: the default file and the upstream examples
cp /usr/share/doc/sudo/examples/sudoers "$o/seed-upstream-example"
cp /usr/share/doc/sudo/examples/sudoers.dist "$o/seed-sudoers-dist"
cp /etc/sudoers "$o/seed-debian-default"
printf 'Defaults:ci !requiretty\nci, %%deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app, \\\n    /usr/bin/journalctl\n#includedir /etc/sudoers.d\n' > "$o/seed-dropin"

o=$(d netconf)   # selector byte: 0 ifupdown, 1 NM keyfile, 2 networkd, 3 ifcfg, 4 netplan, 5 udev
printf '\000# interfaces(5)\nsource /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet static\n    address 192.0.2.7/24\n    gateway 192.0.2.254\n    dns-nameservers 192.0.2.1 198.51.100.1\n    hwaddress ether 52:54:00:12:34:56\niface ens3 inet6 auto\n' > "$o/seed-ifupdown"
printf '\001[connection]\nid=Wired connection 1\nuuid=2b8e4f0a-6f4e-4a8e-9d1c-6b2f3a4c5d6e\ntype=ethernet\ninterface-name=enp1s0\n\n[ethernet]\nmac-address=52:54:00:AB:CD:EF\n\n[ipv4]\naddress1=10.0.0.10/24,10.0.0.1\ndns=10.0.0.2;10.0.0.3;\nmethod=manual\n\n[ipv6]\naddr-gen-mode=stable-privacy\nmethod=auto\n' > "$o/seed-nm-keyfile"
printf '\002[Match]\nMACAddress=52:54:00:01:02:03\n\n[Network]\nDHCP=ipv4\nDNS=9.9.9.9 149.112.112.112\n\n[Address]\nAddress=198.51.100.5/24\n\n[Route]\nGateway=198.51.100.1\n' > "$o/seed-networkd"
printf '\002[Match]\nName=en*\n\n[Network]\nDHCP=yes\nAddress=fd00::5/64\nGateway=fd00::1\n' > "$o/seed-networkd-dhcp"
printf '\003TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=none\nIPADDR=172.16.4.20\nPREFIX=22\nGATEWAY=172.16.4.1\nDNS1=172.16.0.53\nDNS2="172.16.1.53"\nHWADDR=00:16:3E:5A:00:01\n' > "$o/seed-ifcfg"
for f in bonding bridge_vlan dhcp static static_multiaddress vlan wireless route_metric; do
  { printf '\004'; cat "/usr/share/doc/netplan/examples/$f.yaml"; } > "$o/seed-netplan-$f"
done
printf '\005# This file was automatically generated by the /lib/udev/write_net_rules\n# PCI device 0x8086:0x100e (e1000)\nSUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:9a:bc:de", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"\n' > "$o/seed-udev"

o=$(d fstab)   # fstab(5) as installers write it
printf '# /etc/fstab: static file system information.\n#\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\nUUID=3f2b7c1e-8e4a-4c55-9d0e-2a7b1c9f0e11 /               ext4    errors=remount-ro 0       1\nUUID=9A1B-2C3D  /boot/efi       vfat    umask=0077      0       1\nUUID=6c0d3e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6 none            swap    sw              0       0\n/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n' > "$o/seed-debian-installer"
printf '\n#\n# /etc/fstab\n# Created by anaconda\n#\n/dev/mapper/rhel-root   /                       xfs     defaults        0 0\nUUID=0b7e9a5c-2d1f-4e3a-b6c8-9f0a1b2c3d4e /boot xfs defaults 0 0\n/dev/mapper/rhel-swap   none                    swap    defaults        0 0\n' > "$o/seed-anaconda"
printf 'LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\nPARTUUID=0f5e1d2c-01 /boot ext4 defaults 0 2\ntmpfs /tmp tmpfs nosuid,nodev,size=512M 0 0\nserver:/export /mnt/nfs nfs4 _netdev,noauto 0 0\n' > "$o/seed-cloud"

o=$(d elf)   # the first 4 KiB of minbase binaries; other machines by patching e_machine (and
             # EI_CLASS/EI_DATA) of a copy, as cross-built binaries would have them
for b in bin/sh usr/bin/ls usr/lib/x86_64-linux-gnu/libc.so.6 usr/bin/dpkg; do
  head -c 4096 "$MB/$b" > "$o/seed-$(basename "$b")"
done
python3 - "$o" <<'PY'
import sys, os
o = sys.argv[1]; b = bytearray(open(os.path.join(o, 'seed-sh'), 'rb').read())
for name, cls, data, mach in [('aarch64', 2, 1, 0xb7), ('riscv64', 2, 1, 0xf3), ('i386', 1, 1, 3),
                              ('armv7l', 1, 1, 0x28), ('ppc64le', 2, 1, 0x15), ('ppc64-be', 2, 2, 0x15), ('s390x-be', 2, 2, 0x16)]:
    c = bytearray(b); c[4] = cls; c[5] = data
    c[18:20] = mach.to_bytes(2, 'little' if data == 1 else 'big')
    open(os.path.join(o, 'seed-' + name), 'wb').write(c)
PY

o=$(d osrelease)
cp "$MB/usr/lib/os-release" "$o/seed-debian12"
printf 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n' > "$o/seed-ubuntu"
printf 'NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n' > "$o/seed-rocky"
printf "NAME='Alpine Linux'\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME='Alpine Linux v3.20'\n" > "$o/seed-alpine"

o=$(d rpm)   # main headers of packages built by rpmbuild (lead and signature header skipped)
mkdir -p "$S/top" "$S/files/usr/share/seed"; echo data > "$S/files/usr/share/seed/a"
for spec in "a:0:1.0:noarch:" "bee:3:2.5.1:x86_64:/usr/share/seed/a" "sea:0:0.1~rc1:noarch:%config(noreplace) /usr/share/seed/a"; do
  IFS=: read -r n e v a f <<<"$spec"
  { printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: fuzz seed %s\nLicense: MIT\nBuildArch: %s\n' "$n" "$v" "$n" "$a"
    [ "$e" = 0 ] || printf 'Epoch: %s\n' "$e"
    printf 'Requires: /bin/sh\n%%description\nSeed for the rpm header fuzz target.\n%%install\ncp -a %s/files/. %%{buildroot}/\n%%post\ntrue\n%%files\n%s\n' "$S" "$f"
  } > "$S/$n.spec"
  rpmbuild -bb --quiet --define "_topdir $S/top" --define '_build_id_links none' --define '_unpackaged_files_terminate_build 0' "$S/$n.spec" >/dev/null 2>&1
done
python3 - "$o" "$S"/top/RPMS/*/*.rpm <<'PY'
import sys, os, struct
def header_len(b, at):
    n, size = struct.unpack('>II', b[at + 8:at + 16])
    return 16 + 16 * n + size
for p in sys.argv[2:]:
    b = open(p, 'rb').read()
    sig = 96; end = sig + header_len(b, sig); end += (8 - end % 8) % 8
    main = b[end:end + header_len(b, end)]
    assert main[:4] == b'\x8e\xad\xe8\x01'
    open(os.path.join(sys.argv[1], 'seed-' + os.path.basename(p).split('-')[0]), 'wb').write(main)
PY

o=$(d cpio)   # newc and crc archives of minbase files, and an archive cut short
(cd "$MB" && printf '%s\n' etc etc/hostname etc/passwd etc/group etc/os-release usr/lib/os-release etc/issue \
  | cpio -o -H newc --quiet) > "$o/seed-newc"
(cd "$MB" && printf '%s\n' etc/shells etc/debian_version etc/motd | cpio -o -H crc --quiet) > "$o/seed-crc"
head -c 1500 "$o/seed-newc" > "$o/seed-newc-cut"

o=$(d fat_dotfix)   # selector byte (0 FAT12, 1 FAT16, 2 FAT32) + a mkfs.fat volume with /DIR/SUB
for v in "0:12:64:65536:" "1:16:4200:65536:-s 1" "2:32:33300:8192:-s 1 -f 1"; do
  IFS=: read -r sel bits kib keep extra <<<"$v"
  mkfs.fat -C $extra -F "$bits" -n SEED "$S/fat$bits" "$kib" >/dev/null 2>&1
  mmd -i "$S/fat$bits" ::/DIR ::/DIR/SUB ::/Other
  echo x > "$S/x.txt" && mcopy -i "$S/fat$bits" "$S/x.txt" ::/DIR/SUB/
  # FAT32 (mtools needs its 65525 clusters, so a 256 KiB FAT of zeroes, which git compresses
  # away): keep through the first data clusters.
  [ "$bits" != 32 ] || keep=$(( $(python3 -c "import sys;b=open(sys.argv[1],'rb').read(64);print((int.from_bytes(b[14:16],'little')+b[16]*int.from_bytes(b[36:40],'little'))*512)" "$S/fat$bits") + keep ))
  { printf "\\00$sel"; head -c "$keep" "$S/fat$bits"; } > "$o/seed-fat$bits"
done
# What fatfs 0.3.6 writes (the bug dotfix repairs): an LFN slot before `.` and before `..`.
python3 - "$o/seed-fat12" "$o/seed-fat12-lfn-dots" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); v = b[1:]
bps = int.from_bytes(v[11:13], 'little'); spc = v[13]; res = int.from_bytes(v[14:16], 'little')
fats = v[16]; roots = int.from_bytes(v[17:19], 'little'); fsz = int.from_bytes(v[22:24], 'little')
root = (res + fats * fsz) * bps; data = root + roots * 32
for e in range(roots):
    ent = v[root + e * 32: root + e * 32 + 32]
    if ent[:11] == b'DIR        ':
        c = int.from_bytes(ent[26:28], 'little'); break
off = data + (c - 2) * spc * bps
size = spc * bps; dot, dotdot, rest = bytes(v[off:off + 32]), bytes(v[off + 32:off + 64]), bytes(v[off + 64:off + size - 64])
lfn = bytearray(32); lfn[0] = 0x41; lfn[11] = 0x0f
v[off:off + size] = bytes(lfn) + dot + bytes(lfn) + dotdot + rest   # SUB moves down two slots
open(sys.argv[2], 'wb').write(b[:1] + v)
PY

# --- volume managers: LVM2 (lvm2 tools without device-mapper) and LUKS (cryptsetup) ----------
# From the fixture (scripts/fixture_lvm.sh): a PV's label + metadata area, its text, LUKS headers;
# and a minimal PV (pvcreate on a 512 KiB loop device, 8 KiB extents) whose LVs the fuzzer maps.
LVMF=$FIX/lvm.raw
[ -f "$FIX/lvm.complete" ] || { echo "make_seeds: $LVMF missing: run bash scripts/fixtures.sh" >&2; exit 1; }
pstart() { echo $(( $(sgdisk -i "$1" "$LVMF" | awk '/First sector/ {print $3}') * 512 )); }
o=$(d lvm)
dd if="$LVMF" of="$o/seed-pv-fixture" bs=512 skip=$(( $(pstart 2) / 512 )) count=56 status=none
python3 - "$o/seed-pv-fixture" "$o/seed-text-rl" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
off, size = struct.unpack_from("<QQ", b, 4096 + 40)
open(sys.argv[2], "wb").write(b[4096 + off:4096 + off + size])
PY
truncate -s 512K "$S/pv.img"
LV_LOOP=$(losetup -f --show "$S/pv.img")
C="devices{filter=[\"a|^$LV_LOOP\$|\",\"r|.*|\"] use_devicesfile=0 obtain_device_list_from_udev=0 pv_min_size=512}
   activation{udev_sync=0 udev_rules=0 monitoring=0} backup{backup=0 archive=0} global{activation=0}"
{ pvcreate -q --config "$C" -u FZpv00-0000-0000-0000-0000-0000-000000 --norestorefile --metadatasize 16k \
    --dataalignment 64k "$LV_LOOP" && vgcreate -q --config "$C" -s 8k fz "$LV_LOOP" \
  && lvcreate -q --config "$C" -an -Zn -l 4 -n a fz && lvcreate -q --config "$C" -an -Zn -l 2 -n b fz \
  && lvextend -q --config "$C" -l +2 fz/a; } >/dev/null 2>&1 || { losetup -d "$LV_LOOP"; exit 1; }
losetup -d "$LV_LOOP"
head -c $((128 * 1024)) "$S/pv.img" > "$o/seed-pv-small"
o=$(d luks)
dd if="$LVMF" of="$o/seed-luks1" bs=512 skip=$(( $(pstart 4) / 512 )) count=8 status=none
dd if="$LVMF" of="$o/seed-luks2" bs=512 skip=$(( $(pstart 5) / 512 )) count=32 status=none
# --- btrfs: superblock, nodes and compressed extents cut from the fixtures (mkfs.btrfs -r and
# the kernel's zstd/zlib/lzo writes; scripts/fixture_btrfs.sh), located with btrfs-progs.
o=$(d btrfs); BF=$FIX/btrfs-fedora.raw; BR=$FIX/btrfs-mkfs-r.raw
[ -f "$BF" ] && [ -f "$BR" ] || { echo "make_seeds: btrfs fixtures missing: run bash scripts/fixtures.sh" >&2; exit 1; }
{ printf '\000'; dd if="$BF" bs=4096 skip=16 count=1 status=none; } > "$o/seed-superblock"
node_seed() {  # IMAGE TREE NAME: the first node dump-tree prints for TREE, behind selector 1
  local at; at=$(btrfs inspect-internal dump-tree -t "$2" "$1" 2>/dev/null | awk '/^(leaf|node) [0-9]+ / && !x {print $2; x=1}')
  btrfs-map-logical -l "$at" -b 16384 -o "$S/node" "$1" >/dev/null 2>&1
  { printf '\001'; cat "$S/node"; } > "$o/seed-$3"
}
node_seed "$BF" chunk chunk-tree; node_seed "$BF" root root-tree; node_seed "$BR" fs fs-tree-leaf
btrfs inspect-internal dump-tree "$BF" 2>/dev/null | awk '
  /extent data disk byte/ {d=$5; n=$7}
  /extent data offset 0 nr/ {r=$8}
  /extent compression [123] / {c=$3; if (!(c in seen) && n <= 65536 && r <= 131072) {seen[c]=1; print c, d, n, r}}' |
while read -r c at n r; do
  name=$(case $c in 1) echo zlib;; 2) echo lzo;; 3) echo zstd;; esac)
  btrfs-map-logical -l "$at" -b "$n" -o "$S/ext" "$BF" >/dev/null 2>&1
  sel=$((c + 1))  # fuzz_btrfs selectors: 2 zlib, 3 lzo, 4 zstd
  { printf "\\$(printf '%03o' "$sel")\\$(printf '%03o' $((r / 512 - 1)))"; cat "$S/ext"; } > "$o/seed-$name-extent"
done
o=$(d ntfs)   # selector byte + a structure cut from mkntfs/ntfs-3g output (scripts/fixture_ntfs.sh)
truncate -s 2M "$S/ntfs.img" && mkntfs -q -F -Q -c 512 -L SEED "$S/ntfs.img" >/dev/null 2>&1
printf 'hello\n' > "$S/h.txt" && ntfscp -q "$S/ntfs.img" "$S/h.txt" hello.txt
{ printf '\000'; head -c "$(cut_to 98304 2097152)" "$S/ntfs.img"; } > "$o/seed-volume"
python3 - "$FIX/ntfs-gpt.raw" "$o" <<'PY'
import struct, sys
img, out = sys.argv[1], sys.argv[2]
f = open(img, 'rb'); part = 1 << 20
f.seek(part); boot = f.read(512)
bps = struct.unpack_from('<H', boot, 11)[0]; cs = bps * boot[13]; mft = struct.unpack_from('<Q', boot, 0x30)[0]
def at(off, n): f.seek(part + off); return f.read(n)
def write(name, sel, b): open(f'{out}/seed-{name}', 'wb').write(bytes([sel]) + b)
write('mft-record', 1, at(mft * cs, 1024))             # $MFT's own record: runlist, bitmap
recs = [at(mft * cs + i * 1024, 1024) for i in range(16, 4096)]
# the record with the most attributes (hard links with long names: an attribute list)
write('record-attrlist', 1, max((r for r in recs if r[:4] == b'FILE'), key=lambda r: r.count(b'\x30\x00\x00\x00')))
vol = at(0, 96 << 20)
indx = next(i for i in range(0, len(vol), cs) if vol[i:i + 4] == b'INDX')
write('indx', 2, vol[indx:indx + 4096])
# the runlist of the most fragmented non-resident $DATA (frag.bin)
best = b''
for r in recs:
    o = struct.unpack_from('<H', r, 0x14)[0]
    while r[:4] == b'FILE' and o + 16 <= 1024:
        t, ln = struct.unpack_from('<II', r, o)
        if t == 0xFFFFFFFF or ln < 16 or o + ln > 1024: break
        if t == 0x80 and r[o + 8] == 1:
            ro = struct.unpack_from('<H', r, o + 0x20)[0]
            if ln - ro > len(best): best = r[o + ro:o + ln]
        o += ln
write('runlist', 3, best)
# an LZNT1 unit: the first clusters of a compressed file (chunk headers 0xBxxx)
for r in recs:
    o = struct.unpack_from('<H', r, 0x14)[0]
    while r[:4] == b'FILE' and o + 16 <= 1024:
        t, ln = struct.unpack_from('<II', r, o)
        if t == 0xFFFFFFFF or ln < 16 or o + ln > 1024: break
        if t == 0x80 and r[o + 8] == 1 and struct.unpack_from('<H', r, o + 0x0C)[0] & 1:
            ro = struct.unpack_from('<H', r, o + 0x20)[0]; h = r[o + ro]
            ls, os_ = h & 15, h >> 4
            n = int.from_bytes(r[o + ro + 1:o + ro + 1 + ls], 'little')
            lcn = int.from_bytes(r[o + ro + 1 + ls:o + ro + 1 + ls + os_], 'little')
            write('lznt1', 4, at(lcn * cs, min(n, 16) * cs)); sys.exit(0)
        o += ln
raise SystemExit('no compressed file in the NTFS fixture')
PY

# --- hive, packages, initramfs (hivex, rpm, cpio + compressors); customize inputs -----------
bash scripts/fuzz_inspect_seeds.sh "$OUT"
o=$(d packages)   # a real dpkg status excerpt: minbase's first 12 paragraphs
{ printf '\002'; awk 'BEGIN{RS="";ORS="\n\n"} NR<=12' "$MB/var/lib/dpkg/status"; } > "$o/seed-dpkg-minbase"
o=$(d customize)
printf '\000name,password,ip\nweb1,"a,b",10.0.0.5\nweb2,x,10.0.0.6\n' > "$o/seed-csv"
printf '\001ops = [ { hostname = "x" }, { write = "/etc/motd:hi" } ]\npassword-crypto = "md5"\n' > "$o/seed-spec"
printf '\002eth0:[2001:db8::5]/64:[2001:db8::1]:1.1.1.1,8.8.8.8' > "$o/seed-net"
printf '\002ens3:192.0.2.9/24:192.0.2.1' > "$o/seed-net4"

# delta: diskfab's own format, so the seed is what diskfab writes for two mke2fs -d trees
# (DISKFAB=path/to/diskfab to use a built binary).
o=$(d delta)
mkdir -p "$S/A/etc" && echo one > "$S/A/etc/a" && cp -a "$S/A" "$S/B" && echo two > "$S/B/etc/a" && ln -s x "$S/B/l"
mke2fs -q -t ext4 -d "$S/A" "$S/a.ext4" 8M && mke2fs -q -t ext4 -d "$S/B" "$S/b.ext4" 8M
rm -f "$o/seed-ab"  # the working corpus already holds a copy of the committed seed
${DISKFAB:-cargo run -q -p diskfab-cli --} delta create "$S/a.ext4" "$S/b.ext4" -o "$o/seed-ab" >/dev/null
o=$(d xfs)   # superblock sector + 4 KiB blocks cut from the XFS fixtures (scripts/fixture_xfs.sh)
X5=$FIX/xfs-v5.raw; X4=$FIX/xfs-v4.raw
[ -f "$X5" ] && [ -f "$X4" ] || { echo "make_seeds: XFS fixtures missing: run bash scripts/fixtures.sh" >&2; exit 1; }
xoff() { local img=$1; shift; xfs_db -r "$@" -c stack "$img" | sed -n 's/.*byte offset \([0-9]*\), length.*/\1/p' | tail -1; }
xblk() { dd if="$1" bs=4096 skip=$(( $2 / 4096 )) count=1 status=none; }
{ head -c 512 "$X5"; xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/node')"; xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/extents')"; } > "$o/seed-v5-inodes"
{ head -c 512 "$X5"; xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/node' -c 'dblock 0')"
  xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/extents' -c 'addr u3.bmbt.ptrs[1]')"
  xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/many-attrs' -c 'ablock 0')"
  xblk "$X5" "$(xoff "$X5" -c 'path /xfstest/attrs' -c 'ablock 1')"; } > "$o/seed-v5-blocks"
{ head -c 512 "$X4"; xblk "$X4" "$(xoff "$X4" -c 'path /wide')"; xblk "$X4" "$(xoff "$X4" -c 'path /wide' -c 'dblock 0')"; } > "$o/seed-v4"
echo "make_seeds: $(find "$OUT" -type f | wc -l) seeds in $OUT" >&2
