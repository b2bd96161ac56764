//! qcow2 extended L2 entries (subclusters) checked against QEMU: images made and written by
//! qemu-img/qemu-io read back like `qemu-img convert`, map like `qemu-img map`, and the same
//! writes done by diskfab and by qemu-io give images `qemu-img compare` finds equal and
//! `qemu-img check` finds clean; `check` agrees with `qemu-img check`.

use diskfab_image::{check, create, map, BackingGate, CreateOptions, Format, Image, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{run, s};

fn open(p: &Path, writable: bool) -> Image {
    Image::open(
        p,
        &OpenOptions {
            writable,
            gate: BackingGate::default(),
        },
    )
    .unwrap()
}

fn read_all(img: &Image) -> Vec<u8> {
    let d = img.dev();
    let mut v = vec![0u8; d.size() as usize];
    let mut off = 0;
    while off < v.len() {
        let n = (v.len() - off).min(77_777); // uneven: straddles subclusters and clusters
        d.read_at(&mut v[off..off + n], off as u64).unwrap();
        off += n;
    }
    v
}

/// A guest write: `Some(byte)` fills with the byte, `None` writes zeroes (`write -z`).
type Op = (u64, u64, Option<u8>);

/// Writes at subcluster granularity for cluster size `cs`: inside one subcluster, across
/// subcluster and cluster boundaries, whole clusters, zeroes aligned and not.
fn ops(cs: u64) -> Vec<Op> {
    let sc = cs / 32;
    vec![
        (2 * sc, 2 * sc, Some(0xab)),
        (cs + sc / 2, sc / 4, Some(0xcd)),
        (3 * cs - sc, 2 * sc, Some(0x5a)),
        (5 * sc, 3 * sc, None),
        (4 * cs + 100, sc * 3, None),
        (6 * cs, 2 * cs, Some(0x77)),
        (6 * cs + 4 * sc, cs, None),
        (9 * cs, cs, None),
        (2 * sc + 10, 20, Some(0x99)),
    ]
}

fn qemu_io_args(ops: &[Op]) -> Vec<String> {
    let mut a = Vec::new();
    for &(off, len, v) in ops {
        a.push("-c".to_string());
        a.push(match v {
            Some(b) => format!("write -P {b:#x} {off} {len}"),
            None => format!("write -z {off} {len}"),
        });
    }
    a
}

fn qemu_io(img: &Path, ops: &[Op]) {
    let mut a = qemu_io_args(ops);
    a.push(s(img).to_string());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run("qemu-io", &a);
}

fn diskfab_writes(img: &Path, ops: &[Op]) {
    let i = open(img, true);
    let d = i.dev();
    for &(off, len, v) in ops {
        match v {
            Some(b) => d.write_at(&vec![b; len as usize], off).unwrap(),
            None => d.write_zeroes(off, len).unwrap(),
        }
    }
    i.flush().unwrap();
}

fn qcow2_x(dir: &Path, name: &str, cs: u64, size: &str, backing: Option<&Path>) -> PathBuf {
    let p = dir.join(name);
    let o = format!("extended_l2=on,cluster_size={cs}");
    let mut a = vec!["create", "-q", "-f", "qcow2", "-o", &o];
    if let Some(b) = backing {
        a.extend(["-b", s(b), "-F", "qcow2"]);
    }
    a.extend([s(&p), size]);
    run("qemu-img", &a);
    p
}

/// A base image full of data (0x11) so that unallocated subclusters of an overlay show it.
fn base(dir: &Path, cs: u64) -> PathBuf {
    let b = qcow2_x(dir, &format!("base{cs}.qcow2"), cs, "2M", None);
    run("qemu-io", &["-c", "write -P 0x11 0 2M", s(&b)]);
    b
}

fn qemu_raw(img: &Path) -> Vec<u8> {
    let out = img.with_extension("oracle.raw");
    let _ = std::fs::remove_file(&out);
    run("qemu-img", &["convert", "-O", "raw", s(img), s(&out)]);
    std::fs::read(&out).unwrap()
}

/// `qemu-img map --output=json` as (start, length, kind, depth), adjacent equal runs merged.
fn qemu_map(img: &Path) -> Vec<(u64, u64, String, u64)> {
    let v: serde_json::Value =
        serde_json::from_str(&run("qemu-img", &["map", "--output=json", s(img)])).unwrap();
    let mut out: Vec<(u64, u64, String, u64)> = Vec::new();
    for e in v.as_array().unwrap() {
        let (start, len) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
        let (kind, depth) = if e["present"] == false {
            ("unallocated", 0)
        } else if e["data"] == true {
            ("data", e["depth"].as_u64().unwrap())
        } else {
            ("zero", e["depth"].as_u64().unwrap())
        };
        push_merged(&mut out, (start, len, kind.to_string(), depth));
    }
    out
}

fn push_merged(v: &mut Vec<(u64, u64, String, u64)>, e: (u64, u64, String, u64)) {
    match v.last_mut() {
        Some(l) if l.2 == e.2 && l.3 == e.3 && l.0 + l.1 == e.0 => l.1 += e.1,
        _ => v.push(e),
    }
}

fn our_map(img: &Path) -> Vec<(u64, u64, String, u64)> {
    let mut out = Vec::new();
    for e in map(&open(img, false)).unwrap() {
        push_merged(
            &mut out,
            (e.start, e.length, e.kind.to_string(), e.depth as u64),
        );
    }
    out
}

fn qemu_check_counts(img: &Path) -> (i32, u64, u64) {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", s(img)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    (o.status.code().unwrap(), n("corruptions"), n("leaks"))
}

fn assert_check_agrees(img: &Path) {
    let (code, corruptions, leaks) = qemu_check_counts(img);
    let r = check(img).unwrap();
    assert_eq!(
        (r.exit_code(), r.corruptions, r.leaks),
        (code, corruptions, leaks),
        "{}: {:?}",
        img.display(),
        r.messages
    );
}

#[test]
fn qemu_written_subclusters_read_and_map_like_qemu_with_and_without_backing() {
    let t = tempfile::tempdir().unwrap();
    for cs in [16384u64, 65536, 2 << 20] {
        let b = base(t.path(), cs.min(65536));
        let size = format!("{}", 12 * cs);
        for backing in [None, Some(b.as_path())] {
            let img = qcow2_x(t.path(), &format!("q{cs}.qcow2"), cs, &size, backing);
            qemu_io(&img, &ops(cs));
            // A compressed cluster too (subcluster bitmap must stay 0).
            run(
                "qemu-io",
                &["-c", &format!("write -c -P 0x3c {} {cs}", 10 * cs), s(&img)],
            );
            let want = qemu_raw(&img);
            assert!(
                read_all(&open(&img, false)) == want,
                "cs {cs} backing {backing:?}"
            );
            assert_eq!(
                our_map(&img),
                qemu_map(&img),
                "map, cs {cs} backing {backing:?}"
            );
            assert_check_agrees(&img);
            std::fs::remove_file(&img).unwrap();
        }
    }
}

#[test]
fn subcluster_writes_by_diskfab_equal_the_same_writes_by_qemu_io_and_pass_qemu_img_check() {
    let t = tempfile::tempdir().unwrap();
    for cs in [16384u64, 65536] {
        let b = base(t.path(), cs);
        for backing in [None, Some(b.as_path())] {
            let ours = qcow2_x(t.path(), "ours.qcow2", cs, &format!("{}", 12 * cs), backing);
            // Start from a compressed cluster and data written by QEMU, then write over them.
            let seed = format!("write -c -P 0x3c {cs} {cs}");
            run(
                "qemu-io",
                &["-c", &seed, "-c", "write -P 0x42 0 4096", s(&ours)],
            );
            let theirs = t.path().join("theirs.qcow2");
            std::fs::copy(&ours, &theirs).unwrap();
            diskfab_writes(&ours, &ops(cs));
            qemu_io(&theirs, &ops(cs));
            run("qemu-img", &["check", "-q", s(&ours)]);
            run("qemu-img", &["compare", "-q", s(&ours), s(&theirs)]);
            assert_check_agrees(&ours);
            for f in [&ours, &theirs] {
                std::fs::remove_file(f).unwrap();
            }
        }
    }
}

#[test]
fn a_small_write_onto_a_backing_file_allocates_only_the_touched_subclusters() {
    let t = tempfile::tempdir().unwrap();
    let cs = 65536u64;
    let b = base(t.path(), cs);
    let top = qcow2_x(t.path(), "top.qcow2", cs, "2M", Some(&b));
    // 4 KiB at 6 KiB: subclusters 3..=4 (2 KiB each), the first and last only partly.
    diskfab_writes(&top, &[(6144, 4096, Some(0xab))]);
    run("qemu-img", &["check", "-q", s(&top)]);
    let m = our_map(&top);
    assert_eq!(
        m[..3],
        [
            (0, 6144, "data".to_string(), 1),
            (6144, 4096, "data".to_string(), 0),
            (10240, (2 << 20) - 10240, "data".to_string(), 1)
        ][..]
    );
    assert_eq!(m, qemu_map(&top));
    assert!(read_all(&open(&top, false)) == qemu_raw(&top));
}

#[test]
fn images_created_with_extended_l2_are_valid_for_qemu_and_take_subcluster_writes() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("new.qcow2");
    create(
        &img,
        &CreateOptions {
            format: Format::Qcow2,
            size: Some(1 << 20),
            cluster_size: Some(32768),
            extended_l2: true,
            ..Default::default()
        },
    )
    .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(&img)])).unwrap();
    assert_eq!(info["format-specific"]["data"]["extended-l2"], true);
    assert_eq!(info["cluster-size"], 32768);
    run("qemu-img", &["check", "-q", s(&img)]);
    let theirs = t.path().join("theirs.qcow2");
    std::fs::copy(&img, &theirs).unwrap();
    diskfab_writes(&img, &ops(32768));
    qemu_io(&theirs, &ops(32768));
    run("qemu-img", &["check", "-q", s(&img)]);
    run("qemu-img", &["compare", "-q", s(&img), s(&theirs)]);
    assert_check_agrees(&img);
    let small = t.path().join("small.qcow2");
    let e = create(
        &small,
        &CreateOptions {
            format: Format::Qcow2,
            size: Some(1 << 20),
            cluster_size: Some(8192),
            extended_l2: true,
            ..Default::default()
        },
    )
    .expect_err("8 KiB clusters with extended L2");
    assert!(e.to_string().contains("16K"), "{e}");
}

/// Offset of the first L2 table's first entry of a fresh image after one qemu-io write.
fn first_l2_entry(img: &Path) -> u64 {
    let b = std::fs::read(img).unwrap();
    let l1 = u64::from_be_bytes(b[40..48].try_into().unwrap()) as usize;
    u64::from_be_bytes(b[l1..l1 + 8].try_into().unwrap()) & 0x00ff_ffff_ffff_fe00
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .write_all_at(bytes, off)
        .unwrap();
}

#[test]
fn invalid_subcluster_bitmaps_are_corruption_for_reads_writes_and_check() {
    let t = tempfile::tempdir().unwrap();
    let bad: [(u64, u64); 3] = [
        (0, 1 | (1 << 32)),           // allocated and zero at once (entry kept)
        (u64::MAX, 1),                // allocated without a host cluster (entry cleared)
        (u64::MAX - 1, 0xffff << 32), // compressed with a bitmap
    ];
    for (i, (entry, bitmap)) in bad.into_iter().enumerate() {
        let img = qcow2_x(t.path(), &format!("h{i}.qcow2"), 65536, "1M", None);
        run("qemu-io", &["-c", "write -P 1 0 64k", s(&img)]);
        let l2 = first_l2_entry(&img);
        if entry == u64::MAX {
            patch(&img, l2, &0u64.to_be_bytes());
        } else if entry == u64::MAX - 1 {
            let mut e = [0u8; 8];
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&img)
                .unwrap()
                .read_exact_at(&mut e, l2)
                .unwrap();
            let e = u64::from_be_bytes(e) & 0x00ff_ffff_ffff_fe00;
            patch(&img, l2, &((1u64 << 62) | e).to_be_bytes());
        }
        patch(&img, l2 + 8, &bitmap.to_be_bytes());
        let before = std::fs::read(&img).unwrap();
        let dev = open(&img, false).dev();
        let mut buf = vec![0u8; 4096];
        let e = dev.read_at(&mut buf, 0).expect_err("hostile bitmap read");
        assert_eq!(e.exit_code(), 3, "{e}");
        let w = open(&img, true);
        let e = w.dev().write_at(&buf, 0).expect_err("hostile bitmap write");
        assert_eq!(e.exit_code(), 3, "{e}");
        let e = w
            .dev()
            .write_zeroes(0, 65536)
            .expect_err("hostile bitmap zero");
        assert_eq!(e.exit_code(), 3, "{e}");
        drop(w);
        assert!(before == std::fs::read(&img).unwrap(), "case {i} modified");
        let r = check(&img).unwrap();
        assert!(r.corruptions > 0, "case {i}: {:?}", r.messages);
        assert_eq!(
            qemu_check_counts(&img).0,
            2,
            "qemu-img check agrees: corrupt"
        );
    }
}
