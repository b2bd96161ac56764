#!/usr/bin/env bash
# Stamp benchmark (issue 5): N customized clones of the real Debian qcow2 with the README's
# example operations (sha512-crypt passwords), beside a loop of `diskfab customize` over fresh
# overlays and, when libguestfs is installed, virt-customize. Appends to docs/bench.md.
# Usage: bash bench/stamp.sh [N]     (bench/run.sh calls it after writing docs/bench.md)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
bash scripts/deps.sh
FIX=$(bash scripts/fixtures.sh)
cargo build --release -q -p diskfab-cli
DF=$PWD/target/release/diskfab
mkdir -p target; W=$(mktemp -d "$PWD/target/bench-stamp.XXXXXX")
trap 'rm -rf "$W"' EXIT
cp "$FIX/debian-mbr.qcow2" "$W/debian.qcow2"
ssh-keygen -q -t ed25519 -N '' -C ops@example -f "$W/ops" >/dev/null
python3 - "$W/hosts.csv" "$N" <<'PY'
import random, sys
random.seed(5)
with open(sys.argv[1], "w") as f:
    f.write("name,password,ip\n")
    for i in range(int(sys.argv[2])):
        f.write("vm%05d%s,%s,10.%d.%d.%d\n" % (i, "-web" * random.randint(0, 8),
                "".join(random.choice("abcdefXYZ0123456789") for _ in range(random.randint(8, 40))),
                i // 62500, (i // 250) % 250, 2 + i % 250))
PY
OPS=(--hostname '{{name}}' --root-password 'password:{{password}}' --password-crypto sha512
     --write '/etc/motd:Managed by diskfab' --ssh-inject "root:file:$W/ops.pub"
     --network-static 'eth0:{{ip}}/8:10.0.0.1:10.0.0.2' --write '/etc/app/id:{{name}} {{ip}}')
now() { date +%s%N; }

sync; a=$(now)
/usr/bin/time -f %M -o "$W/rss" "$DF" stamp --json "$W/debian.qcow2" --instances "$W/hosts.csv" --out "$W/fleet" "${OPS[@]}" > "$W/report.json"
t_stamp=$(( ($(now) - a) / 1000 ))
rss=$(cat "$W/rss")
read -r replayed maxsz avgsz plan_ms an_ms wr_ms <<<"$(python3 - "$W/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i = r["instances"]
print(sum(x["mode"] == "replayed" for x in i), max(x["file_bytes"] for x in i),
      sum(x["file_bytes"] for x in i) // len(i), r["plan_ms"], r["analyse_ms"], r["write_ms"])
PY
)"
for f in "$W"/fleet/vm00000*.qcow2 "$W/fleet/_common.qcow2"; do qemu-img check -q "$f"; done

# The per-clone alternative without a helper VM: a fresh overlay + `diskfab customize`, 50 times.
M=50
a=$(now)
sed -n "2,$((M + 1))p" "$W/hosts.csv" | while IFS=, read -r name pw ip; do
  "$DF" create "$W/one-$name.qcow2" -b "$W/debian.qcow2" >/dev/null
  "$DF" customize "$W/one-$name.qcow2" --hostname "$name" --root-password "password:$pw" --password-crypto sha512 \
    --write '/etc/motd:Managed by diskfab' --ssh-inject "root:file:$W/ops.pub" \
    --network-static "eth0:$ip/8:10.0.0.1:10.0.0.2" --write "/etc/app/id:$name $ip" >/dev/null
done
t_loop=$(( ($(now) - a) / 1000 ))

vc="not installed"
if command -v virt-customize >/dev/null; then
  a=$(now)
  for i in 1 2; do
    qemu-img create -q -f qcow2 -b debian.qcow2 -F qcow2 "$W/vc$i.qcow2"
    LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-customize -q -a "$W/vc$i.qcow2" --hostname "vc$i" \
      --root-password password:x --write '/etc/motd:Managed by diskfab' >/dev/null 2>&1 || true
  done
  vc="$(awk -v t=$(( ($(now) - a) / 1000 )) 'BEGIN{printf "%.0f ms/clone", t/2000}')"
fi

per_stamp=$(awk -v t="$t_stamp" -v n="$N" 'BEGIN{printf "%.2f", t/1000/n}')
per_loop=$(awk -v t="$t_loop" -v n="$M" 'BEGIN{printf "%.1f", t/1000/n}')
ratio=$(awk -v a="$per_loop" -v b="$per_stamp" 'BEGIN{printf "%.0f", a/b}')
table=$(cat <<MD

## Stamp: $N customized clones (issue 5)

Run: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; \`bash bench/stamp.sh $N\`. Operations (the README example):
\`--hostname '{{name}}' --root-password 'password:{{password}}' --password-crypto sha512 --write '/etc/motd:…'
--ssh-inject root:file:ops.pub --network-static 'eth0:{{ip}}/8:10.0.0.1:10.0.0.2' --write '/etc/app/id:{{name}} {{ip}}'\`
on the debootstrap Debian 12 qcow2 (2 GiB, MBR, ext4).

| measure | diskfab | goal / reference |
|---|---|---|
| whole \`stamp\` of $N clones | $((t_stamp / 1000)) ms | ≤ 10 s |
| per clone | ${per_stamp} ms | |
| planning (incl. $N sha512-crypt hashes) / analysis / writing | ${plan_ms} / ${an_ms} / ${wr_ms} ms | |
| clones replayed from the template | $replayed of $N | |
| overlay size per clone (max / mean) | $((maxsz / 1024)) / $((avgsz / 1024)) KiB | ≤ 256 KiB |
| peak RSS | $((rss / 1024)) MB | ≤ 200 MB |
| fresh overlay + \`diskfab customize\`, loop of $M | ${per_loop} ms/clone | stamp is ${ratio}× faster per clone (goal ≥ 10×) |
| virt-customize (helper VM, TCG) | | $vc |
MD
)
echo "$table"
echo "$table" >> docs/bench.md
