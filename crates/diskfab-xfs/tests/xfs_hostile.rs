//! Hostile XFS images, made by corrupting a copy of the v5 fixture with `xfs_db -x` (which
//! re-seals CRCs, so the structural checks behind them are what is tested) or by hand (which
//! tests the CRC checks): every case is a clear `bad image` error on the affected file, never a
//! panic, a hang or an unbounded allocation; the rest of the filesystem stays readable.

use diskfab_fs::{path, Filesystem, FsDriver};
use diskfab_storage::{Error, FileDev};
use diskfab_xfs::XfsDriver;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn fixture() -> PathBuf {
    let dir = std::env::var_os("DISKFAB_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/diskfab-fixtures")
        });
    let f = dir.join("xfs-v5.raw");
    assert!(f.exists(), "{f:?} missing: run bash scripts/fixtures.sh");
    f
}

fn copy(t: &Path) -> PathBuf {
    let img = t.join("h.raw");
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(fixture())
        .arg(&img)
        .status()
        .unwrap();
    assert!(st.success());
    img
}

fn xfs_db(img: &Path, cmds: &[&str]) -> String {
    let mut c = Command::new("xfs_db");
    c.arg("-x");
    for x in cmds {
        c.args(["-c", x]);
    }
    let o = c.arg(img).output().expect("xfs_db (xfsprogs)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn open(img: &Path) -> Box<dyn Filesystem> {
    XfsDriver
        .open(Arc::new(FileDev::open(img, false).unwrap()), false)
        .unwrap()
}

/// Reads the whole file at `p`; returns the first error.
fn read_err(fs: &mut dyn Filesystem, p: &str) -> Error {
    let ino = path::resolve(fs, p.as_bytes(), false).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    loop {
        match fs.read(ino, off, &mut buf) {
            Ok(0) => panic!("{p}: read to the end without an error"),
            Ok(n) => off += n as u64,
            Err(e) => return e,
        }
    }
}

fn assert_bad(e: Error, words: &str) {
    let m = e.to_string();
    assert!(matches!(e, Error::BadImage(_)), "{m}");
    assert!(m.contains(words), "{m}");
}

fn still_readable(fs: &mut dyn Filesystem) {
    let ino = path::resolve(fs, b"/etc/os-release", true).unwrap();
    let mut b = [0u8; 64];
    assert!(fs.read(ino, 0, &mut b).unwrap() > 0);
}

#[test]
fn a_btree_node_pointing_twice_at_one_leaf_is_a_loop_error() {
    let t = tempfile::tempdir().unwrap();
    let img = copy(t.path());
    let out = xfs_db(
        &img,
        &["path /xfstest/extents", "addr u3.bmbt.ptrs[1]", "p ptrs[1]"],
    );
    let leaf = out.trim().rsplit(' ').next().unwrap().to_string();
    xfs_db(
        &img,
        &[
            "path /xfstest/extents",
            "addr u3.bmbt.ptrs[1]",
            &format!("write ptrs[2] {leaf}"),
        ],
    );
    let mut fs = open(&img);
    assert_bad(read_err(fs.as_mut(), "/xfstest/extents"), "twice");
    still_readable(fs.as_mut());
}

#[test]
fn an_absurd_extent_count_is_refused_before_any_allocation() {
    let t = tempfile::tempdir().unwrap();
    let img = copy(t.path());
    xfs_db(
        &img,
        &["path /xfstest/frag-a", "write core.nextents 4000000000"],
    );
    xfs_db(&img, &["path /xfstest/extents", "write core.nextents 3"]);
    let mut fs = open(&img);
    assert_bad(
        read_err(fs.as_mut(), "/xfstest/frag-a"),
        "extents do not fit",
    );
    assert_bad(
        read_err(fs.as_mut(), "/xfstest/extents"),
        "more extents than the inode",
    );
    still_readable(fs.as_mut());
}

#[test]
fn a_flipped_byte_in_a_btree_leaf_or_a_directory_block_fails_its_checksum() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let img = copy(t.path());
    let off = |cmds: &[&str]| -> u64 {
        let mut c: Vec<&str> = cmds.to_vec();
        c.push("stack");
        let out = xfs_db(&img, &c);
        let s = out.split("byte offset ").nth(1).unwrap();
        s.split(',').next().unwrap().parse().unwrap()
    };
    let node = off(&[
        "path /xfstest/extents",
        "addr u3.bmbt.ptrs[1]",
        "addr ptrs[1]",
    ]);
    let dir = off(&["path /xfstest/node", "dblock 3"]);
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0x5a], node + 200).unwrap();
    f.write_all_at(&[0x5a], dir + 300).unwrap();
    drop(f);
    let mut fs = open(&img);
    assert_bad(
        read_err(fs.as_mut(), "/xfstest/extents"),
        "checksum mismatch",
    );
    let d = path::resolve(fs.as_mut(), b"/xfstest/node", false).unwrap();
    assert_bad(fs.read_dir(d).unwrap_err(), "checksum mismatch");
    still_readable(fs.as_mut());
}
