#!/usr/bin/env bash
# Builds (once) and caches $FIX/rocky-mbr.raw: a Rocky-Linux-9.4-like guest on an MBR disk —
# partition 1 /boot ext4, partition 2 / ext4 (mke2fs -d) — made by hand because CI has no network
# to Rocky mirrors. The tree has Rocky 9.4's release files (os-release, redhat-release ->
# rocky-release), real x86_64 ELF binaries copied from the Debian fixture tree (architecture), an
# rpm sqlite database (/var/lib/rpm/rpmdb.sqlite) holding three tiny packages built by rpmbuild and
# recorded by rpm --justdb, an fstab with UUID= entries, SELinux enforcing/targeted with
# security.selinux labels set by setfattr on a kernel loop mount, and a hostname.
# Also $FIX/rocky-lvm-xfs.raw: the same tree as a Rocky installer lays it out by default — MBR,
# partition 1 /boot XFS, partition 2 an LVM2 PV of VG "rl" with rl/root (XFS, the tree copied in
# through a kernel loop mount at the LV's offset, labels as above) and rl/swap (mkswap); fstab
# names /dev/mapper/rl-root and /dev/mapper/rl-swap. No device-mapper: lvcreate -an -Zn and
# loop devices at the LV's offset.
# Usage: bash scripts/fixture_rocky.sh FIX   (FIX must hold debian-minbase). Idempotent.
set -euo pipefail
FIX=${1:?usage: fixture_rocky.sh FIXTURE_DIR}
OUT="$FIX/rocky-mbr.raw"
OUT2="$FIX/rocky-lvm-xfs.raw"
[ -f "$OUT" ] && [ -f "$OUT2" ] && exit 0
DEB="$FIX/debian-minbase"
[ -f "$DEB.complete" ] || { echo "fixture_rocky: $DEB missing (run scripts/fixtures.sh)" >&2; exit 1; }

export E2FSPROGS_FAKE_TIME=1700000000 SOURCE_DATE_EPOCH=1700000000 LVM_SUPPRESS_FD_WARNINGS=1
ROOT_UUID=7c1f9a3e-5b2d-4e8f-9a6c-0d1e2f3a4b5c
BOOT_UUID=0b5e8d2a-1c3f-4a6b-8d9e-f0a1b2c3d4e5
MIB=$((1024 * 1024))
W=$(mktemp -d "$FIX/rocky-build.XXXXXX")
MNT="$W/mnt"
LOOP=""
cleanup() {
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  local l; for l in $(losetup -j "$W/disk2.raw" -O NAME -n 2>/dev/null); do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# --- the root tree -----------------------------------------------------------------------------
T="$W/root"
mkdir -p "$T"/{boot,dev,proc,sys,run,tmp,root,home,var/lib/rpm,var/log}
mkdir -p "$T"/usr/{bin,sbin,lib,lib64,share} "$T"/etc/{selinux/targeted,sysconfig,yum.repos.d}
for l in bin:usr/bin sbin:usr/sbin lib:usr/lib lib64:usr/lib64; do ln -s "${l#*:}" "$T/${l%%:*}"; done
for b in bash ls cat rm echo; do cp "$DEB/usr/bin/$b" "$T/usr/bin/$b"; done
ln -s bash "$T/usr/bin/sh"
cp "$DEB/usr/lib/x86_64-linux-gnu/libc.so.6" "$T/usr/lib64/libc.so.6"
printf '#!/usr/bin/python3\n# placeholder of the dnf front end\n' > "$T/usr/bin/dnf-3"
chmod 755 "$T/usr/bin/dnf-3"
ln -s dnf-3 "$T/usr/bin/dnf"
ln -s dnf-3 "$T/usr/bin/yum"
cat > "$T/usr/lib/os-release" <<'EOF'
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
EOF
ln -s ../usr/lib/os-release "$T/etc/os-release"
echo "Rocky Linux release 9.4 (Blue Onyx)" > "$T/etc/rocky-release"
echo "Derived from Red Hat Enterprise Linux 9.4" > "$T/etc/rocky-release-upstream"
ln -s rocky-release "$T/etc/redhat-release"
ln -s rocky-release "$T/etc/system-release"
echo "cpe:/o:rocky:rocky:9::baseos" > "$T/etc/system-release-cpe"
echo "rocky9-fixture.example.com" > "$T/etc/hostname"
echo "5c0e1d2f3a4b5c6d7e8f90a1b2c3d4e5" > "$T/etc/machine-id"
cat > "$T/etc/fstab" <<EOF

#
# /etc/fstab
# Created by anaconda on Mon Apr 29 10:00:00 2024
#
UUID=$ROOT_UUID /                       ext4    defaults        1 1
UUID=$BOOT_UUID /boot                   ext4    defaults        1 2
EOF
cat > "$T/etc/selinux/config" <<'EOF'
# This file controls the state of SELinux on the system.
SELINUX=enforcing
SELINUXTYPE=targeted
EOF
cat > "$T/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
rocky:x:1000:1000:Rocky User:/home/rocky:/bin/bash
EOF
cat > "$T/etc/group" <<'EOF'
root:x:0:
bin:x:1:
wheel:x:10:rocky
rocky:x:1000:
EOF
printf 'root:!!:19800:0:99999:7:::\nbin:*:19800:0:99999:7:::\nrocky:!!:19800:0:99999:7:::\n' > "$T/etc/shadow"
chmod 000 "$T/etc/shadow"
ln -s ../usr/share/zoneinfo/UTC "$T/etc/localtime"
mkdir -p "$T/home/rocky"

# --- three tiny rpm packages, recorded in the tree's sqlite rpmdb -------------------------------
R="$W/rpmbuild"
mkdir -p "$R"/{SPECS,BUILD,RPMS,SRPMS,SOURCES,BUILDROOT}
spec() { # name version release arch summary [epoch]
  cat > "$R/SPECS/$1.spec" <<EOF
Name: $1
${6:+Epoch: $6}
Version: $2
Release: $3
Summary: $5
License: GPLv3+
BuildArch: $4
%description
$5 (diskfab test fixture: metadata only).
%files
EOF
}
spec rocky-release 9.4 1.7.el9 noarch "Rocky Linux release files"
spec bash 5.1.8 9.el9 x86_64 "The GNU Bourne Again shell"
spec openssl-libs 3.0.7 27.el9 x86_64 "A general purpose cryptography library with TLS implementation" 1
for s in "$R"/SPECS/*.spec; do
  rpmbuild -bb --quiet --define "_topdir $R" --define "use_source_date_epoch_as_buildtime 1" \
    --define "_binary_payload w9.gzdio" --target "$(awk '/^BuildArch/ {print $2}' "$s")" "$s" >/dev/null 2>&1 ||
    { rpmbuild -bb --define "_topdir $R" "$s" >&2; exit 1; }
done
# (Debian's rpm warns that it should not install packages: it only records them here.)
rpm --root "$T" --dbpath /var/lib/rpm --define "_db_backend sqlite" --initdb
rpm --root "$T" --dbpath /var/lib/rpm --define "_db_backend sqlite" -i --justdb --nodeps \
  --noscripts --ignorearch --ignoreos "$R"/RPMS/*/*.rpm 2>"$W/rpm.log" ||
  { cat "$W/rpm.log" >&2; exit 1; }
[ "$(rpm --root "$T" --dbpath /var/lib/rpm -qa 2>/dev/null | wc -l)" = 3 ] ||
  { echo "fixture_rocky: the rpmdb does not hold the 3 packages" >&2; exit 1; }
[ -f "$T/var/lib/rpm/rpmdb.sqlite" ] || { echo "fixture_rocky: rpm made no rpmdb.sqlite" >&2; exit 1; }
rm -f "$T/var/lib/rpm/rpmdb.sqlite-shm" "$T/var/lib/rpm/rpmdb.sqlite-wal"

# --- /boot --------------------------------------------------------------------------------------
B="$W/boot"
mkdir -p "$B/grub2" "$B/loader/entries"
KV=5.14.0-427.13.1.el9_4.x86_64
printf 'kernel image placeholder\n' > "$B/vmlinuz-$KV"
printf 'set default=0\n' > "$B/grub2/grub.cfg"
printf 'title Rocky Linux (%s) 9.4 (Blue Onyx)\nversion %s\nlinux /vmlinuz-%s\n' "$KV" "$KV" "$KV" \
  > "$B/loader/entries/5c0e1d2f3a4b5c6d7e8f90a1b2c3d4e5-$KV.conf"

# SELinux labels as a targeted-policy Rocky install has them (on a kernel mount of the root at $MNT).
label_tree() {
  label() { setfattr -h -n security.selinux -v "system_u:object_r:$1:s0" "$MNT/$2"; }
  label root_t /
  for p in etc etc/hostname etc/fstab etc/passwd etc/group etc/selinux; do label etc_t "$p"; done
  label shadow_t etc/shadow
  label selinux_config_t etc/selinux/config
  label hostname_etc_t etc/hostname
  for p in usr usr/bin usr/lib usr/lib64; do label usr_t "$p"; done
  for b in bash ls cat rm echo; do label shell_exec_t "usr/bin/$b"; done
  label bin_t usr/bin/ls
  label rpm_var_lib_t var/lib/rpm
  label rpm_var_lib_t var/lib/rpm/rpmdb.sqlite
  label user_home_dir_t home/rocky
  getfattr -h -n security.selinux "$MNT/etc/shadow" >/dev/null 2>&1
}
mkdir -p "$MNT"

if [ ! -f "$OUT" ]; then
# --- the disk -----------------------------------------------------------------------------------
D="$W/disk.raw"
truncate -s 160M "$D"
printf 'label: dos\nlabel-id: 0x5eed9400\nstart=2048, size=65536, type=83, bootable\nstart=67584, type=83\n' |
  sfdisk -q "$D"
mke2fs -q -F -t ext4 -b 4096 -U "$BOOT_UUID" -E offset=$MIB -d "$B" "$D" 32768k
root_off=$((67584 * 512))
root_k=$(( (160 * MIB - root_off) / 1024 ))
mke2fs -q -F -t ext4 -b 4096 -U "$ROOT_UUID" -E offset=$root_off -d "$T" "$D" "${root_k}k"

LOOP=$(losetup -f --show -o "$root_off" --sizelimit $((root_k * 1024)) "$D")
mount -t ext4 "$LOOP" "$MNT"
label_tree
umount "$MNT"
losetup -d "$LOOP"; LOOP=""
mv "$D" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
fi

[ -f "$OUT2" ] && exit 0
# --- the XFS-on-LVM disk ------------------------------------------------------------------------
D="$W/disk2.raw"
truncate -s 720M "$D"
printf 'label: dos\nlabel-id: 0x5eed9401\nstart=2048, size=614400, type=83, bootable\nstart=616448, type=8e\n' |
  sfdisk -q "$D"
BOOT_OFF=$MIB; BOOT_LEN=$((614400 * 512)); PV_OFF=$((616448 * 512))
PV_LEN=$(( $(stat -c %s "$D") - PV_OFF ))
cat > "$T/etc/fstab" <<EOF

#
# /etc/fstab
# Created by anaconda on Mon Apr 29 10:00:00 2024
#
/dev/mapper/rl-root     /                       xfs     defaults        0 0
UUID=$BOOT_UUID /boot                   xfs     defaults        0 0
/dev/mapper/rl-swap     none                    swap    defaults        0 0
EOF
LOOP=$(losetup -f --show -o "$BOOT_OFF" --sizelimit "$BOOT_LEN" "$D")
mkfs.xfs -q -f -m uuid="$BOOT_UUID" "$LOOP"
mount -t xfs "$LOOP" "$MNT"; cp -a "$B/." "$MNT/"; umount "$MNT"
losetup -d "$LOOP"; LOOP=""
PVL=$(losetup -f --show -o "$PV_OFF" --sizelimit "$PV_LEN" "$D")
C="devices{filter=[\"a|^$PVL\$|\",\"r|.*|\"] use_devicesfile=0 obtain_device_list_from_udev=0}
   activation{udev_sync=0 udev_rules=0 monitoring=0} backup{backup=0 archive=0} global{activation=0}"
lvm_() { "$@" --config "$C" 2>&1 | { grep -v -e WARNING -e 'not zeroed' || true; }; }
lvm_ pvcreate -q -u RkyPV0-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa --norestorefile "$PVL"
lvm_ vgcreate -q -s 4M rl "$PVL"
lvm_ lvcreate -q -an -Zn -n swap -L 16M rl
lvm_ lvcreate -q -an -Zn -n root -l 100%FREE rl
PE_START=$(pvs --config "$C" --noheadings --units b --nosuffix -o pe_start "$PVL" 2>/dev/null | tr -d ' ')
EXT=$(vgs --config "$C" --noheadings --units b --nosuffix -o vg_extent_size rl 2>/dev/null | tr -d ' ')
seg() { # prints "offset size" in bytes of LV $1 inside the PV (one segment)
  lvs --config "$C" --noheadings --units b --nosuffix -o seg_pe_ranges,seg_size rl/"$1" 2>/dev/null |
    awk -v s="$PE_START" -v x="$EXT" '{split($1, r, ":"); split(r[2], e, "-"); print s + e[1] * x, $2}'
}
read -r root_o root_s < <(seg root) || true; read -r swap_o swap_s < <(seg swap) || true
[ -n "${root_s:-}" ] && [ -n "${swap_s:-}" ] || { echo "fixture_rocky: cannot place rl/root and rl/swap" >&2; exit 1; }
losetup -d "$PVL"
LOOP=$(losetup -f --show -o $((PV_OFF + swap_o)) --sizelimit "$swap_s" "$D")
mkswap -q -U 3d4c5b6a-7980-4a1b-8c2d-3e4f5a6b7c8d "$LOOP" >/dev/null; losetup -d "$LOOP"
LOOP=$(losetup -f --show -o $((PV_OFF + root_o)) --sizelimit "$root_s" "$D")
mkfs.xfs -q -f -m uuid="$ROOT_UUID" "$LOOP"
mount -t xfs "$LOOP" "$MNT"
cp -a "$T/." "$MNT/"
label_tree
umount "$MNT"
xfs_repair -n "$LOOP" >/dev/null 2>&1 || { echo "fixture_rocky: xfs_repair -n fails on rl/root" >&2; exit 1; }
losetup -d "$LOOP"; LOOP=""
mv "$D" "$OUT2.tmp"
mv "$OUT2.tmp" "$OUT2"
