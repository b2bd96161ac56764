//! Hostile and broken images: a clear error, exit code 3 (6 for a backing chain the policy
//! refuses), no panic, nothing written.

mod common;
use common::*;
use std::fs;

fn assert_refused(img: &std::path::Path, what: &str) {
    assert_refused_with(img, what, 3)
}

/// Refused with `code`: 3 for a bad image, 6 for the backing-file policy (loops).
fn assert_refused_with(img: &std::path::Path, what: &str, code: i32) {
    let before = sha(img);
    for args in [
        vec!["info", img.to_str().unwrap()],
        vec!["ls", img.to_str().unwrap(), "/"],
        vec!["mkdir", img.to_str().unwrap(), "/x"],
    ] {
        let o = diskfab(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{what}: {args:?} → {err}");
        assert!(!err.contains("panicked"), "{what}: panic: {err}");
        assert!(
            err.contains(img.file_name().unwrap().to_str().unwrap()) || err.contains("bad image"),
            "{what}: error names nothing: {err}"
        );
    }
    assert_eq!(sha(img), before, "{what}: image was modified");
}

fn qcow2(dir: &std::path::Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let p = dir.join(name);
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend_from_slice(extra);
    args.push(p.to_str().unwrap());
    args.push("64M");
    tool("qemu-img", &args);
    p
}

#[test]
fn truncated_qcow2_is_refused_with_exit_3() {
    let t = tempfile::tempdir().unwrap();
    let p = qcow2(t.path(), "t.qcow2", &[]);
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(100).unwrap();
    assert_refused(&p, "truncated");
}

#[test]
fn l1_table_pointing_past_the_end_of_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = qcow2(t.path(), "l1.qcow2", &[]);
    tool(
        "qemu-io",
        &["-c", "write -P 0xab 0 64k", p.to_str().unwrap()],
    );
    let mut b = fs::read(&p).unwrap();
    let l1 = u64::from_be_bytes(b[40..48].try_into().unwrap()) as usize;
    b[l1..l1 + 8].copy_from_slice(&(0x8000_0000_0000_0000u64 | (1u64 << 40)).to_be_bytes());
    fs::write(&p, &b).unwrap();
    let o = diskfab(&["cat", p.to_str().unwrap(), "/x"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn absurd_virtual_size_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = qcow2(t.path(), "big.qcow2", &[]);
    let mut b = fs::read(&p).unwrap();
    b[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    fs::write(&p, &b).unwrap();
    assert_refused(&p, "absurd size");
}

#[test]
fn backing_chain_loop_and_missing_backing_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.qcow2");
    let b = t.path().join("b.qcow2");
    let base = qcow2(t.path(), "base.qcow2", &[]);
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "qcow2",
            a.to_str().unwrap(),
        ],
    );
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            a.to_str().unwrap(),
            "-F",
            "qcow2",
            b.to_str().unwrap(),
        ],
    );
    // Point a at b: a -> b -> a.
    tool(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-b",
            b.to_str().unwrap(),
            "-F",
            "qcow2",
            a.to_str().unwrap(),
        ],
    );
    assert_refused_with(&b, "loop", 6);
    let c = t.path().join("c.qcow2");
    let gone = qcow2(t.path(), "gone.qcow2", &[]);
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            gone.to_str().unwrap(),
            "-F",
            "qcow2",
            c.to_str().unwrap(),
        ],
    );
    fs::remove_file(&gone).unwrap();
    assert_refused(&c, "missing backing");
}

#[test]
fn corrupt_gpt_crc_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.raw");
    fs::File::create(&p).unwrap().set_len(64 << 20).unwrap();
    tool(
        "sgdisk",
        &["-n", "1:2048:0", "-t", "1:8300", p.to_str().unwrap()],
    );
    let mut b = fs::read(&p).unwrap();
    b[512 + 16] ^= 0xff; // primary header CRC
    let last = b.len() - 512;
    b[last + 16] ^= 0xff; // backup header CRC
    fs::write(&p, &b).unwrap();
    assert_refused(&p, "gpt crc");
}

#[test]
fn garbage_ext_superblock_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("e.raw");
    fs::File::create(&p).unwrap().set_len(32 << 20).unwrap();
    tool("mke2fs", &["-q", "-t", "ext4", p.to_str().unwrap()]);
    let mut b = fs::read(&p).unwrap();
    for x in &mut b[1024 + 4..1024 + 56] {
        *x = 0xff; // counts and sizes, magic kept
    }
    fs::write(&p, &b).unwrap();
    assert_refused(&p, "ext superblock");
}
