#!/usr/bin/env bash
# Bounded fuzz run of every parser (cargo-fuzz / libFuzzer). Seeds come from the reference tools.
# A crash fails the run and its input is copied to fuzz/regressions/<target>/, where the
# workspace test `fuzz_regressions_never_panic` replays it forever after.
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
# libFuzzer needs -Z flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
mkdir -p fuzz/corpus/qcow2 fuzz/corpus/mbr_gpt fuzz/corpus/vdi fuzz/corpus/vhd fuzz/corpus/vmdk fuzz/corpus/vhdx
# qcow2 seeds: small images of several shapes (v2/v3, cluster sizes, backing name, compressed).
head -c 200000 /dev/urandom > "$S/data.raw"
qemu-img convert -q -O qcow2 -o cluster_size=512 "$S/data.raw" "$S/c512.qcow2"
qemu-img convert -q -c -O qcow2 -o cluster_size=4096 "$S/data.raw" "$S/comp.qcow2"
qemu-img convert -q -c -O qcow2 -o cluster_size=4096,compression_type=zstd "$S/data.raw" "$S/zstd.qcow2"
qemu-img create -q -f qcow2 -o compat=0.10 "$S/v2.qcow2" 1M
qemu-img create -q -f qcow2 -b data.raw -F raw "$S/ovl.qcow2"
# Extended L2 entries (subcluster writes, zeroes, a compressed cluster); an external data file
# (fuzz_qcow2 reads the seed's own bytes as its data file); two internal snapshots.
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k "$S/extl2.qcow2" 1M
qemu-io -c "write -P 7 2k 3k" -c "write -z 8k 1k" -c "write -c -P 9 32k 16k" "$S/extl2.qcow2" >/dev/null
(cd "$S" && qemu-img create -q -f qcow2 -o data_file=df.raw,cluster_size=4k df.qcow2 1M \
  && qemu-io -c "write -P 7 0 8k" df.qcow2 >/dev/null)
qemu-img create -q -f qcow2 -o cluster_size=4k "$S/snap.qcow2" 1M
qemu-io -c "write -P 1 0 16k" "$S/snap.qcow2" >/dev/null && qemu-img snapshot -c one "$S/snap.qcow2"
qemu-io -c "write -P 2 4k 4k" "$S/snap.qcow2" >/dev/null && qemu-img snapshot -c two "$S/snap.qcow2"
for f in "$S"/*.qcow2; do head -c 65536 "$f" > "fuzz/corpus/qcow2/seed-$(basename "$f")"; done
# partition-table seeds: MBR with logical partitions, GPT.
truncate -s 1M "$S/mbr.img" "$S/gpt.img"
printf 'label: dos\n,256K,83\n,,5\n,128K,82\n,,83\n' | sfdisk -q "$S/mbr.img" >/dev/null
printf 'label: gpt\n,256K,L\n,,U\n' | sfdisk -q "$S/gpt.img" >/dev/null
cp "$S/mbr.img" fuzz/corpus/mbr_gpt/seed-mbr; cp "$S/gpt.img" fuzz/corpus/mbr_gpt/seed-gpt
# vdi seeds: dynamic with data, static.
qemu-img create -q -f vdi "$S/d.vdi" 4M && qemu-io -f vdi -c "write -P 7 0 8k" "$S/d.vdi" >/dev/null
qemu-img create -q -f vdi -o static=on "$S/s.vdi" 2M
for f in "$S"/*.vdi; do head -c 65536 "$f" > "fuzz/corpus/vdi/seed-$(basename "$f")"; done
# vhd seeds: dynamic with data (2 MiB blocks: the first MiB, footer copy, header, BAT, bitmap),
# dynamic without data (whole), fixed (data and the footer at its end).
qemu-img create -q -f vpc "$S/d.vhd" 6M && qemu-io -f vpc -c "write -P 7 0 8k" "$S/d.vhd" >/dev/null
qemu-img create -q -f vpc "$S/e.vhd" 6M
qemu-img create -q -f vpc -o subformat=fixed "$S/f.vhd" 64k
for f in "$S"/*.vhd; do head -c 1048576 "$f" > "fuzz/corpus/vhd/seed-$(basename "$f")"; done
# vmdk seeds: monolithicSparse and streamOptimized (qemu's layout and ours: GD at the end), and a
# flat descriptor (parsed only).
head -c 300000 /dev/urandom > "$S/v.raw"; truncate -s 1M "$S/v.raw"
qemu-img convert -q -O vmdk -o subformat=monolithicSparse "$S/v.raw" "$S/sparse.vmdk"
qemu-img convert -q -O vmdk -o subformat=streamOptimized "$S/v.raw" "$S/stream.vmdk"
qemu-img convert -q -O vmdk -o subformat=monolithicFlat "$S/v.raw" "$S/flat.vmdk"
cargo run -q -p diskfab-cli -- convert -O vmdk -o subformat=streamOptimized "$S/v.raw" "$S/ours.vmdk" >/dev/null
for f in "$S"/*.vmdk; do head -c 1048576 "$f" > "fuzz/corpus/vmdk/seed-$(basename "$f")"; done
# vhdx seeds (fuzz_vhdx's layout: the first 320 KiB, then the first 64 KiB of each following MiB):
# dynamic with data (qemu's 8 MiB and 1 MiB blocks), fixed, ours, and two with a pending log.
qemu-img create -q -f vhdx "$S/d.vhdx" 24M && qemu-io -f vhdx -c "write -P 7 0 8k" "$S/d.vhdx" >/dev/null
qemu-img create -q -f vhdx -o block_size=1M "$S/s.vhdx" 24M && qemu-io -f vhdx -c "write -P 7 3M 8k" "$S/s.vhdx" >/dev/null
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$S/f.vhdx" 4M
cargo run -q -p diskfab-cli -- convert -O vhdx -o block_size=1M "$S/v.raw" "$S/ours.vhdx" >/dev/null
# dirty logs (the log replay parser): qemu-io writes through blkdebug, which fails the in-place
# block-table update after qemu's log entry is on disk; `abort` leaves the log pending.
printf '[inject-error]\nevent = "pwritev"\nerrno = "5"\nsector = "4096"\nonce = "off"\niotype = "write"\n' > "$S/bd.conf"
for d in "dirty-a:64M::write -P 0x5a 0 3M" "dirty-b:24M:block_size=1M:write -P 0x21 1M 5M"; do
  IFS=: read -r n sz o w <<<"$d"
  qemu-img create -q -f vhdx ${o:+-o "$o"} "$S/$n.vhdx" "$sz"
  qemu-io -c "$w" -c abort "json:{\"driver\":\"vhdx\",\"cache\":{\"no-flush\":true},\"file\":{\"driver\":\"blkdebug\",\"config\":\"$S/bd.conf\",\"image\":{\"driver\":\"file\",\"filename\":\"$S/$n.vhdx\"}}}" >/dev/null 2>&1 || true
done
for f in "$S"/*.vhdx; do
  { head -c 327680 "$f"; for m in 1 2 3 4 5 6 7 8 9 10 11; do dd if="$f" bs=64K skip=$((m * 16)) count=1 status=none; done; } \
    > "fuzz/corpus/vhdx/seed-$(basename "$f")"
done
# customize seeds: selector byte + instances CSV / spec TOML / network argument.
mkdir -p fuzz/corpus/customize fuzz/corpus/delta
printf '\000name,password,ip\nweb1,"a,b",10.0.0.5\nweb2,x,10.0.0.6\n' > fuzz/corpus/customize/seed-csv
printf '\001ops = [ { hostname = "x" }, { write = "/etc/motd:hi" } ]\npassword-crypto = "md5"\n' > fuzz/corpus/customize/seed-spec
printf '\002eth0:[2001:db8::5]/64:[2001:db8::1]:1.1.1.1,8.8.8.8' > fuzz/corpus/customize/seed-net
# delta seeds: a real delta between two small trees made with mke2fs -d.
mkdir -p "$S/A/etc" && echo one > "$S/A/etc/a" && cp -a "$S/A" "$S/B" && echo two > "$S/B/etc/a" && ln -s x "$S/B/l"
mke2fs -q -t ext4 -d "$S/A" "$S/a.ext4" 8M && mke2fs -q -t ext4 -d "$S/B" "$S/b.ext4" 8M
cargo run -q -p diskfab-cli -- delta create "$S/a.ext4" "$S/b.ext4" -o "$S/ab.delta" >/dev/null
cp "$S/ab.delta" fuzz/corpus/delta/seed-ab
# hive / packages / initramfs seeds: hives from hivex, an rpm header and rpmdb from rpm, cpio
# archives compressed by each compressor (scripts/fuzz_inspect_seeds.sh).
bash scripts/fuzz_inspect_seeds.sh fuzz/corpus
status=0
for t in qcow2 mbr_gpt vdi vhd vmdk vhdx customize delta hive packages initramfs; do
  echo "fuzz: $t for ${SECS}s" >&2
  if ! (cd fuzz && cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=1048576 \
        -rss_limit_mb=2048 -print_final_stats=1 2>"$S/$t.log"); then
    tail -30 "$S/$t.log" >&2
    mkdir -p "fuzz/regressions/$t"
    cp fuzz/artifacts/"$t"/crash-* "fuzz/regressions/$t/" 2>/dev/null || true
    echo "fuzz: $t found a crash; input saved under fuzz/regressions/$t (add it to git)" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units|stat::peak_rss' "$S/$t.log" | sed "s/^/fuzz: $t: /" >&2 || true
  fi
done
exit $status
