#!/usr/bin/env bash
# Reading: cat of a file inside a qcow2, ls -R, info and inspect of the Debian image, whole
# commands beside the reference tool where there is one. Every output is checked.
# Usage: bash bench/read.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
CAT_MB=${BENCH_CAT_MB:-$(pick 100 16)}
N7=$(pick 7 1)
BASE=$FIX/debian-mbr.qcow2
SHM=$(mktemp -d /dev/shm/diskfab-bench.XXXXXX)
CLEANUP+=("rm -rf '$SHM'")

# cat: CAT_MB MiB of random bytes in ext4 in qcow2 (diskfab cat to tmpfs) vs a qcow2 holding the
# same bytes as its guest disk (qemu-img convert -O raw to tmpfs): the same bytes decoded from
# qcow2 and written to tmpfs; diskfab also walks ext4 to find them.
head -c "${CAT_MB}M" /dev/urandom >"$W/big.bin"
"$DF" create "$W/cat.qcow2" 512M >/dev/null
"$DF" mkfs "$W/cat.qcow2" -t ext4 >/dev/null
"$DF" copy-in "$W/cat.qcow2" "$W/big.bin" / >/dev/null
qemu-img convert -f raw -O qcow2 "$W/big.bin" "$W/big.qcow2"
prep="rm -f '$SHM/out'; warm '$W/cat.qcow2' '$W/big.qcow2'"
measure --runs "$N7" --prep "$prep" --out "$SHM/out" --check "cmp '$SHM/out' '$W/big.bin'" -- "$DF" cat "$W/cat.qcow2" /big.bin
t_cat=$MS
measure --runs "$N7" --prep "$prep" --check "cmp '$SHM/out' '$W/big.bin'" -- qemu-img convert -O raw "$W/big.qcow2" "$SHM/out"
t_cv=$MS
rm -f "$SHM/out"

# ls -R /: no reference tool reads an ext4 inside a qcow2 without a VM or a kernel mount. The
# fixture was made by `mke2fs -d` from the debootstrap tree: the listing has an entry for each
# of its files.
n_tree=$(find "$FIX/debian-minbase" -mindepth 1 | wc -l)
warm "$BASE"
measure --runs "$N7" --rss --check "[ \$(wc -l <\"\$OUT\") -ge $n_tree ] && grep -q 'os-release' \"\$OUT\"" -- "$DF" ls -R "$BASE" /
t_ls=$MS
rss_ls=$RSS
n_ls=$(wc -l <"$OUT")

# info: diskfab info (format, partitions, filesystems) vs qemu-img info (format only).
measure --runs "$N7" --check "grep -q ext4 \"\$OUT\"" -- "$DF" info "$BASE"
t_info=$MS
measure --runs "$N7" --check "grep -q 'file format: qcow2' \"\$OUT\"" -- qemu-img info "$BASE"
t_qinfo=$MS

# inspect: the whole command; dissect.target's target-info is the reference when installed.
measure --runs "$N7" --rss --check "python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert \"debian\" in json.dumps(r).lower()' \"\$OUT\"" -- "$DF" inspect --json "$BASE"
t_in=$MS
rss_in=$RSS
ref="not installed (\`pip install dissect.target\`)"
ratio_in="-"
if command -v target-info >/dev/null; then
  qemu-img convert -O raw "$BASE" "$W/insp.raw"
  measure --runs "$(pick 3 1)" --check "grep -qi debian \"\$OUT\"" -- target-info "$W/insp.raw"
  ref="$MS ms (dissect.target \`target-info\` on the raw image)"
  ratio_in=$(ratio "$MS" "$t_in")
fi

emit <<MD
## Reading

\`bash bench/read.sh\`. Whole commands, median of $N7 run(s), inputs in the page cache for both tools.
q/d = reference time / diskfab time; > 1 means diskfab is faster.

| command | diskfab | reference | q/d | what is compared |
|---|---|---|---|---|
| cat ${CAT_MB} MiB | $t_cat ms | $t_cv ms | $(ratio "$t_cv" "$t_cat") | \`diskfab cat\` of a ${CAT_MB} MiB random file from ext4 in qcow2 to tmpfs vs \`qemu-img convert -O raw\` of a qcow2 whose guest disk is those bytes, to tmpfs; both outputs equal the file (\`cmp\`) |
| info | $t_info ms | $t_qinfo ms | $(ratio "$t_qinfo" "$t_info") | \`diskfab info\` (format, partitions, filesystems) vs \`qemu-img info\` (format only): diskfab does more |
| ls -R / | $t_ls ms | - | - | $n_ls lines for the $n_tree files of the debootstrap tree; peak RSS $rss_ls KiB |
| inspect --json | $t_in ms | $ref | $ratio_in | open qcow2, MBR, ext4; os-release, ELF arch, dpkg packages, users, kernels, network, services; peak RSS $rss_in KiB |
MD
