//! Policy around the qcow2 engine, checked against QEMU: header flag bits decide what may be
//! opened writable, the backing gate refuses pseudo-files, symlink escapes and deep chains,
//! write_zeroes deallocates or writes zero clusters, and formats are detected by content.

use diskfab_image::{
    detect_format, format_drivers, fuzz_qcow2, BackingGate, Format, Image, OpenOptions,
};
use diskfab_storage::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod common;
use common::{run, s};

fn open_with(p: &Path, writable: bool, gate: BackingGate) -> diskfab_storage::Result<Image> {
    Image::open(p, &OpenOptions { writable, gate })
}

fn open(p: &Path, writable: bool) -> diskfab_storage::Result<Image> {
    open_with(p, writable, BackingGate::default())
}

/// A 4 MiB qcow2 made by qemu-img holding 0x11 in its first MiB.
fn qemu_image(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    run("qemu-img", &["create", "-q", "-f", "qcow2", s(&p), "4M"]);
    run("qemu-io", &["-c", "write -P 0x11 0 1M", s(&p)]);
    p
}

fn set_incompatible(p: &Path, bits: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(&bits.to_be_bytes(), 72).unwrap();
}

fn overlay(dir: &Path, name: &str, backing: &str, fmt: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            backing,
            "-F",
            fmt,
            s(&p),
            "1M",
        ],
    );
    p
}

#[test]
fn dirty_images_read_but_refuse_writable_open_as_unsupported_and_corrupt_ones_as_bad() {
    let t = tempfile::tempdir().unwrap();
    let p = qemu_image(t.path(), "flags.qcow2");
    for (bits, unsupported) in [(1u64, true), (2u64, false)] {
        set_incompatible(&p, bits);
        let before = std::fs::read(&p).unwrap();
        let e = open(&p, true).expect_err("flagged image opened writable");
        assert_eq!(e.exit_code(), 3, "{e}");
        assert_eq!(matches!(e, Error::Unsupported(_)), unsupported, "{e}");
        assert!(e.to_string().contains("qemu-img check -r all"), "{e}");
        let img = open(&p, false).unwrap();
        let info = img.info().unwrap();
        assert_eq!((info.dirty, info.corrupt), (bits == 1, bits == 2));
        let mut b = vec![0u8; 4096];
        img.dev().read_at(&mut b, 0).unwrap();
        assert!(b.iter().all(|&x| x == 0x11));
        assert!(
            before == std::fs::read(&p).unwrap(),
            "flagged image modified"
        );
    }
}

#[test]
fn garbage_refcount_table_offsets_in_the_header_are_refused() {
    let t = tempfile::tempdir().unwrap();
    for (i, off) in [0x1234u64, 1 << 40, u64::MAX, 0].into_iter().enumerate() {
        let p = qemu_image(t.path(), &format!("rt{i}.qcow2"));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(&off.to_be_bytes(), 48)
            .unwrap();
        let before = std::fs::read(&p).unwrap();
        for writable in [false, true] {
            let e = open(&p, writable).expect_err("garbage refcount table accepted");
            assert_eq!(e.exit_code(), 3, "{off:#x}: {e}");
        }
        assert!(before == std::fs::read(&p).unwrap());
    }
}

#[test]
fn pseudo_files_symlink_escapes_and_deep_chains_are_refused_by_the_gate() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // /proc files are "regular" but never images: refused even with --allow-any-backing.
    let any = BackingGate {
        allow_any: true,
        ..Default::default()
    };
    for target in [
        "/proc/self/environ",
        "/proc/version",
        "/sys/kernel/uevent_seqnum",
    ] {
        if !Path::new(target).exists() {
            continue;
        }
        let p = overlay(d, "proc.qcow2", target, "raw");
        let e = open_with(&p, false, any.clone()).expect_err("pseudo-file accepted");
        assert!(matches!(e, Error::Denied(_)), "{e}");
        assert!(
            e.to_string().contains("fs,"),
            "refused for the wrong reason: {e}"
        );
    }
    // A symlink next to the image pointing outside is resolved before the directory check.
    std::os::unix::fs::symlink("/etc/passwd", d.join("innocent.raw")).unwrap();
    let p = overlay(d, "link.qcow2", "innocent.raw", "raw");
    let e = open(&p, false).expect_err("symlink escape accepted");
    assert!(e.to_string().contains("--backing-dir"), "{e}");
    assert!(e.to_string().contains("--allow-any-backing"), "{e}");
    assert!(open_with(&p, false, any.clone()).is_ok());
    // Depth: base <- l1 <- l2 <- l3 <- l4; max_depth 3 refuses, the default accepts.
    let base = d.join("base.raw");
    std::fs::write(&base, vec![7u8; 1 << 20]).unwrap();
    let mut below = ("base.raw".to_string(), "raw");
    for i in 1..=4 {
        overlay(d, &format!("l{i}.qcow2"), &below.0, below.1);
        below = (format!("l{i}.qcow2"), "qcow2");
    }
    let top = d.join("l4.qcow2");
    let shallow = BackingGate {
        max_depth: 3,
        ..Default::default()
    };
    let e = open_with(&top, false, shallow).expect_err("deep chain accepted");
    assert!(
        matches!(e, Error::Denied(_)) && e.to_string().contains("deeper"),
        "{e}"
    );
    // The raw base (made by hand, no trust mark) needs its directory allowed.
    let e = open(&top, false).expect_err("unmarked raw base accepted");
    assert!(matches!(e, Error::Denied(_)), "{e}");
    let here = BackingGate {
        allow_dirs: vec![d.to_path_buf()],
        ..Default::default()
    };
    let img = open_with(&top, false, here).unwrap();
    let info = img.info().unwrap();
    assert_eq!(info.chain.len(), 4);
    assert_eq!(info.backing_format, Some(Format::Qcow2));
    assert_eq!(info.chain[3].format, Format::Raw);
    let mut b = [0u8; 512];
    img.dev().read_at(&mut b, 4096).unwrap();
    assert!(b.iter().all(|&x| x == 7));
    // A backing file in a sibling directory needs --backing-dir; a missing one is named.
    std::fs::create_dir(d.join("other")).unwrap();
    std::fs::create_dir(d.join("other/deep")).unwrap();
    std::fs::write(d.join("other/deep/b.raw"), vec![1u8; 1 << 20]).unwrap();
    std::fs::create_dir(d.join("imgs")).unwrap();
    std::fs::create_dir(d.join("imgs/x")).unwrap();
    let p = overlay(
        &d.join("imgs/x"),
        "o.qcow2",
        "../../other/deep/b.raw",
        "raw",
    );
    assert!(open(&p, false).is_err());
    let allow = BackingGate {
        allow_dirs: vec![d.join("other")],
        ..Default::default()
    };
    assert!(open_with(&p, false, allow).is_ok());
    let p = overlay(d, "gone.qcow2", "nothing-here.raw", "raw");
    let e = open(&p, false).expect_err("missing backing accepted");
    assert!(matches!(e, Error::BadImage(_)) && e.to_string().contains("nothing-here.raw"));
}

fn map(p: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&run("qemu-img", &["map", "--output=json", s(p)])).unwrap()
}

#[test]
fn write_zeroes_deallocates_without_backing_and_writes_zero_clusters_over_one() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for compat in ["0.10", "1.1"] {
        // No backing: the zeroed range becomes unallocated and the space is given back.
        let p = d.join(format!("alone-{compat}.qcow2"));
        run(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                &format!("compat={compat}"),
                s(&p),
                "4M",
            ],
        );
        run("qemu-io", &["-c", "write -P 0x22 0 4M", s(&p)]);
        let img = open(&p, true).unwrap();
        img.dev().write_zeroes(1 << 20, 2 << 20).unwrap();
        img.dev().write_zeroes(100, 1000).unwrap();
        assert!(img.dev().is_zero_hint(1 << 20, 2 << 20).unwrap());
        assert!(!img.dev().is_zero_hint(0, 4096).unwrap());
        img.flush().unwrap();
        drop(img);
        run("qemu-img", &["check", "-q", s(&p)]);
        let mut want = vec![0x22u8; 4 << 20];
        want[1 << 20..3 << 20].fill(0);
        want[100..1100].fill(0);
        let raw = d.join("want.raw");
        std::fs::write(&raw, &want).unwrap();
        run("qemu-img", &["compare", "-q", s(&raw), s(&p)]);
        let m = map(&p);
        assert!(
            m.iter()
                .any(|e| e["start"] == (1 << 20) && e["data"] == false),
            "{m:?}"
        );
        std::fs::remove_file(&raw).unwrap();
    }
    // Over a backing file (v3): zero clusters hide the backing data.
    let base = d.join("base.raw");
    std::fs::write(&base, vec![0x33u8; 4 << 20]).unwrap();
    let p = d.join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            s(&p),
        ],
    );
    // A raw base made by hand (no diskfab trust mark): its directory is allowed explicitly.
    let here = BackingGate {
        allow_dirs: vec![d.to_path_buf()],
        ..Default::default()
    };
    let img = open_with(&p, true, here).unwrap();
    img.dev().write_zeroes(0, 1 << 20).unwrap();
    assert!(img.dev().is_zero_hint(0, 1 << 20).unwrap());
    assert!(!img.dev().is_zero_hint(1 << 20, 4096).unwrap());
    drop(img);
    run("qemu-img", &["check", "-q", s(&p)]);
    let m = map(&p);
    assert!(m[0]["zero"] == true && m[0]["length"] == (1 << 20), "{m:?}");
    let out = d.join("out.raw");
    run("qemu-img", &["convert", "-O", "raw", s(&p), s(&out)]);
    let got = std::fs::read(&out).unwrap();
    assert!(got[..1 << 20].iter().all(|&x| x == 0));
    assert!(got[1 << 20..].iter().all(|&x| x == 0x33));
    assert_eq!(std::fs::read(&base).unwrap(), vec![0x33u8; 4 << 20]);
}

#[test]
fn formats_are_detected_by_magic_never_by_file_name() {
    let t = tempfile::tempdir().unwrap();
    let q = qemu_image(t.path(), "q.qcow2");
    let disguised = t.path().join("disguised.raw");
    std::fs::rename(&q, &disguised).unwrap();
    assert_eq!(open(&disguised, false).unwrap().format(), Format::Qcow2);
    let fake = t.path().join("fake.qcow2");
    std::fs::write(&fake, vec![0u8; 1 << 20]).unwrap();
    assert_eq!(open(&fake, false).unwrap().format(), Format::Raw);
    assert_eq!(detect_format(b"QFI\xfb\0\0\0\x03"), Format::Qcow2);
    assert_eq!(detect_format(b"QFI"), Format::Raw);
    assert_eq!(detect_format(&[]), Format::Raw);
    let names: Vec<&str> = format_drivers().iter().map(|d| d.name()).collect();
    assert_eq!(names.last(), Some(&"raw"), "raw must be probed last");
    assert!(names.contains(&"qcow2"));
    for n in ["raw", "qcow2", "vdi", "vpc", "vmdk"] {
        let f: Format = n.parse().unwrap();
        assert_eq!(f.to_string(), n);
        assert_eq!(serde_json::to_value(f).unwrap(), n);
    }
    assert_eq!("vhd".parse::<Format>().unwrap(), Format::Vhd);
    assert!("qed".parse::<Format>().is_err());
}

#[test]
fn fuzz_entry_point_survives_qemu_images_and_their_mutations() {
    let t = tempfile::tempdir().unwrap();
    let p = qemu_image(t.path(), "f.qcow2");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(1 << 20);
    fuzz_qcow2(&bytes);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut m = bytes.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly header and first tables, where the structure lives.
            let i = (x as usize) % 0x50000;
            m[i] ^= (x >> 32) as u8 | 1;
        }
        fuzz_qcow2(&m);
    }
}

#[test]
fn parallel_readers_and_a_writer_on_a_compressed_overlay_see_what_qemu_sees() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let mut data = vec![0u8; 8 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (i, b) in data.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = if (i >> 20) % 3 == 2 { 0 } else { (x % 5) as u8 };
    }
    let raw = d.join("src.raw");
    std::fs::write(&raw, &data).unwrap();
    let base = d.join("base.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4k",
            s(&raw),
            s(&base),
        ],
    );
    let top = d.join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            s(&top),
        ],
    );
    run("qemu-io", &["-c", "write -P 0x77 1M 300k", s(&top)]);
    let img = open(&top, true).unwrap();
    let dev = img.dev();
    let want = {
        let out = d.join("want.raw");
        run("qemu-img", &["convert", "-O", "raw", s(&top), s(&out)]);
        std::fs::read(&out).unwrap()
    };
    std::thread::scope(|sc| {
        // The writer changes only the last MiB; readers check everything below it.
        let w = dev.clone();
        sc.spawn(move || {
            for i in 0..64u64 {
                w.write_at(&[i as u8; 5000], (7 << 20) + i * 9000).unwrap();
            }
        });
        for k in 0..4usize {
            let r = dev.clone();
            let want = &want;
            sc.spawn(move || {
                let chunk = 77_777 + k * 1000;
                let mut b = vec![0u8; chunk];
                let mut off = k * 1111;
                while off + chunk <= 7 << 20 {
                    r.read_at(&mut b, off as u64).unwrap();
                    assert!(b == want[off..off + chunk], "thread {k} at {off}");
                    off += chunk;
                }
            });
        }
    });
    drop(img);
    run("qemu-img", &["check", "-q", s(&top)]);
}
