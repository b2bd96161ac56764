#!/usr/bin/env bash
# THE demo: builds diskfab, then, with no root and no mount: makes a GPT disk image, partitions it,
# formats ext4, copies a generated tree in, makes 100 thin clones, customises one clone, lists and
# reads files, and prints `info`. Usage: bash scripts/demo.sh [WORKDIR]
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
echo; echo "demo files are in $W"
