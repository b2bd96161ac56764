#!/usr/bin/env bash
# Installs what diskfab needs to build and to run its oracle tests, on Debian 12 (idempotent).
set -euo pipefail
PKGS=(libext2fs-dev liblzma-dev e2fsprogs libclang-dev clang pkg-config qemu-utils dosfstools mtools fdisk gdisk
      attr acl debootstrap xorriso whois time
      rpm libwin-hivex-perl libhivex-bin cpio zstd xz-utils lz4 netplan.io sudo strace lvm2 cryptsetup-bin xfsprogs btrfs-progs ntfs-3g selinux-policy-default selinux-utils)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo not found: install Rust (rustup) first" >&2; exit 1; }
# regipy: an independent registry transaction-log implementation, the oracle of the hive log tests.
python3 -c 'import regipy' 2>/dev/null || python3 -m pip install -q regipy
