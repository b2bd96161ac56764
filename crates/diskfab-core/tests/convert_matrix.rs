//! Every source format to every target format through our `convert`, checked by
//! `qemu-img compare` against the source: raw, qcow2, qcow2 with compressed clusters, VDI, VHD
//! (dynamic; fixed as a target), VMDK (monolithicSparse; streamOptimized as a target), VHDX
//! (dynamic; fixed as a target). Sources are 64 MiB images made by qemu-img and written by
//! qemu-io at scattered, unaligned offsets. Every output is also converted back to the source's
//! format (A -> B -> A), which must compare identical to the source.

use diskfab_core::image::Format;
use diskfab_core::ops::images::{convert, ConvertOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const SIZE: u64 = 64 << 20;

/// qemu-io commands: 48 patterned writes of 512 B to 1.5 MiB at unaligned offsets, and one
/// zeroing write over part of them.
fn writes() -> Vec<String> {
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v = Vec::new();
    for i in 0..48u64 {
        let len = 512 + next() % (3 << 19);
        let off = next() % (SIZE - len);
        v.push(format!(
            "write -P {:#x} {off} {len}",
            (i * 37 + 1) % 255 + 1
        ));
    }
    v.push("write -z 20M 3M".into());
    v
}

/// A source image of `name`: (path, qemu-img `-f` name).
fn source(dir: &Path, name: &str, raw: &Path) -> (PathBuf, &'static str) {
    let (fmt, ext) = match name {
        "raw" => ("raw", "raw"),
        "qcow2" | "qcow2c" => ("qcow2", "qcow2"),
        "vdi" => ("vdi", "vdi"),
        "vpc" => ("vpc", "vhd"),
        "vmdk" => ("vmdk", "vmdk"),
        "vhdx" => ("vhdx", "vhdx"),
        other => panic!("{other}"),
    };
    let p = dir.join(format!("src-{name}.{ext}"));
    if name == "qcow2c" {
        run(
            "qemu-img",
            &["convert", "-c", "-f", "raw", "-O", "qcow2", s(raw), s(&p)],
        );
        return (p, fmt);
    }
    run(
        "qemu-img",
        &["create", "-q", "-f", fmt, s(&p), &SIZE.to_string()],
    );
    let mut args = vec!["-f".to_string(), fmt.to_string()];
    for w in writes() {
        args.push("-c".into());
        args.push(w);
    }
    args.push(s(&p).to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run("qemu-io", &a);
    (p, fmt)
}

#[test]
fn every_format_converts_to_every_format_and_back_and_qemu_img_compare_agrees() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("data.raw");
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", s(&raw), &SIZE.to_string()],
    );
    let mut args = vec!["-f".to_string(), "raw".to_string()];
    for w in writes() {
        args.push("-c".into());
        args.push(w);
    }
    args.push(s(&raw).to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run("qemu-io", &a);

    let targets: [(&str, &str, ConvertOptions); 10] = [
        ("raw", "raw", opts(Format::Raw)),
        ("qcow2", "qcow2", opts(Format::Qcow2)),
        (
            "qcow2c",
            "qcow2",
            ConvertOptions {
                compress: true,
                ..opts(Format::Qcow2)
            },
        ),
        ("vdi", "vdi", opts(Format::Vdi)),
        ("vpc", "vpc", opts(Format::Vhd)),
        (
            "vpcfixed",
            "vpc",
            ConvertOptions {
                fixed: true,
                ..opts(Format::Vhd)
            },
        ),
        ("vmdk", "vmdk", opts(Format::Vmdk)),
        (
            "vmdkstream",
            "vmdk",
            ConvertOptions {
                stream_optimized: true,
                ..opts(Format::Vmdk)
            },
        ),
        ("vhdx", "vhdx", opts(Format::Vhdx)),
        (
            "vhdxfixed",
            "vhdx",
            ConvertOptions {
                fixed: true,
                cluster_size: Some(1 << 20),
                ..opts(Format::Vhdx)
            },
        ),
    ];
    for src_name in ["raw", "qcow2", "qcow2c", "vdi", "vpc", "vmdk", "vhdx"] {
        let (src, sfmt) = source(t.path(), src_name, &raw);
        // Every source holds the same guest data as the raw file.
        run(
            "qemu-img",
            &["compare", "-q", "-f", sfmt, "-F", "raw", s(&src), s(&raw)],
        );
        for (tname, tfmt, o) in &targets {
            let out = t.path().join(format!("{src_name}-to-{tname}"));
            let rep = convert(&src, &out, o, &|_| {})
                .unwrap_or_else(|e| panic!("{src_name} -> {tname}: {e}"));
            assert!(rep.written > 0);
            let o = Command::new("qemu-img")
                .args(["compare", "-f", sfmt, "-F", tfmt, s(&src), s(&out)])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{src_name} -> {tname}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if matches!(*tfmt, "qcow2" | "vdi" | "vmdk" | "vhdx") {
                run("qemu-img", &["check", "-q", "-f", tfmt, s(&out)]);
            }
            // Round trip: back to the source's format, identical to the source.
            let back = t.path().join(format!("{src_name}-to-{tname}-back"));
            convert(&out, &back, &back_opts(src_name), &|_| {})
                .unwrap_or_else(|e| panic!("{src_name} -> {tname} -> {src_name}: {e}"));
            run(
                "qemu-img",
                &["compare", "-q", "-f", sfmt, "-F", sfmt, s(&src), s(&back)],
            );
            std::fs::remove_file(&back).unwrap();
            std::fs::remove_file(&out).unwrap();
        }
        std::fs::remove_file(&src).unwrap();
    }
}

/// Options converting back into the format of source `name`.
fn back_opts(name: &str) -> ConvertOptions {
    match name {
        "raw" => opts(Format::Raw),
        "qcow2" => opts(Format::Qcow2),
        "qcow2c" => ConvertOptions {
            compress: true,
            ..opts(Format::Qcow2)
        },
        "vdi" => opts(Format::Vdi),
        "vpc" => opts(Format::Vhd),
        "vmdk" => opts(Format::Vmdk),
        "vhdx" => opts(Format::Vhdx),
        other => panic!("{other}"),
    }
}

fn opts(format: Format) -> ConvertOptions {
    ConvertOptions {
        format,
        ..Default::default()
    }
}
