//! End-to-end: LVM2 and LUKS through the diskfab binary, on the fixture made by lvm2 and
//! cryptsetup (scripts/fixture_lvm.sh). Offsets come from `lvs --segments` / `pvs` reports and
//! sgdisk, never from diskfab; the kernel's ext4 (loop device at the LV offset) and e2fsck check
//! what diskfab reads and writes.

mod common;
use common::*;
use diskfab_core::lvm::crc::{lvm_crc, INITIAL_CRC};
use diskfab_core::lvm::label::{parse_label, parse_mda_header, MDA_HEADER_SIZE};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn img() -> PathBuf {
    let fix = fixtures();
    assert!(fix.join("lvm.complete").exists(), "LVM fixture missing");
    fix.join("lvm.raw")
}

/// A private copy of the fixture (for writes and damage).
fn copy(dir: &Path) -> PathBuf {
    let p = dir.join("lvm.raw");
    tool(
        "cp",
        &[
            "--sparse=always",
            img().to_str().unwrap(),
            p.to_str().unwrap(),
        ],
    );
    p
}

fn report() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("lvm-lvs.json")).unwrap()).unwrap()
}

/// (offset, size) in the disk of a one-segment LV, from the lvm2 reports and sfdisk.
fn lv_range(raw: &Path, lv: &str) -> (u64, u64) {
    let r = report();
    let seg = r["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["lv_name"] == lv)
        .unwrap();
    let (dev, pr) = seg["seg_pe_ranges"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    let part = if r["pv_devices"][dev] == "pv1" { 2 } else { 3 };
    let p = r["pvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pv_name"] == dev)
        .unwrap();
    let num = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    let first: u64 = pr.split('-').next().unwrap().parse().unwrap();
    let ext = num(&p["vg_extent_size"]);
    let start = sfdisk_part(raw, part).0 + num(&p["pe_start"]) + first * ext;
    (start, num(&seg["seg_size_pe"]) * ext)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn info_lists_the_volume_group_its_lvs_and_the_luks_headers() {
    let img = img();
    let v: Value = serde_json::from_str(&ok(&["info", "--json", s(&img)])).unwrap();
    let vg = &v["volume_groups"][0];
    assert_eq!(vg["name"], "rl");
    let lvs: Vec<(String, String)> = vg["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().into(),
                l["segment_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("root", "linear"),
        ("home", "linear"),
        ("st-data", "striped"),
        ("pool", "thin-pool"),
    ] {
        assert!(
            lvs.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {lvs:?}"
        );
    }
    let root = vg["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "root")
        .unwrap();
    assert_eq!(root["fs_type"], "ext4");
    assert_eq!(root["size"], 256u64 << 20);
    let pool = vg["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "pool")
        .unwrap();
    assert!(pool["error"].as_str().unwrap().contains("thin-pool"));
    let by_lv = |n: &str| {
        v["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["logical_volume"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_lv("rl/root")["filesystem"]["uuid"],
        "0a0a0a0a-1111-4222-8333-444444444444"
    );
    assert_eq!(by_lv("rl/st-data")["filesystem"]["label"], "stdata");
    let luks: Vec<&Value> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.get("luks"))
        .collect();
    assert_eq!(luks.len(), 2);
    assert_eq!(luks[0]["version"], 1);
    assert_eq!(luks[1]["uuid"], "22222222-aaaa-4bbb-8ccc-000000000002");
    let text = ok(&["info", s(&img)]);
    for needle in [
        "volume group:   rl",
        "rl/st-data",
        "thin-pool",
        "LUKS1 uuid=11111111",
        "LUKS2",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}

#[test]
fn every_lv_spelling_selects_the_same_filesystem() {
    let img = img();
    let a = ok(&["ls", s(&img), "-p", "rl/root", "/etc"]);
    assert!(a.contains("os-release"));
    assert_eq!(ok(&["ls", s(&img), "-p", "/dev/rl/root", "/etc"]), a);
    assert_eq!(ok(&["ls", s(&img), "-p", "/dev/mapper/rl-root", "/etc"]), a);
    // Without -p the OS root inside the LV is found.
    assert_eq!(ok(&["ls", s(&img), "/etc"]), a);
    let os = ok(&[
        "cat",
        s(&img),
        "-p",
        "/dev/mapper/rl-st--data",
        "/os-release",
    ]);
    let tree = fixtures().join("debian-minbase/etc/os-release");
    assert_eq!(os, std::fs::read_to_string(tree).unwrap());
    let o = diskfab(&["ls", s(&img), "-p", "rl/pool", "/"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("thin-pool"), "{err}");
    let o = diskfab(&["ls", s(&img), "-p", "rl/nope", "/"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no logical volume rl/nope"));
}

#[test]
fn root_lv_tree_equals_the_kernel_mount_at_the_lv_offset() {
    let img = img();
    let (off, size) = lv_range(&img, "root");
    let m = Mount::ext(&img, off, size);
    let out = ok(&["ls", "--json", "-R", s(&img), "-p", "rl/root", "/"]);
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    let ours: BTreeSet<(String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["size"].as_u64().unwrap_or(0),
            )
        })
        .filter(|(p, _)| !p.starts_with("/lost+found/"))
        .collect();
    let root = m.path().to_str().unwrap();
    let found = tool(
        "find",
        &[root, "-mindepth", "1", "-printf", "/%P\\t%s\\t%y\\n"],
    );
    let kernel: BTreeSet<(String, u64)> = found
        .lines()
        .filter(|l| !l.starts_with("/lost+found/"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let size = if f[2] == "f" || f[2] == "l" {
                f[1].parse().unwrap()
            } else {
                0
            };
            (f[0].to_string(), size)
        })
        .collect();
    let ours: BTreeSet<(String, u64)> = ours
        .into_iter()
        .map(|(p, sz)| {
            let e = entries.iter().find(|e| e["path"] == p.as_str()).unwrap();
            let t = e["file_type"].as_str().unwrap_or("");
            (
                p,
                if t == "regular" || t == "symlink" {
                    sz
                } else {
                    0
                },
            )
        })
        .collect();
    assert_eq!(ours.len(), kernel.len(), "entry counts differ");
    let diff: Vec<_> = ours.symmetric_difference(&kernel).take(10).collect();
    assert!(diff.is_empty(), "trees differ (path, size): {diff:?}");
    let fstab = ok(&["cat", s(&img), "-p", "rl/root", "/etc/fstab"]);
    assert_eq!(
        fstab,
        std::fs::read_to_string(m.path().join("etc/fstab")).unwrap()
    );
}

#[test]
fn copy_in_to_an_lv_is_seen_by_the_kernel_and_e2fsck_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let raw = copy(dir.path());
    let host = dir.path().join("hello.txt");
    std::fs::write(&host, "written through LvDev\n").unwrap();
    ok(&["copy-in", s(&raw), "-p", "/dev/rl/root", s(&host), "/root"]);
    ok(&["copy-in", s(&raw), "-p", "rl/st-data", s(&host), "/"]);
    let (off, size) = lv_range(&raw, "root");
    e2fsck_clean(&raw, off, size);
    let m = Mount::ext(&raw, off, size);
    assert_eq!(
        std::fs::read_to_string(m.path().join("root/hello.txt")).unwrap(),
        "written through LvDev\n"
    );
    drop(m);
    // The striped LV: our read of the file back, and the LVM metadata is untouched.
    assert_eq!(
        ok(&["cat", s(&raw), "-p", "rl/st-data", "/hello.txt"]),
        "written through LvDev\n"
    );
    let v: Value = serde_json::from_str(&ok(&["info", "--json", s(&raw)])).unwrap();
    assert_eq!(v["volume_groups"][0]["seqno"], report_seqno(&img()));
    assert!(v["volume_groups"][0].get("warnings").is_none(), "{v}");
}

fn report_seqno(img: &Path) -> Value {
    let v: Value = serde_json::from_str(&ok(&["info", "--json", s(img)])).unwrap();
    v["volume_groups"][0]["seqno"].clone()
}

#[test]
fn inspect_resolves_mapper_and_vg_lv_fstab_names() {
    let img = img();
    let v: Value = serde_json::from_str(&ok(&["inspect", "--json", s(&img)])).unwrap();
    let os = &v["operating_systems"][0];
    assert_eq!(os["root_volume"], "rl/root");
    let mp = |m: &str| {
        os["mountpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["mountpoint"] == m)
            .cloned()
            .unwrap()
    };
    assert_eq!(mp("/")["volume"], "rl/root");
    assert_eq!(mp("/home")["volume"], "rl/home");
    assert_eq!(mp("/srv")["volume"], "rl/st-data");
    assert_eq!(mp("/boot")["partition"], 1);
}

/// Rewrites the metadata text of the PV in partition `part` with `f` (checksums recomputed
/// unless `keep_crc`), as a hostile image maker would.
fn rewrite_text(raw: &Path, part: usize, keep_crc: bool, f: impl Fn(&str) -> String) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let base = sfdisk_part(raw, part).0;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(raw)
        .unwrap();
    let mut head = vec![0u8; 2048];
    file.seek(SeekFrom::Start(base)).unwrap();
    file.read_exact(&mut head).unwrap();
    let pv = parse_label(&head).unwrap().unwrap();
    let area = pv.metadata_areas[0];
    let mut h = vec![0u8; MDA_HEADER_SIZE as usize];
    file.seek(SeekFrom::Start(base + area.offset)).unwrap();
    file.read_exact(&mut h).unwrap();
    let l = parse_mda_header(&h, area).unwrap().locns[0];
    let mut text = vec![0u8; l.size as usize];
    file.seek(SeekFrom::Start(base + area.offset + l.offset))
        .unwrap();
    file.read_exact(&mut text).unwrap();
    let new = f(&String::from_utf8(text).unwrap()).into_bytes();
    assert!(
        l.offset + new.len() as u64 <= area.size,
        "hostile text must fit the area"
    );
    file.seek(SeekFrom::Start(base + area.offset + l.offset))
        .unwrap();
    file.write_all(&new).unwrap();
    if !keep_crc {
        h[48..56].copy_from_slice(&(new.len() as u64).to_le_bytes());
        h[56..60].copy_from_slice(&lvm_crc(INITIAL_CRC, &new).to_le_bytes());
        let c = lvm_crc(INITIAL_CRC, &h[4..]);
        h[..4].copy_from_slice(&c.to_le_bytes());
        file.seek(SeekFrom::Start(base + area.offset)).unwrap();
        file.write_all(&h).unwrap();
    }
}

/// Runs `info` and `ls -p rl/root` on a damaged copy; both must end cleanly (no panic).
fn hostile(
    edit: impl Fn(&str) -> String + Copy,
    both: bool,
    keep_crc: bool,
) -> (String, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let raw = copy(dir.path());
    rewrite_text(&raw, 2, keep_crc, edit);
    if both {
        rewrite_text(&raw, 3, keep_crc, edit);
    }
    let info = diskfab(&["info", "--json", s(&raw)]);
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let ls = diskfab(&["ls", s(&raw), "-p", "rl/home", "/"]);
    let code = ls.status.code();
    assert!(matches!(code, Some(0..=5)), "exit {code:?}: a crash?");
    (String::from_utf8_lossy(&info.stdout).into_owned(), ls)
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn hostile_metadata_gives_clear_errors() {
    // Overlapping segments: home's second segment starts inside its first.
    let (info, ls) = hostile(
        |t| t.replacen("start_extent = 2\n", "start_extent = 1\n", 1),
        true,
        false,
    );
    assert!(info.contains("overlap"), "{info}");
    assert_eq!(ls.status.code(), Some(3), "damage exits 3: {}", err(&ls));
    // Absurd extent count.
    let (info, ls) = hostile(
        |t| t.replacen("extent_count = 64", "extent_count = 99999999999999", 1),
        true,
        false,
    );
    assert!(info.contains("extent count"), "{info}");
    assert_eq!(ls.status.code(), Some(3), "damage exits 3: {}", err(&ls));
    // Deep nesting.
    let deep = |t: &str| format!("{}{}{}", "a {".repeat(100), "}".repeat(100), t);
    let (info, ls) = hostile(deep, true, false);
    assert!(info.contains("nested deeper"), "{info}");
    assert_eq!(ls.status.code(), Some(3), "damage exits 3: {}", err(&ls));
    assert!(err(&ls).contains("nested deeper"), "{}", err(&ls));
    // Bad checksum on both PVs: nothing to trust.
    let (info, ls) = hostile(|t| t.replacen("seqno = 9", "seqno = 8", 1), true, true);
    assert!(info.contains("checksum mismatch"), "{info}");
    assert_eq!(ls.status.code(), Some(3), "damage exits 3: {}", err(&ls));
    // Bad checksum on one PV: the other's copy is used, with a warning.
    let (info, ls) = hostile(|t| t.replacen("seqno = 9", "seqno = 8", 1), false, true);
    assert!(ls.status.success(), "{}", err(&ls));
    assert!(info.contains("checksum mismatch"), "{info}");
    // Seqno disagreement: the highest wins, with a warning.
    let (info, ls) = hostile(|t| t.replacen("seqno = 9", "seqno = 10", 1), false, false);
    assert!(ls.status.success(), "{}", err(&ls));
    let v: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["volume_groups"][0]["seqno"], 10);
    assert!(info.contains("disagree"), "{info}");
}

#[test]
fn stamp_on_the_root_lv_writes_clones_the_kernel_reads_and_refuses_scattered_lvs() {
    let dir = tempfile::tempdir().unwrap();
    let base = copy(dir.path());
    let d = dir.path().to_str().unwrap();
    let csv = dir.path().join("i.csv");
    std::fs::write(&csv, "name\nvm1\nvm2\n").unwrap();
    let out = dir.path().join("out");
    let (b, c, o) = (s(&base), s(&csv), s(&out));
    ok(&[
        "stamp",
        b,
        "--instances",
        c,
        "--out",
        o,
        "--hostname",
        "{{name}}",
        "--backing-dir",
        d,
    ]);
    let raw = dir.path().join("vm2.raw");
    to_raw(&out.join("vm2.qcow2"), &raw);
    let (off, size) = lv_range(&raw, "root");
    e2fsck_clean(&raw, off, size);
    let m = Mount::ext(&raw, off, size);
    assert_eq!(
        std::fs::read_to_string(m.path().join("etc/hostname")).unwrap(),
        "vm2\n"
    );
    drop(m);
    // home has two segments on two PVs: clones are disk blocks, so stamp refuses it clearly.
    let out2 = dir.path().join("out2");
    let r = diskfab(&[
        "stamp",
        b,
        "--instances",
        c,
        "--out",
        s(&out2),
        "--hostname",
        "{{name}}",
        "--backing-dir",
        d,
        "-p",
        "rl/home",
    ]);
    assert!(!r.status.success());
    assert!(err(&r).contains("contiguous volume"), "{}", err(&r));
}

#[test]
fn a_whole_disk_pv_works_and_a_missing_pv_is_named_by_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let img = img();
    let (start, size) = sfdisk_part(&img, 2);
    let pv = dir.path().join("pv1.raw");
    tool(
        "dd",
        &[
            &format!("if={}", s(&img)),
            &format!("of={}", s(&pv)),
            "bs=1M",
            &format!("skip={}", start >> 20),
            &format!("count={}", size >> 20),
            "conv=sparse",
            "status=none",
        ],
    );
    // Only the root LV (on this PV alone) has a filesystem diskfab can reach: it is chosen.
    assert!(ok(&["ls", s(&pv), "/etc"]).contains("os-release"));
    let v: Value = serde_json::from_str(&ok(&["info", "--json", s(&pv)])).unwrap();
    let pvs = &v["volume_groups"][0]["pvs"];
    assert_eq!(pvs[0]["partition"], 0, "the whole disk");
    assert!(pvs[1]["partition"].is_null(), "{pvs}");
    let o = diskfab(&["ls", s(&pv), "-p", "/dev/rl/home", "/"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("PV2bbb-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbbb"),
        "{}",
        err(&o)
    );
}
