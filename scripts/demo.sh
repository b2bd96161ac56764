#!/usr/bin/env bash
# THE demo: builds diskfab, then, with no root and no mount: makes a GPT disk image, partitions it,
# formats ext4, copies a generated tree in, makes 100 thin clones, customises one clone, lists and
# reads files, prints `info`; then stamps 100 customized clones of a small guest from a CSV and
# diffs two of them. Usage: bash scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -q -p diskfab-cli
DF=$PWD/target/release/diskfab
W=${1:-$(mktemp -d /tmp/diskfab-demo.XXXXXX)}
mkdir -p "$W"; cd "$W"
rm -rf tree clones base.qcow2
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "diskfab ${*}"; "$DF" "$@"; }

# A small generated tree standing in for an application.
mkdir -p tree/etc/myapp tree/srv/www
echo "listen = 8080" > tree/etc/myapp/config.toml
echo "<h1>hello from diskfab</h1>" > tree/srv/www/index.html
ln -sf ../../etc/myapp/config.toml tree/srv/www/config-link

run create base.qcow2 1G
run part base.qcow2 --gpt --add size=64M,type=esp,name=EFI --add type=linux,name=root
run mkfs base.qcow2 -p 1 -t vfat -L ESP
run mkfs base.qcow2 -p 2 -t ext4 -L root
run copy-in base.qcow2 -p 2 tree/etc tree/srv /
run clone base.qcow2 --count 100 --out clones
echo "web-42" > hostname
run copy-in clones/base-0042.qcow2 -p 2 hostname /etc
run ls -l -R clones/base-0042.qcow2 -p 2 /etc
run cat clones/base-0042.qcow2 -p 2 /etc/hostname /srv/www/index.html
run info clones/base-0042.qcow2
say "du -sh base.qcow2 clones/base-0042.qcow2   # thin clones hold only their own blocks"
du -sh base.qcow2 clones/base-0042.qcow2
say "qemu-img check clones/base-0042.qcow2"
qemu-img check clones/base-0042.qcow2

# Stamping: a tiny stand-in guest, 100 customized clones from a CSV, analysed once and replayed.
rm -rf guest fleet guest.qcow2 hosts.csv ops ops.pub
mkdir -p guest/etc guest/root
printf 'ID=debian\nVERSION_ID="12"\n' > guest/etc/os-release
printf 'root:x:0:0:root:/root:/bin/sh\n' > guest/etc/passwd
printf 'root:*:20000:0:99999:7:::\n' > guest/etc/shadow
printf 'root:x:0:\n' > guest/etc/group
run create guest.qcow2 1G
run part guest.qcow2 --mbr --add type=linux
run mkfs guest.qcow2 -t ext4
run copy-in guest.qcow2 guest/etc guest/root /
{ echo name,password,ip; for i in $(seq 1 100); do echo "web$i,pw-$RANDOM-$i,10.0.$((i / 200)).$((i % 200 + 10))"; done; } > hosts.csv
ssh-keygen -q -t ed25519 -N '' -f ops
run stamp guest.qcow2 --instances hosts.csv --out fleet --hostname '{{name}}' \
  --root-password 'password:{{password}}' --password-crypto sha512 --write '/etc/motd:Managed by diskfab' \
  --ssh-inject root:file:ops.pub --network-static 'eth0:{{ip}}/16:10.0.0.1:10.0.0.2' --write '/etc/app/id:{{name}} {{ip}}'
run cat fleet/web42.qcow2 /etc/hostname /etc/app/id
say "du -sh fleet/_common.qcow2 fleet/web42.qcow2   # shared writes once; each clone only its own blocks"
du -sh fleet/_common.qcow2 fleet/web42.qcow2
run diff fleet/web41.qcow2 fleet/web42.qcow2 || true
echo; echo "demo files are in $W"
