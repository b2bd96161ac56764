//! The btrfs driver checked against the Linux kernel: every node of images made by mkfs.btrfs
//! and by the kernel itself (Fedora's subvolume layout, zstd/zlib/lzo, sparse and preallocated
//! files, xattrs, device nodes, a nested subvolume) reads back as a read-only loop mount shows
//! it: names, types, modes, owners, link counts, sizes, device numbers, xattrs, link targets
//! and contents.

use diskfab_btrfs::{BtrfsDriver, BtrfsFs};
use diskfab_fs::{path, FileType, Filesystem};
use diskfab_storage::{DevRef, FileDev};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

static MOUNTS: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
    let o = Command::new("bash").arg(script).output().unwrap();
    assert!(
        o.status.success(),
        "fixtures.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A read-only kernel mount, undone on drop.
struct Mount(tempfile::TempDir);

impl Mount {
    fn new(img: &Path, opts: &str) -> Mount {
        let d = tempfile::tempdir().unwrap();
        let o = format!("ro,loop,{opts}");
        run(
            "mount",
            &[
                "-t",
                "btrfs",
                "-o",
                &o,
                img.to_str().unwrap(),
                d.path().to_str().unwrap(),
            ],
        );
        Mount(d)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn open(img: &Path, subvol: Option<&str>) -> BtrfsFs {
    let dev: DevRef = Arc::new(FileDev::open(img, false).unwrap());
    BtrfsDriver::open_subvol(dev, subvol).unwrap()
}

fn host_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: valid C string and buffer of the stated length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {p:?}");
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0, "lgetxattr {p:?}");
        v.truncate(m as usize);
        out.push((name.to_vec(), v));
    }
    out.sort();
    out
}

fn same_content(fs: &mut BtrfsFs, ino: u64, host: &Path, what: &str) {
    let mut f = std::fs::File::open(host).unwrap();
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    loop {
        let n = fs
            .read(ino, off, &mut a)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut m = 0;
        while m < n {
            let k = f.read(&mut b[m..n]).unwrap();
            assert!(k > 0, "{what}: host file shorter");
            m += k;
        }
        assert!(
            a[..n] == b[..n],
            "{what}: content differs near offset {off}"
        );
        if n == 0 {
            assert_eq!(f.read(&mut b).unwrap(), 0, "{what}: host file longer");
            return;
        }
        off += n as u64;
    }
}

/// Compares the directory `ino` with the host directory `host`; returns nodes compared.
fn compare(fs: &mut BtrfsFs, ino: u64, host: &Path, at: &str) -> usize {
    let mut host_names: Vec<Vec<u8>> = std::fs::read_dir(host)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    host_names.sort();
    let ours = fs.read_dir(ino).unwrap();
    let names: Vec<Vec<u8>> = ours.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, host_names, "{at}: entries differ");
    let mut n = 0;
    for e in ours {
        let p = host.join(std::ffi::OsStr::from_bytes(&e.name));
        let what = format!("{at}/{}", String::from_utf8_lossy(&e.name));
        let hm = std::fs::symlink_metadata(&p).unwrap();
        let m = fs.getattr(e.ino).unwrap();
        assert_eq!(m.file_type, e.file_type, "{what}: entry type");
        assert_eq!(m.mode(), hm.mode(), "{what}: mode");
        assert_eq!((m.uid, m.gid), (hm.uid(), hm.gid()), "{what}: owner");
        assert_eq!(m.nlink, hm.nlink() as u32, "{what}: nlink");
        assert_eq!(m.mtime.sec, hm.mtime(), "{what}: mtime");
        assert_eq!(
            fs.list_xattrs(e.ino).unwrap(),
            host_xattrs(&p),
            "{what}: xattrs"
        );
        let ft = hm.file_type();
        if ft.is_char_device() || ft.is_block_device() {
            let r = hm.rdev();
            assert_eq!(m.rdev, (libc::major(r), libc::minor(r)), "{what}: rdev");
        }
        match m.file_type {
            FileType::Directory => n += compare(fs, e.ino, &p, &what),
            FileType::Regular => {
                assert_eq!(m.size, hm.len(), "{what}: size");
                same_content(fs, e.ino, &p, &what);
            }
            FileType::Symlink => {
                let t = std::fs::read_link(&p).unwrap();
                assert_eq!(
                    fs.read_link(e.ino).unwrap(),
                    t.as_os_str().as_bytes(),
                    "{what}"
                );
                assert_eq!(m.size, hm.len(), "{what}: size");
            }
            _ => {}
        }
        n += 1;
    }
    n
}

fn compare_with_kernel(img: &Path, subvol: Option<&str>, mount_opts: &str) -> (BtrfsFs, usize) {
    let _g = MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut fs = open(img, subvol);
    let m = Mount::new(img, mount_opts);
    let root = fs.root();
    let rm = fs.getattr(root).unwrap();
    assert_eq!(
        rm.mode(),
        std::fs::symlink_metadata(m.0.path()).unwrap().mode()
    );
    let n = compare(&mut fs, root, m.0.path(), "");
    (fs, n)
}

fn kinds(fs: &mut BtrfsFs, p: &str) -> Vec<String> {
    let ino = path::resolve(fs, p.as_bytes(), false).unwrap();
    fs.extent_kinds(ino).unwrap()
}

#[test]
fn fedora_layout_top_level_with_both_subvolumes_equals_the_kernel_mount() {
    let img = fixtures().join("btrfs-fedora.raw");
    let (mut fs, n) = compare_with_kernel(&img, Some("/"), "subvolid=5");
    assert!(n > 6000, "only {n} nodes compared");
    assert_eq!(fs.subvolume(), 5);
    // The compressed directories really hold compressed extents of each kind, inline and not.
    for c in ["zstd", "zlib", "lzo"] {
        let k = kinds(&mut fs, &format!("/home/{c}/text.txt"));
        assert!(k.iter().all(|k| k == &format!("regular/{c}")), "{c}: {k:?}");
        let k = kinds(&mut fs, &format!("/home/{c}/small-inline.txt"));
        assert_eq!(k, [format!("inline/{c}")], "{c}");
    }
    let k = kinds(&mut fs, "/home/prealloc");
    assert!(
        k.contains(&"prealloc".to_string()) && k.contains(&"regular/none".to_string()),
        "{k:?}"
    );
    let info = fs.info().unwrap();
    assert!(
        info.features.contains(&"metadata=DUP".to_string()),
        "{:?}",
        info.features
    );
    assert_eq!(info.label.as_deref(), Some("fedora"));
}

#[test]
fn fedora_layout_default_root_is_the_root_subvolume_and_equals_its_kernel_mount() {
    let img = fixtures().join("btrfs-fedora.raw");
    let (mut fs, n) = compare_with_kernel(&img, None, "subvol=root");
    assert!(n > 6000, "only {n} nodes compared");
    assert_ne!(fs.subvolume(), 5);
    path::resolve(&mut fs, b"/etc/os-release", true).unwrap();
}

#[test]
fn subvolume_chosen_by_path_or_id_equals_its_kernel_mount() {
    let img = fixtures().join("btrfs-fedora.raw");
    let (fs, n) = compare_with_kernel(&img, Some("home"), "subvol=home");
    assert!(n > 100, "only {n} nodes compared");
    let id = fs.subvolume();
    let (fs2, _) = compare_with_kernel(&img, Some(&format!("id:{id}")), &format!("subvolid={id}"));
    assert_eq!(fs2.subvolume(), id);
    let (_, n) = compare_with_kernel(&img, Some("home/nested"), "subvol=home/nested");
    assert_eq!(n, 1);
}

#[test]
fn mkfs_r_image_with_the_os_at_the_top_level_equals_the_kernel_mount() {
    let img = fixtures().join("btrfs-mkfs-r.raw");
    let (fs, n) = compare_with_kernel(&img, None, "subvolid=5");
    assert!(n > 6000, "only {n} nodes compared");
    assert_eq!(fs.subvolume(), 5);
}

#[test]
fn subvolume_choices_that_name_no_subvolume_are_refused_clearly() {
    let img = fixtures().join("btrfs-fedora.raw");
    let dev: DevRef = Arc::new(FileDev::open(&img, false).unwrap());
    for (c, want) in [
        ("root/etc", "not a subvolume"),
        ("nope", "not found"),
        ("id:x", "wants a number"),
        ("id:4000", "does not exist"),
    ] {
        let e = BtrfsDriver::open_subvol(dev.clone(), Some(c))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{c}: {e}");
    }
}
