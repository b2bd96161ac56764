//! `diskfab compare` and `diskfab check` against `qemu-img compare` / `qemu-img check` on images
//! made by qemu-img and qemu-io: exit codes (compare: 0 identical, 1 different; check: 0 clean,
//! 2 corruptions, 3 leaks only — qemu-img(1)), the offset of the first difference, and the
//! corruption/leak counts where both tools count them (qcow2).

mod common;
use common::*;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

fn qemu(args: &[&str]) -> (i32, String) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), text)
}

fn ours(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = diskfab(&a);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

/// The offset `qemu-img compare` prints after "Content mismatch at offset ".
fn mismatch(text: &str) -> Option<u64> {
    let rest = text.split("Content mismatch at offset ").nth(1)?;
    rest.split('!').next()?.parse().ok()
}

fn raw_with_data(dir: &Path, name: &str, size: &str, writes: &[&str]) -> String {
    let p = dir.join(name).to_str().unwrap().to_string();
    tool("qemu-img", &["create", "-q", "-f", "raw", &p, size]);
    let mut a = vec!["-f", "raw"];
    writes.iter().for_each(|w| a.extend_from_slice(&["-c", w]));
    a.push(&p);
    tool("qemu-io", &a);
    p
}

fn qemu_convert(src: &str, fmt: &str, dst: &Path) -> String {
    let d = dst.to_str().unwrap().to_string();
    tool("qemu-img", &["convert", "-O", fmt, src, &d]);
    d
}

#[test]
fn compare_exit_codes_and_first_difference_match_qemu_img_across_formats() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let data = [
        "write -P 0x11 0 64k",
        "write -P 0x22 1M 100k",
        "write -P 0x33 3M 4k",
    ];
    let base = raw_with_data(dir, "base.raw", "4M", &data);
    let mut same = vec![base.clone()];
    for (fmt, ext) in [
        ("qcow2", "qcow2"),
        ("vdi", "vdi"),
        ("vpc", "vhd"),
        ("vhdx", "vhdx"),
        ("vmdk", "vmdk"),
    ] {
        same.push(qemu_convert(&base, fmt, &dir.join(format!("same.{ext}"))));
    }
    let mut one = data.to_vec();
    one.push("write -P 0x7f 1000005 1");
    let diff = raw_with_data(dir, "diff.raw", "4M", &one);
    let diff_q = qemu_convert(&diff, "qcow2", &dir.join("diff.qcow2"));
    let diff_x = qemu_convert(&diff, "vhdx", &dir.join("diff.vhdx"));
    let mut zero_tail = data.to_vec();
    zero_tail.push("write -z 4M 1M");
    let bigger_zero = raw_with_data(dir, "bigger-zero.raw", "5M", &zero_tail);
    let mut data_tail = data.to_vec();
    data_tail.push("write -P 0x44 4500001 3");
    let bigger_data = raw_with_data(dir, "bigger-data.raw", "5M", &data_tail);
    let bigger_data_q = qemu_convert(&bigger_data, "qcow2", &dir.join("bigger-data.qcow2"));

    let mut pairs: Vec<(String, String)> = Vec::new();
    for a in &same {
        for b in &same {
            pairs.push((a.clone(), b.clone()));
        }
        for b in [
            &diff,
            &diff_q,
            &diff_x,
            &bigger_zero,
            &bigger_data,
            &bigger_data_q,
        ] {
            pairs.push((a.clone(), b.clone()));
            pairs.push((b.clone(), a.clone()));
        }
    }
    let mut differing = 0;
    for (a, b) in &pairs {
        let (qc, qt) = qemu(&["compare", a, b]);
        let (dc, dj) = ours(&["compare", a, b]);
        assert_eq!(dc, qc, "compare {a} {b}: qemu-img says {qt}");
        let ours_at = dj["first_difference"].as_u64();
        assert_eq!(ours_at, mismatch(&qt), "first difference of {a} {b}: {qt}");
        differing += usize::from(qc == 1);
    }
    // Every pair with the one-byte difference or the data tail (5 images, both orders) differs.
    assert_eq!(differing, same.len() * 10);
    let (_, j) = ours(&["compare", &base, &diff_x]);
    assert_eq!(j["first_different_byte"], 1_000_005);
}

/// A small qcow2 made by qemu with data in two places; returns its bytes and
/// (cluster size, L1 offset, refcount block offset, L2 offset).
fn qcow2_base(dir: &Path) -> (Vec<u8>, [usize; 4]) {
    let p = dir.join("base.qcow2");
    let s = p.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", s, "4M"]);
    tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x11 0 64k",
            "-c",
            "write -P 0x22 1M 128k",
            s,
        ],
    );
    let b = std::fs::read(&p).unwrap();
    let be = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let cs = 1usize << u32::from_be_bytes(b[20..24].try_into().unwrap());
    let mask = 0x00ff_ffff_ffff_fe00usize;
    let (l1, rt) = (be(40), be(48));
    let (rb, l2) = (be(rt), be(l1) & mask);
    (b, [cs, l1, rb, l2])
}

/// Byte patches: (file offset, bytes).
type Edits = Vec<(usize, Vec<u8>)>;

fn patched(dir: &Path, name: &str, base: &[u8], grow: usize, edits: &[(usize, Vec<u8>)]) -> String {
    let p = dir.join(name);
    let mut b = base.to_vec();
    b.resize(b.len() + grow, 0);
    std::fs::write(&p, &b).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    for (o, bytes) in edits {
        f.write_all_at(bytes, *o as u64).unwrap();
    }
    p.to_str().unwrap().to_string()
}

fn qemu_counts(img: &str) -> (i32, u64, u64) {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", img])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    (o.status.code().unwrap_or(-1), n("corruptions"), n("leaks"))
}

#[test]
fn check_exit_codes_and_counts_match_qemu_img_on_corrupted_qcow2() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (b, [cs, l1, rb, l2]) = qcow2_base(dir);
    let be = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
    let beyond = ((1u64 << 63) | (b.len() as u64 * 4)).to_be_bytes().to_vec();
    let data0 = (be(l2) & 0x00ff_ffff_ffff_fe00) as usize;
    let used_after = b.len() / cs;
    let cases: Vec<(&str, usize, Edits)> = vec![
        ("clean.qcow2", 0, vec![]),
        ("l2-beyond-eof.qcow2", 0, vec![(l2, beyond.clone())]),
        ("l1-beyond-eof.qcow2", 0, vec![(l1, beyond)]),
        (
            "used-cluster-refcount-zeroed.qcow2",
            0,
            vec![(rb + 2 * (data0 / cs), vec![0, 0])],
        ),
        // Guest 1 MiB's L2 entry points at guest 0's cluster: two references, refcount 1.
        (
            "overlapping-clusters.qcow2",
            0,
            vec![(l2 + 8 * 16, be(l2).to_be_bytes().to_vec())],
        ),
        ("refcounts-cleared.qcow2", 0, vec![(rb, vec![0; cs])]),
        (
            "unused-cluster-refcounted.qcow2",
            cs,
            vec![(rb + 2 * used_after, 1u16.to_be_bytes().to_vec())],
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, grow, edits) in cases {
        let img = patched(dir, name, &b, grow, &edits);
        let (qc, qcorrupt, qleak) = qemu_counts(&img);
        let (dc, dj) = ours(&["check", &img]);
        assert_eq!(dc, qc, "{name}: exit code");
        assert_eq!(
            (dj["corruptions"].as_u64(), dj["leaks"].as_u64()),
            (Some(qcorrupt), Some(qleak)),
            "{name}: corruptions/leaks"
        );
        seen.insert(qc);
    }
    // Clean, corrupt and leaking images were all among the cases.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 2, 3]);
}

#[test]
fn check_exit_codes_match_qemu_img_on_corrupted_vdi_and_vhdx_tables() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let vdi = dir.join("v.vdi");
    let v = vdi.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "vdi", v, "8M"]);
    tool(
        "qemu-io",
        &[
            "-f",
            "vdi",
            "-c",
            "write -P 0x11 0 64k",
            "-c",
            "write -P 0x22 3M 64k",
            v,
        ],
    );
    let vb = std::fs::read(&vdi).unwrap();
    let bmap = u32::from_le_bytes(vb[0x154..0x158].try_into().unwrap()) as usize;
    let vhdx = dir.join("x.vhdx");
    let x = vhdx.to_str().unwrap();
    tool(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "-o", "block_size=1M", x, "8M"],
    );
    tool("qemu-io", &["-f", "vhdx", "-c", "write -P 0x11 0 64k", x]);
    let xb = std::fs::read(&vhdx).unwrap();
    let bat = 2 << 20; // qemu's layout: the BAT region at 2 MiB
    assert_eq!(
        xb[bat] & 7,
        6,
        "BAT entry 0 of qemu's image is fully present"
    );
    let far = ((xb.len() as u64 * 4) | 6).to_le_bytes().to_vec();
    let cases = [
        patched(dir, "clean.vdi", &vb, 0, &[]),
        patched(
            dir,
            "vdi-index-too-large.vdi",
            &vb,
            0,
            &[(bmap, 1000u32.to_le_bytes().to_vec())],
        ),
        // Block 3 (holding guest 3 MiB) now claims block 0's data block too.
        patched(
            dir,
            "vdi-block-twice.vdi",
            &vb,
            0,
            &[(bmap + 12, 0u32.to_le_bytes().to_vec())],
        ),
        patched(dir, "clean.vhdx", &xb, 0, &[]),
        patched(dir, "vhdx-bat-beyond-eof.vhdx", &xb, 0, &[(bat, far)]),
    ];
    for img in &cases {
        let (qc, _, _) = qemu_counts(img);
        let (dc, _) = ours(&["check", img]);
        assert_eq!(dc, qc, "{img}: exit code");
        assert_eq!(qc, if img.contains("clean") { 0 } else { 2 }, "{img}");
    }
}

/// Where `qemu-img check` (10.0) does not look, diskfab is stricter on purpose, because it
/// validates every table entry before trusting it: two VHDX blocks sharing one data block
/// (qemu: 0), a VMDK grain directory entry past the end of the file (qemu: 0) and a grain table
/// entry past it (qemu prints an ERROR but exits 1, "check failed") are corruptions, exit 2.
#[test]
fn check_reports_corruption_where_qemu_img_check_does_not_look() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let vhdx = dir.join("x.vhdx");
    let x = vhdx.to_str().unwrap();
    tool(
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "-o", "block_size=1M", x, "8M"],
    );
    tool(
        "qemu-io",
        &[
            "-f",
            "vhdx",
            "-c",
            "write -P 0x11 0 64k",
            "-c",
            "write -P 0x22 3M 64k",
            x,
        ],
    );
    let xb = std::fs::read(&vhdx).unwrap();
    let bat = 2 << 20;
    let vmdk = dir.join("k.vmdk");
    let k = vmdk.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "vmdk", k, "8M"]);
    tool("qemu-io", &["-f", "vmdk", "-c", "write -P 0x11 0 64k", k]);
    let kb = std::fs::read(&vmdk).unwrap();
    let gd = u64::from_le_bytes(kb[56..64].try_into().unwrap()) as usize * 512;
    let gt = u32::from_le_bytes(kb[gd..gd + 4].try_into().unwrap()) as usize * 512;
    let far = (kb.len() as u32 / 512 * 4).to_le_bytes().to_vec();
    let cases = [
        patched(
            dir,
            "vhdx-blocks-overlap.vhdx",
            &xb,
            0,
            &[(bat + 24, xb[bat..bat + 8].to_vec())],
        ),
        patched(dir, "vmdk-gd-beyond-eof.vmdk", &kb, 0, &[(gd, far.clone())]),
        patched(dir, "vmdk-gt-beyond-eof.vmdk", &kb, 0, &[(gt, far)]),
    ];
    for img in &cases {
        let (dc, dj) = ours(&["check", img]);
        assert_eq!((dc, dj["corruptions"].as_u64()), (2, Some(1)), "{img}");
    }
    assert_eq!(ours(&["check", x]).0, 0);
    assert_eq!(ours(&["check", k]).0, 0);
}
