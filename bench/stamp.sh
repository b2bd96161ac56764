#!/usr/bin/env bash
# Stamp: N customized clones of the Debian qcow2 with the README's example operations
# (sha512-crypt passwords), beside a loop of `diskfab create -b` + `diskfab customize` per clone
# and, when libguestfs is installed, virt-customize.
# Usage: bash bench/stamp.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
N=${BENCH_STAMP:-$(pick 1000 50)}
M=$(pick 50 5)
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

# check_fleet: the report lists N instances, and the first clones and the common layer are clean.
check_fleet() {
  python3 -c 'import json,sys; n = len(json.load(open(sys.argv[1]))["instances"]); assert n == int(sys.argv[2]), n' "$OUT" "$N"
  local f
  for f in "$W"/fleet/vm0000[0-2]*.qcow2 "$W/fleet/_common.qcow2"; do qemu-img check -q "$f"; done
}
warm "$W/debian.qcow2"
measure --rss --prep "rm -rf '$W/fleet'; sync" --check check_fleet -- \
  "$DF" stamp --json "$W/debian.qcow2" --instances "$W/hosts.csv" --out "$W/fleet" "${OPS[@]}"
t_stamp=$MS
rss=$RSS
read -r replayed maxsz avgsz plan_ms an_ms wr_ms <<<"$(python3 - "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i = r["instances"]
print(sum(x["mode"] == "replayed" for x in i), max(x["file_bytes"] for x in i),
      sum(x["file_bytes"] for x in i) // len(i), r["plan_ms"], r["analyse_ms"], r["write_ms"])
PY
)"
[ -n "$wr_ms" ] || die "stamp's JSON report lacks the timing fields"

# The per-clone alternative without a helper VM: a fresh overlay + `diskfab customize`, M times.
one_by_one() {
  local name pw ip
  sed -n "2,$((M + 1))p" "$W/hosts.csv" | while IFS=, read -r name pw ip; do
    "$DF" create "$W/one/$name.qcow2" -b "$W/debian.qcow2" >/dev/null
    "$DF" customize "$W/one/$name.qcow2" --hostname "$name" --root-password "password:$pw" --password-crypto sha512 \
      --write '/etc/motd:Managed by diskfab' --ssh-inject "root:file:$W/ops.pub" \
      --network-static "eth0:$ip/8:10.0.0.1:10.0.0.2" --write "/etc/app/id:$name $ip" >/dev/null
  done
}
check_one() {
  [ "$(find "$W/one" -name '*.qcow2' | wc -l)" -eq "$M" ] || die "the loop made the wrong number of clones"
  qemu-img check -q "$(find "$W/one" -name '*.qcow2' | sort | sed -n 1p)"
}
measure --prep "rm -rf '$W/one'; mkdir '$W/one'; sync" --check check_one -- one_by_one
t_loop=$MS

vc="not installed"
if command -v virt-customize >/dev/null; then
  vc_two() {
    local i
    for i in 1 2; do
      qemu-img create -q -f qcow2 -b debian.qcow2 -F qcow2 "$W/vc$i.qcow2"
      LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-customize -q -a "$W/vc$i.qcow2" --hostname "vc$i" \
        --root-password password:x --write '/etc/motd:Managed by diskfab' >/dev/null
    done
  }
  measure --runs 1 --prep "rm -f '$W'/vc?.qcow2" -- vc_two
  vc="$(awk -v t="$MS" 'BEGIN{printf "%.0f ms/clone", t / 2}')"
fi

per_stamp=$(awk -v t="$t_stamp" -v n="$N" 'BEGIN{printf "%.2f", t / n}')
per_loop=$(awk -v t="$t_loop" -v n="$M" 'BEGIN{printf "%.1f", t / n}')
emit <<MD
## Stamp: $N customized clones

\`bash bench/stamp.sh\`. Median of $RUNS run(s), each into a fresh directory. Operations (the README example):
\`--hostname '{{name}}' --root-password 'password:{{password}}' --password-crypto sha512 --write '/etc/motd:…'
--ssh-inject root:file:ops.pub --network-static 'eth0:{{ip}}/8:10.0.0.1:10.0.0.2' --write '/etc/app/id:{{name}} {{ip}}'\`
on the debootstrap Debian 12 qcow2 (2 GiB, MBR, ext4). Checked: the JSON report lists $N instances, and
\`qemu-img check\` passes on the first clones and the common layer.

| measure | diskfab | goal / reference |
|---|---|---|
| whole \`stamp\` of $N clones (one process) | ${t_stamp} ms | ≤ 10 s for 1000 |
| per clone | ${per_stamp} ms | |
| planning (incl. $N sha512-crypt hashes) / analysis / writing | ${plan_ms} / ${an_ms} / ${wr_ms} ms | |
| clones replayed from the template | $replayed of $N | |
| overlay size per clone (max / mean) | $((maxsz / 1024)) / $((avgsz / 1024)) KiB | ≤ 256 KiB |
| peak RSS | $((rss / 1024)) MB | ≤ 200 MB |
| loop of $M: \`diskfab create -b\` + \`diskfab customize\` (two process starts per clone) | ${per_loop} ms/clone | loop / stamp per clone: $(ratio "$per_loop" "$per_stamp") (goal ≥ 10) |
| virt-customize (helper VM, TCG) | | $vc |
MD
