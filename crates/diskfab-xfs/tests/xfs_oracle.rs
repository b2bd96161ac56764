//! The XFS reader checked against the Linux kernel: the v5 fixture (Debian minbase plus every
//! directory, fork and attribute format, scripts/fixture_xfs.sh) walked through our driver and
//! through a read-only loop mount must agree on every name, type, mode, owner, size, link
//! count, time, device number, link target, xattr and byte of content. The v4 fixture (which
//! this kernel refuses to mount) is compared with the tree mkfs.xfs -p copied in.

use diskfab_fs::{FileType, Filesystem, FsDriver, Ino};
use diskfab_storage::{DevRef, Error, FileDev};
use diskfab_xfs::XfsDriver;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("DISKFAB_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/diskfab-fixtures")
        });
    for f in ["xfs-v5.raw", "xfs-v4.raw"] {
        assert!(
            dir.join(f).exists(),
            "{f} missing: run bash scripts/fixtures.sh"
        );
    }
    dir
}

fn dev(p: &Path) -> DevRef {
    Arc::new(FileDev::open(p, false).unwrap())
}

struct Mount(PathBuf);

impl Mount {
    fn new(img: &Path, at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-o", "loop,ro"])
            .arg(img)
            .arg(at)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 1 << 16];
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {p:?}");
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 1 << 16];
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0, "lgetxattr {p:?} {name:?}");
        v.truncate(m as usize);
        out.push((name.to_vec(), v));
    }
    out.sort();
    out
}

fn kind(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    match () {
        _ if t.is_symlink() => FileType::Symlink,
        _ if t.is_dir() => FileType::Directory,
        _ if t.is_file() => FileType::Regular,
        _ if t.is_char_device() => FileType::CharDevice,
        _ if t.is_block_device() => FileType::BlockDevice,
        _ if t.is_fifo() => FileType::Fifo,
        _ => FileType::Socket,
    }
}

fn same_contents(fs: &mut dyn Filesystem, ino: Ino, p: &Path, size: u64) {
    use std::io::Read;
    let mut f = std::fs::File::open(p).unwrap();
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(a.len() as u64) as usize;
        f.read_exact(&mut a[..n]).unwrap();
        let mut got = 0;
        while got < n {
            let r = fs.read(ino, off + got as u64, &mut b[got..n]).unwrap();
            assert!(r > 0, "{p:?}: short read at {off}");
            got += r;
        }
        assert!(
            a[..n] == b[..n],
            "{p:?}: contents differ in the MiB at {off}"
        );
        off += n as u64;
    }
    assert_eq!(fs.read(ino, size, &mut a).unwrap(), 0);
}

struct Stats {
    nodes: usize,
    bytes: u64,
}

/// Compares the node `ino` of our filesystem with `p` on the host; `mounted` adds the fields
/// only a kernel mount of the same image can match (inode numbers, times, link counts).
fn compare(fs: &mut dyn Filesystem, ino: Ino, p: &Path, mounted: bool, st: &mut Stats) {
    let m = std::fs::symlink_metadata(p).unwrap();
    let a = fs.getattr(ino).unwrap();
    st.nodes += 1;
    assert_eq!(a.file_type, kind(&m), "{p:?}");
    assert_eq!(a.perm, m.mode() & 0o7777, "{p:?}");
    if mounted {
        assert_eq!((a.uid, a.gid), (m.uid(), m.gid()), "{p:?}");
        assert_eq!(a.ino, m.ino(), "{p:?}");
        assert_eq!(u64::from(a.nlink), m.nlink(), "{p:?}");
        assert_eq!(
            (a.mtime.sec, a.mtime.nsec),
            (m.mtime(), m.mtime_nsec() as u32),
            "{p:?}"
        );
        assert_eq!((a.atime.sec, a.ctime.sec), (m.atime(), m.ctime()), "{p:?}");
        assert_eq!(a.allocated, m.blocks() * 512, "{p:?}");
        let ours = fs.list_xattrs(ino).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(ours.tap_sort(), xattrs(p), "{p:?}");
    }
    if a.file_type != FileType::Directory {
        assert_eq!(a.size, m.size(), "{p:?}");
    }
    match a.file_type {
        FileType::Symlink => {
            assert_eq!(
                fs.read_link(ino).unwrap(),
                std::fs::read_link(p).unwrap().as_os_str().as_bytes(),
                "{p:?}"
            )
        }
        FileType::Regular => {
            same_contents(fs, ino, p, a.size);
            st.bytes += a.size;
        }
        FileType::CharDevice | FileType::BlockDevice => {
            let r = m.rdev();
            assert_eq!(a.rdev, (libc::major(r), libc::minor(r)), "{p:?}");
        }
        FileType::Directory => {
            let mut ours: Vec<_> = fs.read_dir(ino).unwrap();
            ours.sort_by(|x, y| x.name.cmp(&y.name));
            let mut theirs: Vec<Vec<u8>> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().as_bytes().to_vec())
                .collect();
            theirs.sort();
            let names: Vec<Vec<u8>> = ours.iter().map(|e| e.name.clone()).collect();
            assert!(names == theirs, "{p:?}: entries differ");
            for e in ours {
                assert_eq!(
                    fs.lookup(ino, &e.name).unwrap(),
                    Some(e.ino),
                    "{p:?} lookup"
                );
                let child = p.join(std::ffi::OsStr::from_bytes(&e.name));
                compare(fs, e.ino, &child, mounted, st);
            }
        }
        _ => {}
    }
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<(Vec<u8>, Vec<u8>)> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}

#[test]
fn v5_fixture_reads_exactly_as_the_kernel_mount_sees_it() {
    let fix = fixtures();
    let img = fix.join("xfs-v5.raw");
    let t = tempfile::tempdir().unwrap();
    let mnt = Mount::new(&img, &t.path().join("mnt"));
    let mut fs = XfsDriver.open(dev(&img), false).unwrap();
    let mut st = Stats { nodes: 0, bytes: 0 };
    let root = fs.root();
    compare(fs.as_mut(), root, &mnt.0, true, &mut st);
    assert!(st.nodes > 6000 + 5000, "walked only {} nodes", st.nodes);
    let info = fs.info().unwrap();
    assert_eq!(info.fs_type, "xfs");
    assert_eq!(info.label.as_deref(), Some("debxfs"));
    assert_eq!(
        info.uuid.as_deref(),
        Some("5f0e6a54-2a4e-4c6b-9d3c-1a2b3c4d5e70")
    );
    assert!(
        info.features.iter().any(|f| f == "bigtime"),
        "{:?}",
        info.features
    );
    eprintln!("compared {} nodes, {} bytes", st.nodes, st.bytes);
}

#[test]
fn v5_fixture_exercises_every_directory_fork_and_attribute_format() {
    let img = fixtures().join("xfs-v5.raw");
    let db = |cmds: &[String]| {
        let mut c = Command::new("xfs_db");
        c.arg("-r");
        for x in cmds {
            c.args(["-c", x]);
        }
        let o = c.arg(&img).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut fs = XfsDriver.open(dev(&img), false).unwrap();
    let ino = |fs: &mut Box<dyn Filesystem>, p: &str| {
        diskfab_fs::path::resolve(fs.as_mut(), p.as_bytes(), false).unwrap()
    };
    for (p, fmt, afmt) in [
        ("/xfstest/node", "3", None),
        ("/xfstest/leaf", "2", None),
        ("/xfstest/short-attrs", "2", Some("1")),
        ("/xfstest/extents", "3", None),
        ("/xfstest/attrs", "2", Some("2")),
        ("/xfstest/many-attrs", "2", Some("3")),
        ("/xfstest/long-link", "2", None),
        ("/xfstest/short-link", "1", None),
    ] {
        let i = ino(&mut fs, p);
        let out = db(&[format!("inode {i}"), "p core.format core.aformat".into()]);
        assert!(out.contains(&format!("core.format = {fmt}")), "{p}: {out}");
        if let Some(a) = afmt {
            assert!(out.contains(&format!("core.aformat = {a}")), "{p}: {out}");
        }
    }
    let n = ino(&mut fs, "/xfstest/node");
    assert_eq!(fs.read_dir(n).unwrap().len(), 5000);
    assert!(
        fs.getattr(n).unwrap().size > 4096 * 4,
        "node directory spans many blocks"
    );
    let fut = ino(&mut fs, "/xfstest/future");
    assert!(
        fs.getattr(fut).unwrap().mtime.sec > 4_000_000_000,
        "big timestamp past 2038"
    );
}

#[test]
fn v4_fixture_matches_the_tree_mkfs_copied_in() {
    let fix = fixtures();
    let mut fs = XfsDriver.open(dev(&fix.join("xfs-v4.raw")), false).unwrap();
    assert!(fs.info().unwrap().features.iter().any(|f| f == "v4"));
    let mut st = Stats { nodes: 0, bytes: 0 };
    let root = fs.root();
    compare(fs.as_mut(), root, &fix.join("xfs-v4-src"), false, &mut st);
    assert!(
        st.nodes > 400 && st.bytes > 100_000,
        "{} nodes {} bytes",
        st.nodes,
        st.bytes
    );
}

#[test]
fn a_log_without_an_unmount_record_is_refused_with_the_rule_in_the_message() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("dirty.raw");
    let ok = Command::new("cp")
        .arg("--sparse=always")
        .arg(fixtures().join("xfs-v5.raw"))
        .arg(&img)
        .status()
        .unwrap();
    assert!(ok.success());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut sb = vec![0u8; 512];
    f.read_exact_at(&mut sb, 0).unwrap();
    // The superblock says where the log is; turn the unmount record into a plain commit.
    let be64 = |o: usize| u64::from_be_bytes(sb[o..o + 8].try_into().unwrap());
    let be32 = |o: usize| u64::from(u32::from_be_bytes(sb[o..o + 4].try_into().unwrap()));
    let (fsb, agblk_log, ag_blocks) = (be64(48), sb[124], be32(84));
    let log = ((fsb >> agblk_log) * ag_blocks + (fsb & ((1 << agblk_log) - 1))) * be32(4);
    let mut logbuf = vec![0u8; (be32(96) * be32(4)) as usize];
    f.read_exact_at(&mut logbuf, log).unwrap();
    let rec = (0..logbuf.len() / 512)
        .map(|b| b * 512)
        .rfind(|&o| logbuf[o..o + 4] == [0xfe, 0xed, 0xba, 0xbe])
        .expect("a log record");
    assert_eq!(
        logbuf[rec + 512 + 9] & 0x20,
        0x20,
        "fixture log ends with an unmount record"
    );
    f.write_all_at(&[0x02], log + rec as u64 + 512 + 9).unwrap();
    drop(f);
    let err = XfsDriver.open(dev(&img), false).err().expect("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::Unsupported(_)), "{msg}");
    assert!(
        msg.contains("unmount record") && msg.contains("xfs_repair"),
        "{msg}"
    );
}

#[test]
fn writing_is_refused_clearly() {
    let img = fixtures().join("xfs-v5.raw");
    let err = XfsDriver.open(dev(&img), true).err().expect("refused");
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("not supported"), "{err}");
}
