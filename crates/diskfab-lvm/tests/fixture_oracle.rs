//! Oracle tests against the fixture built by LVM's own tools and cryptsetup
//! (scripts/fixture_lvm.sh): the VG/LV layout equals `lvs --segments`, every LV's bytes equal
//! the bytes at the offsets that report gives (read straight from the image, as a loop device
//! at that offset would), and the LUKS fields equal `cryptsetup luksDump`.

use diskfab_lvm::{assemble, luks, scan_pv, AssembledVg, LvDev};
use diskfab_storage::{BlockDev, DevRef, Error, FileDev, Slice};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
    let o = Command::new("bash")
        .arg(script)
        .output()
        .expect("run fixtures.sh");
    assert!(
        o.status.success(),
        "fixtures.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fix = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(
        fix.join("lvm.complete").exists(),
        "LVM fixture missing: run scripts/fixtures.sh"
    );
    fix
}

fn partitions(disk: &DevRef) -> Vec<(u64, DevRef)> {
    let t = diskfab_part::read_table(disk).unwrap().unwrap();
    t.partitions
        .iter()
        .map(|p| {
            let d: DevRef = Arc::new(Slice::new(disk.clone(), p.start, p.size).unwrap());
            (p.start, d)
        })
        .collect()
}

struct Fixture {
    fix: PathBuf,
    disk: DevRef,
    parts: Vec<(u64, DevRef)>,
    vg: AssembledVg,
    report: Value,
}

fn open() -> Fixture {
    let fix = fixtures();
    let disk: DevRef = Arc::new(FileDev::open(&fix.join("lvm.raw"), false).unwrap());
    let parts = partitions(&disk);
    let pvs: Vec<_> = parts[1..3]
        .iter()
        .map(|(_, d)| (d.clone(), scan_pv(d).unwrap().expect("a PV")))
        .collect();
    let mut vgs = assemble(&pvs);
    assert_eq!(vgs.len(), 1);
    let vg = vgs.remove(0);
    assert!(vg.warnings.is_empty(), "{:?}", vg.warnings);
    let report = serde_json::from_slice(&std::fs::read(fix.join("lvm-lvs.json")).unwrap()).unwrap();
    Fixture {
        fix,
        disk,
        parts,
        vg,
        report,
    }
}

fn read_all(d: &dyn BlockDev) -> Vec<u8> {
    let mut v = vec![0u8; d.size() as usize];
    d.read_at(&mut v, 0).unwrap();
    v
}

#[test]
fn layout_equals_the_lvs_segments_report() {
    let f = open();
    assert_eq!(f.vg.vg.name, "rl");
    let ext: u64 = f.report["pvs"][0]["vg_extent_size"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(f.vg.vg.extent_size, ext);
    let segs = f.report["lvs"].as_array().unwrap();
    let mut names: Vec<String> = segs
        .iter()
        .map(|s| {
            s["lv_name"]
                .as_str()
                .unwrap()
                .trim_matches(['[', ']'])
                .to_string()
        })
        .collect();
    names.dedup();
    let mut ours: Vec<String> = f.vg.vg.lvs.iter().map(|l| l.name.clone()).collect();
    ours.sort();
    names.sort();
    assert_eq!(ours, names);
    for s in segs {
        let name = s["lv_name"].as_str().unwrap().trim_matches(['[', ']']);
        let lv = f.vg.vg.lvs.iter().find(|l| l.name == name).unwrap();
        let start: u64 = s["seg_start_pe"].as_str().unwrap().parse().unwrap();
        let seg = lv
            .segments
            .iter()
            .find(|g| g.start_extent == start)
            .unwrap();
        let size: u64 = s["seg_size_pe"].as_str().unwrap().parse().unwrap();
        assert_eq!(seg.extent_count, size, "{name}");
        let want = s["segtype"].as_str().unwrap();
        let got = if seg.seg_type == "striped" && seg.stripes.len() == 1 {
            "linear"
        } else {
            &seg.seg_type
        };
        assert_eq!(got, want, "{name}");
        let lv_size: u64 = s["lv_size"].as_str().unwrap().parse().unwrap();
        assert_eq!(lv.size(ext), lv_size, "{name}");
    }
}

/// Byte offset in the image of LV extent ranges, from the report ("/dev/loopN:first-last").
fn report_offset(f: &Fixture, range: &str) -> u64 {
    let (dev, pr) = range.rsplit_once(':').unwrap();
    let pv = f.report["pv_devices"][dev].as_str().unwrap();
    let part = if pv == "pv1" {
        f.parts[1].0
    } else {
        f.parts[2].0
    };
    let pvs = f.report["pvs"].as_array().unwrap();
    let p = pvs.iter().find(|p| p["pv_name"] == dev).unwrap();
    let pe_start: u64 = p["pe_start"].as_str().unwrap().parse().unwrap();
    let ext: u64 = p["vg_extent_size"].as_str().unwrap().parse().unwrap();
    let first: u64 = pr.split('-').next().unwrap().parse().unwrap();
    part + pe_start + first * ext
}

#[test]
fn linear_lv_bytes_equal_the_image_at_the_reported_offsets() {
    let f = open();
    for name in ["root", "swap"] {
        let lv = LvDev::open(&f.vg, name).unwrap();
        let seg = f.report["lvs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["lv_name"] == name)
            .unwrap();
        let at = report_offset(&f, seg["seg_pe_ranges"].as_str().unwrap());
        let ours = read_all(&lv);
        let mut theirs = vec![0u8; ours.len()];
        f.disk.read_at(&mut theirs, at).unwrap();
        assert!(ours == theirs, "LV {name} differs from the image at {at}");
    }
}

#[test]
fn multi_segment_and_striped_lvs_read_back_what_was_placed() {
    let f = open();
    for (name, file) in [("home", "lvm-home.ext4"), ("st-data", "lvm-st-data.ext4")] {
        let lv = LvDev::open(&f.vg, name).unwrap();
        let want = std::fs::read(f.fix.join(file)).unwrap();
        assert!(read_all(&lv) == want, "LV {name} differs from {file}");
    }
    let lv = LvDev::open(&f.vg, "st-data").unwrap();
    // Reads across stripe-chunk boundaries equal the same bytes read whole.
    let whole = read_all(&lv);
    let mut piece = vec![0u8; 200_000];
    lv.read_at(&mut piece, 65_000).unwrap();
    assert!(piece[..] == whole[65_000..265_000]);
}

#[test]
fn thin_pool_is_refused_by_its_segment_type() {
    let f = open();
    let e = LvDev::open(&f.vg, "pool").unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("thin-pool"), "{e}");
}

#[test]
fn missing_pv_is_named_by_uuid() {
    let f = open();
    let only_first = vec![(
        f.parts[1].1.clone(),
        scan_pv(&f.parts[1].1).unwrap().unwrap(),
    )];
    let vg = assemble(&only_first).remove(0);
    assert!(
        LvDev::open(&vg, "root").is_ok(),
        "root lives on the first PV only"
    );
    let e = LvDev::open(&vg, "home").unwrap_err().to_string();
    assert!(e.contains("PV2bbb-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbbb"), "{e}");
}

fn dump_field<'a>(dump: &'a str, key: &str) -> &'a str {
    dump.lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(key)
                .map(|v| v.trim_start_matches(':').trim())
        })
        .unwrap_or_else(|| panic!("{key} not in luksDump"))
}

#[test]
fn luks_headers_equal_cryptsetup_luks_dump() {
    let f = open();
    let l1 = luks::probe(&f.parts[3].1).unwrap().expect("LUKS1");
    let d1 = std::fs::read_to_string(f.fix.join("lvm-luks1.dump")).unwrap();
    assert_eq!(l1.version, 1);
    assert_eq!(l1.uuid, dump_field(&d1, "UUID"));
    assert_eq!(
        l1.cipher,
        format!(
            "{}-{}",
            dump_field(&d1, "Cipher name"),
            dump_field(&d1, "Cipher mode")
        )
    );
    assert_eq!(l1.hash, dump_field(&d1, "Hash spec"));
    assert_eq!(
        l1.payload_offset / 512,
        dump_field(&d1, "Payload offset").parse::<u64>().unwrap()
    );
    assert_eq!(l1.key_bits.to_string(), dump_field(&d1, "MK bits"));
    let enabled: Vec<u32> = l1
        .keyslots
        .iter()
        .filter(|k| k.enabled)
        .map(|k| k.id)
        .collect();
    let want: Vec<u32> = (0..8)
        .filter(|i| d1.contains(&format!("Key Slot {i}: ENABLED")))
        .collect();
    assert_eq!(enabled, want);

    let l2 = luks::probe(&f.parts[4].1).unwrap().expect("LUKS2");
    let d2 = std::fs::read_to_string(f.fix.join("lvm-luks2.dump")).unwrap();
    let j: Value =
        serde_json::from_slice(&std::fs::read(f.fix.join("lvm-luks2.json")).unwrap()).unwrap();
    assert_eq!(l2.version, 2);
    assert_eq!(l2.uuid, dump_field(&d2, "UUID"));
    assert_eq!(l2.label.as_deref(), Some(dump_field(&d2, "Label")));
    assert_eq!(l2.epoch.unwrap().to_string(), dump_field(&d2, "Epoch"));
    assert_eq!(
        l2.cipher,
        j["segments"]["0"]["encryption"].as_str().unwrap()
    );
    assert_eq!(
        l2.payload_offset.to_string(),
        j["segments"]["0"]["offset"].as_str().unwrap()
    );
    let ids: Vec<String> = l2.keyslots.iter().map(|k| k.id.to_string()).collect();
    let mut want: Vec<String> = j["keyslots"].as_object().unwrap().keys().cloned().collect();
    want.sort();
    assert_eq!(ids, want);
    for k in &l2.keyslots {
        let s = &j["keyslots"][k.id.to_string()];
        assert_eq!(k.kdf, s["kdf"]["type"].as_str().unwrap());
        assert_eq!(k.iterations, s["kdf"]["iterations"].as_u64());
    }
}
