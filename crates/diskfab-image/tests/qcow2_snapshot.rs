//! qcow2 images with internal snapshots, checked against QEMU: the current state reads like
//! `qemu-img convert`, the snapshot table lists what `qemu-img snapshot -l` lists, writable
//! opens are refused, `check` agrees with `qemu-img check`, and hostile tables are refused.

use diskfab_image::{check, BackingGate, Image, OpenOptions};
use diskfab_storage::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{run, s};

fn open(p: &Path, writable: bool) -> diskfab_storage::Result<Image> {
    Image::open(
        p,
        &OpenOptions {
            writable,
            gate: BackingGate::default(),
        },
    )
}

/// An image with two snapshots and writes after each (`opts`: qemu-img create options).
fn snapshotted(dir: &Path, name: &str, opts: &str) -> PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-o", opts, s(&p), "8M"],
    );
    run(
        "qemu-io",
        &["-c", "write -P 1 0 1M", "-c", "write -c -P 9 2M 64k", s(&p)],
    );
    run("qemu-img", &["snapshot", "-c", "before", s(&p)]);
    run(
        "qemu-io",
        &["-c", "write -P 2 512k 1M", "-c", "write -z 2M 64k", s(&p)],
    );
    run("qemu-img", &["snapshot", "-c", "after upgrade", s(&p)]);
    run("qemu-io", &["-c", "write -P 3 100k 8k", s(&p)]);
    p
}

fn qemu_check(img: &Path) -> (i32, u64, u64) {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", s(img)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    (o.status.code().unwrap(), n("corruptions"), n("leaks"))
}

fn assert_check_agrees(img: &Path) {
    let r = check(img).unwrap();
    assert_eq!(
        (r.exit_code(), r.corruptions, r.leaks),
        qemu_check(img),
        "{}: {:?}",
        img.display(),
        r.messages
    );
}

#[test]
fn snapshotted_images_read_their_current_state_list_their_snapshots_and_check_like_qemu() {
    let t = tempfile::tempdir().unwrap();
    for (i, opts) in [
        "cluster_size=65536",
        "extended_l2=on,cluster_size=32k",
        "compat=0.10",
    ]
    .into_iter()
    .enumerate()
    {
        let p = snapshotted(t.path(), &format!("s{i}.qcow2"), opts);
        let raw = t.path().join("cur.raw");
        run("qemu-img", &["convert", "-O", "raw", s(&p), s(&raw)]);
        let img = open(&p, false).unwrap();
        let mut got = vec![0u8; 8 << 20];
        img.dev().read_at(&mut got, 0).unwrap();
        assert!(got == std::fs::read(&raw).unwrap(), "{opts}");
        let info = img.info().unwrap();
        let list = &info.format_specific.unwrap()["snapshot_list"];
        let q: serde_json::Value =
            serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(&p)])).unwrap();
        let qs = q["snapshots"].as_array().unwrap();
        assert_eq!(list.as_array().unwrap().len(), qs.len());
        for (a, b) in list.as_array().unwrap().iter().zip(qs) {
            assert_eq!(a["id"], b["id"]);
            assert_eq!(a["name"], b["name"]);
            assert_eq!(a["date_sec"], b["date-sec"]);
            assert_eq!(a["vm_state_size"], b["vm-state-size"]);
        }
        assert_check_agrees(&p);
        let e = open(&p, true).expect_err("writable open of a snapshotted image");
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("snapshots"), "{e}");
        std::fs::remove_file(&raw).unwrap();
    }
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

fn be64_at(p: &Path, off: u64) -> u64 {
    let b = std::fs::read(p).unwrap();
    u64::from_be_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
}

#[test]
fn check_finds_the_leaks_and_corruptions_qemu_finds_in_snapshotted_images() {
    let t = tempfile::tempdir().unwrap();
    // Clearing the first snapshot's L1 table entry loses references: the clusters only it
    // referenced leak, the shared ones keep a too high refcount: qemu calls both leaks.
    let p = snapshotted(t.path(), "leak.qcow2", "cluster_size=65536");
    let snap = be64_at(&p, 64);
    let l1 = be64_at(&p, snap);
    patch(&p, l1, &0u64.to_be_bytes());
    assert_check_agrees(&p);
    assert!(check(&p).unwrap().leaks > 0);
    // Pointing the active L1 at the snapshot's L2 table without COPIED being wrong: a
    // reference above the refcount is corruption.
    let p = snapshotted(t.path(), "corrupt.qcow2", "cluster_size=65536");
    let l1_active = be64_at(&p, 40);
    let snap = be64_at(&p, 64);
    let snap_l2 = be64_at(&p, be64_at(&p, snap));
    patch(&p, l1_active, &(snap_l2 | (1 << 63)).to_be_bytes());
    assert_check_agrees(&p);
    assert!(check(&p).unwrap().corruptions > 0);
}

#[test]
fn hostile_snapshot_tables_are_refused_with_exit_code_3() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, u64, Vec<u8>); 4] = [
        (
            "table beyond the end of the file",
            64,
            (1u64 << 40).to_be_bytes().to_vec(),
        ),
        ("unaligned table", 64, 0x10001u64.to_be_bytes().to_vec()),
        ("absurd count", 60, u32::MAX.to_be_bytes().to_vec()),
        (
            "more entries than the table holds",
            60,
            60000u32.to_be_bytes().to_vec(),
        ),
    ];
    for (what, off, bytes) in cases {
        let p = snapshotted(t.path(), "h.qcow2", "cluster_size=65536");
        patch(&p, off, &bytes);
        let before = std::fs::read(&p).unwrap();
        let e = open(&p, false).expect_err(what);
        assert_eq!(e.exit_code(), 3, "{what}: {e}");
        assert_eq!(check(&p).expect_err(what).exit_code(), 3, "{what}");
        assert!(before == std::fs::read(&p).unwrap(), "{what}: modified");
        std::fs::remove_file(&p).unwrap();
    }
}
