#!/usr/bin/env bash
# Builds (once) the LVM2 + LUKS fixture with the reference tools (lvm2, cryptsetup), no device-mapper:
#   $FIX/lvm.raw        GPT disk: p1 /boot ext4, p2 + p3 LVM PVs of VG "rl", p4 LUKS1, p5 LUKS2
#     rl/root     linear, one segment on p2: ext4 of the Debian tree (mke2fs -d through a loop
#                 device at the LV's offset), /etc/fstab names /dev/mapper/rl-root, /dev/rl/home, ...
#     rl/swap     linear, mkswap
#     rl/home     linear, two segments (p2 then p3): ext4 built as a file, placed per `lvs --segments`
#     rl/st-data  striped over p2 and p3 (2 stripes, 64 KiB): ext4 built as a file, placed the same way
#     rl/pool     thin-pool (written with vgcfgrestore: lvcreate needs the kernel for thin pools)
#   $FIX/lvm-home.ext4, lvm-st-data.ext4   the LV contents placed above (the byte oracle)
#   $FIX/lvm-lvs.json   `lvs --segments` + `pvs` reports (JSON), $FIX/lvm-luks1.dump, lvm-luks2.dump,
#   lvm-luks2.json      `cryptsetup luksDump` (and --dump-json-metadata) of p4 / p5
# Idempotent; $FIX/lvm.complete marks a finished build.
set -euo pipefail
FIX=${1:?fixture dir}
TREE="$FIX/debian-minbase"
[ -f "$FIX/lvm.complete" ] && exit 0
export E2FSPROGS_FAKE_TIME=1700000000 LVM_SUPPRESS_FD_WARNINGS=1
MIB=$((1024 * 1024))
W="$FIX/lvm.tmp.d"; rm -rf "$W"; mkdir -p "$W"
t="$W/lvm.raw"
truncate -s 520M "$t"
sgdisk -U 22222222-3333-4444-5555-666666666666 \
  -n 1:2048:+32M -t 1:8300 -c 1:boot -n 2:0:+360M -t 2:8E00 -c 2:pv1 -n 3:0:+64M -t 3:8E00 -c 3:pv2 \
  -n 4:0:+16M -t 4:8300 -c 4:luks1 -n 5:0:+24M -t 5:8300 -c 5:luks2 "$t" >/dev/null
part() { # prints "offset size" in bytes of partition $1
  local f l; f=$(sgdisk -i "$1" "$t" | awk '/First sector/ {print $3}')
  l=$(sgdisk -i "$1" "$t" | awk '/Last sector/ {print $3}')
  echo "$((f * 512)) $(((l - f + 1) * 512))"
}
cleanup() { # every loop device over the image being built (loop() runs in $(...) subshells)
  local l; for l in $(losetup -j "$t" -O NAME -n 2>/dev/null); do losetup -d "$l" 2>/dev/null || true; done
}
trap cleanup EXIT
loop() { losetup -f --show -o "$1" --sizelimit "$2" "$t"; }

read -r o1 s1 < <(part 1); read -r o2 s2 < <(part 2); read -r o3 s3 < <(part 3)
read -r o4 s4 < <(part 4); read -r o5 s5 < <(part 5)
mkdir -p "$W/boot"; echo "boot partition" > "$W/boot/README"
mke2fs -q -F -t ext4 -L boot -U 0b0b0b0b-1111-4222-8333-444444444444 -E offset="$o1" -d "$W/boot" "$t" "$((s1 / 1024))k"

P1=$(loop "$o2" "$s2"); P2=$(loop "$o3" "$s3")
C="devices{filter=[\"a|^$P1\$|\",\"a|^$P2\$|\",\"r|.*|\"] use_devicesfile=0 obtain_device_list_from_udev=0}
   activation{udev_sync=0 udev_rules=0 monitoring=0} backup{backup=0 archive=0} global{activation=0}"
lvm_() { "$@" --config "$C" 2>&1 | { grep -v -e WARNING -e 'not zeroed' || true; }; }
lvm_ pvcreate -q -u PV1aaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa --norestorefile "$P1"
lvm_ pvcreate -q -u PV2bbb-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbbb --norestorefile "$P2"
lvm_ vgcreate -q -s 4M rl "$P1" "$P2"
lvm_ lvcreate -q -an -Zn -n root -L 256M rl "$P1"
lvm_ lvcreate -q -an -Zn -n swap -L 8M rl "$P1"
lvm_ lvcreate -q -an -Zn -n home -L 8M rl "$P1"
lvm_ lvcreate -q -an -Zn -n st-data -i 2 -I 64k -L 16M rl "$P1" "$P2"
lvm_ lvextend -q -L +8M rl/home "$P2"
lvm_ lvcreate -q -an -Zn -n pool -L 8M rl "$P1"
lvm_ lvcreate -q -an -Zn -n pool_meta -L 4M rl "$P1"
# Thin pool: lvconvert needs the kernel, so write the metadata LVM would write and restore it.
"$(command -v vgcfgbackup)" -q --config "$C" -f "$W/rl.vg" rl 2>/dev/null
python3 - "$W/rl.vg" <<'EOF'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("\t\tpool {", "\t\tpool_tdata {", 1).replace("\t\tpool_meta {", "\t\tpool_tmeta {", 1)
s = re.sub(r'(\t\tpool_t(data|meta) \{\n(?:.*\n)*?\t\t\tstatus = )\["READ", "WRITE", "VISIBLE"\]',
           r'\1["READ", "WRITE"]', s)
pool = '''
\t\tpool {
\t\t\tid = "Thin00-pool-0000-0000-0000-0000-000000"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tflags = []
\t\t\tsegment_count = 1

\t\t\tsegment1 {
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 2
\t\t\t\ttype = "thin-pool"
\t\t\t\tmetadata = "pool_tmeta"
\t\t\t\tpool = "pool_tdata"
\t\t\t\ttransaction_id = 0
\t\t\t\tchunk_size = 128
\t\t\t\tdiscards = "passdown"
\t\t\t\tzero_new_blocks = 0
\t\t\t}
\t\t}
'''
i = s.index("\tlogical_volumes {\n") + len("\tlogical_volumes {\n")
open(p, "w").write(s[:i] + pool + s[i:])
EOF
lvm_ vgcfgrestore -q --force -f "$W/rl.vg" rl
lvm_ lvs -a | grep 'pool.*twi' >/dev/null || { echo "fixture_lvm: thin pool not restored" >&2; exit 1; }
lvs --config "$C" -a --segments --reportformat json --units b --nosuffix \
  -o lv_name,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges,seg_le_ranges,lv_size 2>/dev/null \
  > "$W/lvs.json"
pvs --config "$C" --reportformat json --units b --nosuffix -o pv_name,pv_uuid,pe_start,vg_extent_size 2>/dev/null \
  > "$W/pvs.json"
python3 - "$W" "$P1" "$P2" <<'EOF'
import json, sys
w, p1, p2 = sys.argv[1:]
lvs = json.load(open(f"{w}/lvs.json"))["report"][0]["seg"]
pvs = json.load(open(f"{w}/pvs.json"))["report"][0]["pv"]
json.dump({"lvs": lvs, "pvs": pvs, "pv_devices": {p1: "pv1", p2: "pv2"}}, open(f"{w}/lvm-lvs.json", "w"), indent=1)
EOF

# Where each LV extent is: "offset-in-disk" lists computed from the reports, for placing contents.
place() { # $1 lv name, $2 source file: writes the file into the LV's extents per the lvs report
  python3 - "$W/lvm-lvs.json" "$1" "$2" "$t" "$P1:$o2" "$P2:$o3" <<'EOF'
import json, sys
rep, lv, src, disk = sys.argv[1:5]
base = dict(a.rsplit(":", 1) for a in sys.argv[5:])
r = json.load(open(rep))
ext = int(r["pvs"][0]["vg_extent_size"]); pe0 = {p["pv_name"]: int(p["pe_start"]) for p in r["pvs"]}
data = open(src, "rb").read()
with open(disk, "r+b") as d:
    for s in r["lvs"]:
        if s["lv_name"] != lv: continue
        start = int(s["seg_start_pe"]) * ext; stripes = int(s["stripes"])
        ranges = [x.rsplit(":", 1) for x in s["seg_pe_ranges"].split()]
        unit = int(s["stripe_size"]) if stripes > 1 else int(s["seg_size_pe"]) * ext
        seg = int(s["seg_size_pe"]) * ext
        for off in range(0, seg, unit):
            k = off // unit; dev, pr = ranges[k % stripes]; first = int(pr.split("-")[0])
            pos = int(base[dev]) + pe0[dev] + first * ext + (k // stripes) * unit
            d.seek(pos); d.write(data[start + off:start + off + unit])
EOF
}
mkdir -p "$W/home/alice" "$W/data"
echo "alice's notes" > "$W/home/alice/notes.txt"; head -c 300000 /dev/urandom > "$W/data/blob.bin"
cp "$TREE/etc/os-release" "$W/data/"
mke2fs -q -F -t ext4 -L home -U 0c0c0c0c-1111-4222-8333-444444444444 -d "$W/home" "$W/lvm-home.ext4" 16M
mke2fs -q -F -t ext4 -L stdata -U 0d0d0d0d-1111-4222-8333-444444444444 -d "$W/data" "$W/lvm-st-data.ext4" 16M
place home "$W/lvm-home.ext4"; place st-data "$W/lvm-st-data.ext4"

# root: one segment, mke2fs straight through a loop device at the LV's offset.
read -r roff rsize < <(python3 - "$W/lvm-lvs.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); ext = int(r["pvs"][0]["vg_extent_size"])
s = [x for x in r["lvs"] if x["lv_name"] == "root"]; assert len(s) == 1
dev, pr = s[0]["seg_pe_ranges"].rsplit(":", 1)
pe0 = {p["pv_name"]: int(p["pe_start"]) for p in r["pvs"]}[dev]
print(pe0 + int(pr.split("-")[0]) * ext, int(s[0]["seg_size_pe"]) * ext)
EOF
)
R=$(loop "$((o2 + roff))" "$rsize")
mke2fs -q -F -t ext4 -L root -U 0a0a0a0a-1111-4222-8333-444444444444 -d "$TREE" "$R"
cat > "$W/fstab" <<'EOF'
# fixture fstab: LVM names in both spellings
/dev/mapper/rl-root  /         ext4  defaults  0 1
UUID=0b0b0b0b-1111-4222-8333-444444444444 /boot ext4 defaults 0 2
/dev/rl/home         /home     ext4  defaults  0 2
/dev/mapper/rl-st--data /srv   ext4  defaults  0 2
/dev/mapper/rl-swap  none      swap  sw        0 0
EOF
debugfs -w -R "rm /etc/fstab" "$R" >/dev/null 2>&1 || true
debugfs -w -R "write $W/fstab /etc/fstab" "$R" >/dev/null 2>&1
read -r swoff swsize < <(python3 - "$W/lvm-lvs.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); ext = int(r["pvs"][0]["vg_extent_size"])
s = [x for x in r["lvs"] if x["lv_name"] == "swap"][0]
dev, pr = s["seg_pe_ranges"].rsplit(":", 1)
print({p["pv_name"]: int(p["pe_start"]) for p in r["pvs"]}[dev] + int(pr.split("-")[0]) * ext, int(s["seg_size_pe"]) * ext)
EOF
)
S=$(loop "$((o2 + swoff))" "$swsize"); mkswap -q -U 0e0e0e0e-1111-4222-8333-444444444444 "$S" >/dev/null

# LUKS: cryptsetup formats without device-mapper; cheap PBKDF so the build stays fast.
head -c 32 /dev/urandom > "$W/key"
L1=$(loop "$o4" "$s4"); L2=$(loop "$o5" "$s5")
cryptsetup luksFormat -q --batch-mode --type luks1 --iter-time 1 --key-file "$W/key" \
  --uuid 11111111-aaaa-4bbb-8ccc-000000000001 "$L1"
cryptsetup luksFormat -q --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
  --luks2-metadata-size 16k --luks2-keyslots-size 1m --label fixture \
  --key-file "$W/key" --uuid 22222222-aaaa-4bbb-8ccc-000000000002 "$L2"
cryptsetup luksAddKey -q --batch-mode --key-file "$W/key" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
  "$L2" "$W/key" >/dev/null 2>&1 || true
cryptsetup luksDump "$L1" > "$W/lvm-luks1.dump"
cryptsetup luksDump "$L2" > "$W/lvm-luks2.dump"
cryptsetup luksDump --dump-json-metadata "$L2" > "$W/lvm-luks2.json"
cleanup
for f in lvm-lvs.json lvm-luks1.dump lvm-luks2.dump lvm-luks2.json lvm-home.ext4 lvm-st-data.ext4; do
  mv "$W/$f" "$FIX/$f"
done
mv "$t" "$FIX/lvm.raw"
rm -rf "$W"
touch "$FIX/lvm.complete"
