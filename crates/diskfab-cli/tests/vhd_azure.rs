//! VHD `-o force_size=on` and `-o azure=on` checked against qemu: the sizes `qemu-img info`
//! reports, the contents `qemu-img compare` sees, and agreement with qemu's own `force_size`.
//! (`qemu-img check` has no checker for vpc, so compare is the oracle for contents.)

mod common;
use common::*;
use std::path::Path;

/// A raw source of 9999872 bytes (19531 sectors: neither whole MiB nor a CHS product) with data
/// written by qemu-io at the start, the middle and the last sector.
fn source(dir: &Path) -> String {
    let p = dir.join("src.raw").to_str().unwrap().to_string();
    tool("qemu-img", &["create", "-q", "-f", "raw", &p, "9999872"]);
    tool(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x41 0 64k",
            "-c",
            "write -P 0x42 5000192 4096",
            "-c",
            "write -P 0x43 9999360 512",
            &p,
        ],
    );
    p
}

fn qemu_size(img: &str) -> u64 {
    let j: serde_json::Value = serde_json::from_str(&tool(
        "qemu-img",
        &["info", "--output=json", "-f", "vpc", img],
    ))
    .unwrap();
    j["virtual-size"].as_u64().unwrap()
}

fn compare_code(a: &str, b: &str) -> i32 {
    std::process::Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vpc", a, b])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

#[test]
fn azure_vhd_is_fixed_rounded_up_to_a_whole_mib_and_equals_its_source_per_qemu() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let out = t.path().join("az.vhd");
    let o = out.to_str().unwrap();
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "--json", "convert", &src, o, "-O", "vpc", "-o", "azure=on",
    ]))
    .unwrap();
    assert_eq!(j["virtual_size"], 9999872);
    assert_eq!(j["output_size"], 10 << 20);
    assert_eq!(qemu_size(o), 10 << 20);
    // Fixed: the data, then the 512-byte footer with disk type 2 and the exact current size.
    let b = std::fs::read(&out).unwrap();
    assert_eq!(b.len() as u64, (10 << 20) + 512);
    let f = &b[10 << 20..];
    assert_eq!(&f[..8], b"conectix");
    assert_eq!(u32::from_be_bytes(f[60..64].try_into().unwrap()), 2);
    assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), 10 << 20);
    assert_eq!(compare_code(&src, o), 0, "qemu-img compare");
    assert!(b[9999872..10 << 20].iter().all(|&x| x == 0), "padding");
    // create: the rounding is reported.
    let c = t.path().join("new.vhd");
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "create",
        "-f",
        "vpc",
        "-o",
        "azure=on",
        c.to_str().unwrap(),
        "3000000",
    ]))
    .unwrap();
    assert_eq!(
        (j["virtual_size"].as_u64(), j["rounded_up_from"].as_u64()),
        (Some(3 << 20), Some(3_000_000))
    );
    assert_eq!(qemu_size(c.to_str().unwrap()), 3 << 20);
}

#[test]
fn force_size_keeps_the_exact_size_and_agrees_with_qemus_force_size() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    for sub in ["dynamic", "fixed"] {
        let ours = t.path().join(format!("ours-{sub}.vhd"));
        let theirs = t.path().join(format!("qemu-{sub}.vhd"));
        let (o, q) = (ours.to_str().unwrap(), theirs.to_str().unwrap());
        ok(&[
            "convert",
            &src,
            o,
            "-O",
            "vpc",
            "-o",
            &format!("subformat={sub},force_size=on"),
        ]);
        tool(
            "qemu-img",
            &[
                "convert",
                "-O",
                "vpc",
                "-o",
                &format!("subformat={sub},force_size=on"),
                &src,
                q,
            ],
        );
        assert_eq!(qemu_size(o), 9999872, "{sub}");
        assert_eq!(qemu_size(q), qemu_size(o), "{sub}: qemu's force_size");
        assert_eq!(compare_code(&src, o), 0, "{sub}");
        tool("qemu-img", &["compare", "-f", "vpc", "-F", "vpc", o, q]);
    }
}

#[test]
fn azure_and_force_size_are_refused_outside_vhd_and_azure_needs_fixed() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    for (fmt, opt) in [("qcow2", "azure=on"), ("vhdx", "force_size=on")] {
        let out = t.path().join(format!("x.{fmt}"));
        let o = diskfab(&["convert", &src, out.to_str().unwrap(), "-O", fmt, "-o", opt]);
        assert_eq!(o.status.code(), Some(2), "{fmt} {opt}");
        assert!(!out.exists());
    }
    let out = t.path().join("d.vhd");
    let o = diskfab(&[
        "convert",
        &src,
        out.to_str().unwrap(),
        "-O",
        "vpc",
        "-o",
        "subformat=dynamic,azure=on",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fixed"));
    assert!(!out.exists());
}
