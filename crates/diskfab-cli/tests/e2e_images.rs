//! convert / compare / check / map on raw and qcow2, checked against qemu-img.

mod common;
use common::*;
use std::process::Command;

fn code(args: &[&str]) -> i32 {
    diskfab(args).status.code().unwrap_or(-1)
}

fn qemu_code(args: &[&str]) -> i32 {
    Command::new("qemu-img")
        .args(args)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

#[test]
fn convert_between_raw_and_qcow2_is_byte_exact_per_qemu_img_and_sparse() {
    let fix = fixtures();
    let src = fix.join("debian-mbr.qcow2");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    ok(&["convert", src.to_str().unwrap(), &p("a.raw"), "-O", "raw"]);
    ok(&[
        "convert",
        &p("a.raw"),
        &p("b.qcow2"),
        "-O",
        "qcow2",
        "-o",
        "cluster_size=4K",
    ]);
    ok(&["convert", &p("b.qcow2"), &p("c.raw"), "-O", "raw"]);
    for out in ["a.raw", "b.qcow2", "c.raw"] {
        tool(
            "qemu-img",
            &["compare", "-q", src.to_str().unwrap(), &p(out)],
        );
    }
    tool("qemu-img", &["check", "-q", &p("b.qcow2")]);
    let alloc =
        |f: &str| std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p(f)).unwrap()) * 512;
    assert!(
        alloc("a.raw") < 400 << 20,
        "raw output is sparse: {}",
        alloc("a.raw")
    );
    // An existing output is never overwritten: the operation fails (5).
    assert_eq!(code(&["convert", &p("a.raw"), &p("b.qcow2")]), 5);
    // Overlay conversion: only what differs from the base is written.
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "b.qcow2",
            "-F",
            "qcow2",
            &p("ovl.qcow2"),
        ],
    );
    tool("qemu-io", &["-c", "write -P 0x5a 3M 128k", &p("ovl.qcow2")]);
    ok(&[
        "convert",
        &p("ovl.qcow2"),
        &p("ovl2.qcow2"),
        "-o",
        "backing=b.qcow2",
    ]);
    tool(
        "qemu-img",
        &["compare", "-q", &p("ovl.qcow2"), &p("ovl2.qcow2")],
    );
    assert!(std::fs::metadata(p("ovl2.qcow2")).unwrap().len() < 4 << 20);
}

#[test]
fn compare_agrees_with_qemu_img_compare() {
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    tool(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", &p("a.qcow2"), "16M"],
    );
    tool("qemu-io", &["-c", "write -P 1 1M 64k", &p("a.qcow2")]);
    tool(
        "qemu-img",
        &["convert", "-O", "raw", &p("a.qcow2"), &p("same.raw")],
    );
    tool(
        "qemu-img",
        &["convert", "-O", "raw", &p("a.qcow2"), &p("diff.raw")],
    );
    tool(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 2 5M 1", &p("diff.raw")],
    );
    tool(
        "qemu-img",
        &["create", "-q", "-f", "raw", &p("bigger.raw"), "32M"],
    );
    tool(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 1 1M 64k", &p("bigger.raw")],
    );
    for (b, want) in [("same.raw", 0), ("diff.raw", 1), ("bigger.raw", 0)] {
        assert_eq!(
            qemu_code(&["compare", "-q", &p("a.qcow2"), &p(b)]),
            want,
            "qemu-img on {b}"
        );
        assert_eq!(
            code(&["compare", &p("a.qcow2"), &p(b)]),
            want,
            "diskfab on {b}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&ok_any(&[
        "compare",
        "--json",
        &p("a.qcow2"),
        &p("diff.raw"),
    ]))
    .unwrap();
    assert_eq!(v["first_difference"], 5 << 20);
}

fn ok_any(args: &[&str]) -> String {
    String::from_utf8_lossy(&diskfab(args).stdout).into_owned()
}

#[test]
fn check_agrees_with_qemu_img_check_on_clean_leaking_and_corrupt_images() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    let make = |n: &str| {
        tool("qemu-img", &["create", "-q", "-f", "qcow2", &p(n), "64M"]);
        tool("qemu-io", &["-c", "write -P 1 0 1M", &p(n)]);
        p(n)
    };
    let clean = make("clean.qcow2");
    // Leak: raise the refcount of the header cluster (entry 0 of refcount block 0) to 2.
    let leak = make("leak.qcow2");
    let refblock = |f: &str| {
        let b = std::fs::read(f).unwrap();
        let rt = u64::from_be_bytes(b[48..56].try_into().unwrap()) as usize;
        u64::from_be_bytes(b[rt..rt + 8].try_into().unwrap())
    };
    let f = std::fs::OpenOptions::new().write(true).open(&leak).unwrap();
    f.write_all_at(&2u16.to_be_bytes(), refblock(&leak))
        .unwrap();
    // Corruption: drop the refcount of the header cluster to 0.
    let bad = make("bad.qcow2");
    let f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
    f.write_all_at(&0u16.to_be_bytes(), refblock(&bad)).unwrap();
    for img in [&clean, &leak, &bad] {
        let q = qemu_code(&["check", "-q", img]);
        let d = code(&["check", img]);
        assert_eq!(d, q, "{img}: qemu-img check {q}, diskfab check {d}");
    }
    assert_eq!(code(&["check", &clean]), 0);
    let v: serde_json::Value = serde_json::from_str(&ok_any(&["check", "--json", &leak])).unwrap();
    assert_eq!(v["leaks"], 1);
}

#[test]
fn map_names_the_layer_holding_each_range() {
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    tool(
        "qemu-img",
        &["create", "-q", "-f", "raw", &p("base.raw"), "4M"],
    );
    tool(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 1 0 1M", &p("base.raw")],
    );
    tool(
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
            &p("top.qcow2"),
        ],
    );
    tool(
        "qemu-io",
        &[
            "-c",
            "write -P 2 2M 64k",
            "-c",
            "write -z 0 64k",
            &p("top.qcow2"),
        ],
    );
    let v: serde_json::Value =
        // base.raw is a hand-made raw base (no diskfab trust mark): its directory is allowed.
        serde_json::from_str(&ok(&[
            "map",
            "--json",
            "--backing-dir",
            t.path().to_str().unwrap(),
            &p("top.qcow2"),
        ]))
        .unwrap();
    let ext: Vec<(u64, u64, String, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["start"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_string(),
                e["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ext[0], (0, 64 << 10, "zero".into(), 0), "{ext:?}");
    assert!(
        ext.contains(&(2 << 20, 64 << 10, "data".into(), 0)),
        "{ext:?}"
    );
    assert!(
        ext.iter()
            .any(|e| e.2 == "data" && e.3 == 1 && e.0 == 64 << 10),
        "{ext:?}"
    );
}

#[test]
fn every_pair_of_raw_qcow2_and_vdi_converts_byte_exactly_and_file_commands_work_on_vdi() {
    let fix = fixtures();
    let src = fix.join("debian-mbr.qcow2");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    let fmts = ["raw", "qcow2", "vdi"];
    for a in fmts {
        ok(&[
            "convert",
            src.to_str().unwrap(),
            &p(&format!("src.{a}")),
            "-O",
            a,
        ]);
        for b in fmts {
            let out = p(&format!("{a}-to.{b}"));
            ok(&["convert", &p(&format!("src.{a}")), &out, "-O", b]);
            tool("qemu-img", &["compare", "-q", src.to_str().unwrap(), &out]);
            if b != "raw" {
                tool("qemu-img", &["check", "-q", &out]);
            }
        }
    }
    let v = p("src.vdi");
    let note = t.path().join("note");
    std::fs::write(&note, "on vdi\n").unwrap();
    ok(&["copy-in", &v, note.to_str().unwrap(), "/etc"]);
    assert_eq!(ok(&["cat", &v, "/etc/note"]), "on vdi\n");
    tool("qemu-img", &["check", "-q", &v]);
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", &v])).unwrap();
    assert_eq!(info["image"]["format"], "vdi");
}

#[test]
fn compressed_qcow2_output_with_zlib_and_zstd_is_valid_and_exact() {
    let fix = fixtures();
    let src = fix.join("debian-mbr.qcow2");
    let t = tempfile::tempdir().unwrap();
    for (name, opt) in [
        ("zlib.qcow2", "compression_type=zlib"),
        ("zstd.qcow2", "compression_type=zstd"),
    ] {
        let out = t.path().join(name);
        let o = out.to_str().unwrap();
        ok(&["convert", "-c", "-o", opt, src.to_str().unwrap(), o]);
        tool("qemu-img", &["check", "-q", o]);
        tool("qemu-img", &["compare", "-q", src.to_str().unwrap(), o]);
        assert_eq!(code(&["check", o]), 0);
        let info = tool("qemu-img", &["info", o]);
        assert!(
            info.contains(&format!("compression type: {}", &opt[17..])),
            "{info}"
        );
        // Clearly smaller than the uncompressed data it holds (178 MiB).
        assert!(std::fs::metadata(&out).unwrap().len() < 120 << 20);
        // Writing into a compressed image replaces compressed clusters correctly.
        let note = t.path().join("n.txt");
        std::fs::write(&note, "after compression\n").unwrap();
        ok(&["copy-in", o, note.to_str().unwrap(), "/etc"]);
        tool("qemu-img", &["check", "-q", o]);
        assert_eq!(ok(&["cat", o, "/etc/n.txt"]), "after compression\n");
    }
}

#[test]
fn measure_predicts_our_convert_exactly_and_agrees_with_qemu_img_measure() {
    let fix = fixtures();
    let src = fix.join("debian-mbr.qcow2");
    let srcs = src.to_str().unwrap();
    let t = tempfile::tempdir().unwrap();
    for f in ["qcow2", "vdi", "raw"] {
        let m: serde_json::Value =
            serde_json::from_str(&ok(&["measure", "--json", srcs, "-O", f])).unwrap();
        let out = t.path().join(format!("o.{f}"));
        ok(&["convert", srcs, out.to_str().unwrap(), "-O", f]);
        assert_eq!(
            m["required"].as_u64().unwrap(),
            std::fs::metadata(&out).unwrap().len(),
            "{f}"
        );
        if f != "vdi" {
            let q = tool("qemu-img", &["measure", "--output=json", "-O", f, srcs]);
            let q: serde_json::Value = serde_json::from_str(&q).unwrap();
            let (ours, theirs) = (
                m["required"].as_f64().unwrap(),
                q["required"].as_f64().unwrap(),
            );
            assert!(
                (ours / theirs - 1.0).abs() < 0.01,
                "{f}: {ours} vs qemu-img {theirs}"
            );
            assert_eq!(m["fully_allocated"], q["fully-allocated"], "{f}");
        }
    }
}
