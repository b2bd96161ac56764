//! Edge cases of the ext driver checked against e2fsprogs and the kernel: mkfs at every Debian
//! size class, big and sparse files on extent and indirect-block filesystems read byte-exact,
//! directory-heavy trees and illegal moves, nanosecond timestamps.

use diskfab_ext::ExtDriver;
use diskfab_fs::{path, Filesystem, FsDriver, MkfsDriver, MkfsOptions, NewNode, SetAttr, Timespec};
use diskfab_storage::{DevRef, Error, FileDev};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run scripts/deps.sh)"));
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

fn dev(p: &Path, w: bool) -> DevRef {
    Arc::new(FileDev::open(p, w).unwrap())
}

fn open(p: &Path, w: bool) -> Box<dyn Filesystem> {
    ExtDriver.open(dev(p, w), w).unwrap()
}

fn e2fsck_clean(p: &Path) {
    let o = Command::new("e2fsck").args(["-fn", s(p)]).output().unwrap();
    assert!(
        o.status.success(),
        "e2fsck -fn not clean:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn nn(perm: u32) -> NewNode {
    NewNode {
        perm,
        uid: 0,
        gid: 0,
        time: None,
    }
}

/// Mounts `img` read-only at `mnt`, runs `f`, unmounts (also when `f` fails).
fn with_mount<T>(img: &Path, mnt: &Path, f: impl FnOnce() -> T) -> T {
    std::fs::create_dir_all(mnt).unwrap();
    run("mount", &["-o", "loop,ro", s(img), s(mnt)]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    run("umount", &[s(mnt)]);
    r.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn mkfs_at_floppy_small_default_and_4g_sizes_is_clean_mountable_and_stays_sparse() {
    let t = tempfile::tempdir().unwrap();
    for (size, bs) in [
        (1u64 << 20, 1024u32),
        (3 << 20, 1024),
        (100 << 20, 1024),
        (600 << 20, 4096),
        (4 << 30, 4096),
    ] {
        let img = t.path().join(format!("m{size}.img"));
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let t0 = std::time::Instant::now();
        ExtDriver
            .mkfs(
                dev(&img, true),
                &MkfsOptions {
                    fs_type: "ext4".into(),
                    label: Some("L".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let took = t0.elapsed();
        assert!(took.as_secs() < 30, "mkfs of {size} bytes took {took:?}");
        e2fsck_clean(&img);
        let info = open(&img, false).info().unwrap();
        assert_eq!((info.fs_type.as_str(), info.block_size), ("ext4", bs));
        assert_eq!(info.total_bytes, size);
        let alloc = std::fs::metadata(&img).unwrap().blocks() * 512;
        assert!(
            alloc < size / 4 + (8 << 20),
            "mkfs of {size} bytes allocated {alloc} bytes of the image"
        );
        let lf = with_mount(&img, &t.path().join("mnt"), || {
            t.path().join("mnt/lost+found").is_dir()
        });
        assert!(lf, "no lost+found at size {size}");
    }
    let e = ExtDriver.mkfs(
        Arc::new(diskfab_storage::MemDev::new(8 << 20)),
        &MkfsOptions {
            label: Some("x".repeat(17)),
            ..Default::default()
        },
    );
    assert!(matches!(e, Err(Error::Invalid(_))), "{e:?}");
}

/// Reads all of `ino` in odd-sized, unaligned chunks.
fn read_all(fs: &mut dyn Filesystem, ino: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 777_777];
    loop {
        let n = fs.read(ino, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn big_and_sparse_files_read_back_byte_exact_on_extent_and_indirect_block_filesystems() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("big"), &big).unwrap();
    let sp = std::fs::File::create(tree.join("sparse")).unwrap();
    sp.set_len(45 << 20).unwrap();
    for (off, data) in [
        (0u64, &b"head"[..]),
        (5 << 20, b"middle"),
        (40 << 20, b"tail"),
    ] {
        sp.write_all_at(data, off + 3).unwrap();
    }
    std::fs::write(tree.join("tiny"), "x").unwrap();
    for ty in ["ext4", "ext3", "ext2"] {
        let img = t.path().join(format!("{ty}.img"));
        run(
            "mke2fs",
            &["-q", "-F", "-t", ty, "-d", s(&tree), s(&img), "128M"],
        );
        let mut fs = open(&img, false);
        for name in ["big", "sparse", "tiny"] {
            let ino = path::resolve(fs.as_mut(), format!("/{name}").as_bytes(), true).unwrap();
            let want = std::fs::read(tree.join(name)).unwrap();
            let got = read_all(fs.as_mut(), ino);
            assert!(got == want, "{ty}: /{name} differs");
        }
        // A read straddling a hole boundary, and reads at and past the end.
        let ino = path::resolve(fs.as_mut(), b"/sparse", true).unwrap();
        let mut b = vec![1u8; 10];
        assert_eq!(fs.read(ino, (5 << 20) - 2, &mut b).unwrap(), 10);
        assert_eq!(&b, b"\0\0\0\0\0middl");
        assert_eq!(fs.read(ino, 45 << 20, &mut b).unwrap(), 0);
        assert_eq!(fs.read(ino, u64::MAX, &mut b).unwrap(), 0);
    }
}

#[test]
fn many_subdirectories_moves_and_refused_moves_leave_e2fsck_clean() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("d.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "128M"]);
    {
        let mut fs = open(&img, true);
        let r = fs.root();
        let top = fs.mkdir(r, b"top", &nn(0o755)).unwrap();
        for i in 0..1500 {
            fs.mkdir(top, format!("subdirectory-{i:05}").as_bytes(), &nn(0o700))
                .unwrap();
        }
        let a = fs.mkdir(r, b"a", &nn(0o755)).unwrap();
        let b = fs.mkdir(a, b"b", &nn(0o755)).unwrap();
        assert!(matches!(
            fs.rename(r, b"a", b, b"a-inside-itself"),
            Err(Error::Invalid(_))
        ));
        assert!(fs.rename(r, b"a", a, b"self").is_err());
        let f = fs.create(b, b"f", &nn(0o644)).unwrap();
        fs.link(f, r, b"f-link").unwrap();
        fs.rename(b, b"f", r, b"f-link").unwrap();
        assert_eq!(fs.lookup(b, b"f").unwrap(), Some(f));
        assert_eq!(fs.getattr(f).unwrap().nlink, 2);
        assert!(fs.rmdir(r, b"a").is_err(), "rmdir of a non-empty directory");
        let e = fs.mkdir(r, b"empty", &nn(0o755)).unwrap();
        let _ = e;
        fs.rename(a, b"b", r, b"empty").unwrap();
        assert_eq!(fs.lookup(r, b"empty").unwrap(), Some(b));
        assert_eq!(fs.lookup(b, b"..").unwrap(), Some(r));
        for i in (0..1500).step_by(2) {
            fs.rmdir(top, format!("subdirectory-{i:05}").as_bytes())
                .unwrap();
        }
        assert_eq!(fs.getattr(top).unwrap().nlink, 2 + 750);
        assert!(fs.lookup(r, b"bad/name").is_err());
        assert!(fs.create(r, b"", &nn(0o644)).is_err());
        assert!(fs.create(r, b"..", &nn(0o644)).is_err());
        fs.sync().unwrap();
    }
    e2fsck_clean(&img);
    let mnt = t.path().join("mnt");
    let n = with_mount(&img, &mnt, || {
        assert!(mnt.join("empty/f").is_file());
        std::fs::read_dir(mnt.join("top")).unwrap().count()
    });
    assert_eq!(n, 750);
}

#[test]
fn nanosecond_timestamps_and_32bit_owners_round_trip_and_the_kernel_agrees() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("t.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "32M"]);
    let m = Timespec {
        sec: 1_234_567_890,
        nsec: 123_456_789,
    };
    let a = Timespec {
        sec: 3_000_000_000, // past 2038: needs the epoch bits
        nsec: 5,
    };
    {
        let mut fs = open(&img, true);
        let r = fs.root();
        let f = fs
            .create(
                r,
                b"f",
                &NewNode {
                    perm: 0o640,
                    uid: 100_000,
                    gid: 200_000,
                    time: Some(m),
                },
            )
            .unwrap();
        fs.set_xattr(f, b"user.keep", b"me").unwrap();
        fs.set_attr(
            f,
            &SetAttr {
                atime: Some(a),
                mtime: Some(m),
                ..Default::default()
            },
        )
        .unwrap();
        let md = fs.getattr(f).unwrap();
        assert_eq!(
            (md.mtime, md.atime, md.uid, md.gid),
            (m, a, 100_000, 200_000)
        );
        assert_eq!(
            fs.list_xattrs(f).unwrap(),
            vec![(b"user.keep".to_vec(), b"me".to_vec())]
        );
        fs.sync().unwrap();
    }
    e2fsck_clean(&img);
    let mnt = t.path().join("mnt");
    let md = with_mount(&img, &mnt, || std::fs::metadata(mnt.join("f")).unwrap());
    assert_eq!((md.mtime(), md.mtime_nsec()), (m.sec, i64::from(m.nsec)));
    assert_eq!((md.atime(), md.atime_nsec()), (a.sec, i64::from(a.nsec)));
    assert_eq!((md.uid(), md.gid()), (100_000, 200_000));
}

#[test]
fn writes_on_an_inline_data_filesystem_grow_out_of_the_inode_and_stay_clean() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("small"), "tiny").unwrap();
    std::fs::write(tree.join("d/a"), "a").unwrap();
    let img = t.path().join("i.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "inline_data",
            "-d",
            s(&tree),
            s(&img),
            "32M",
        ],
    );
    let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    {
        let mut fs = open(&img, true);
        let r = fs.root();
        let small = fs.lookup(r, b"small").unwrap().unwrap();
        fs.write(small, 4, b"-grown-inline").unwrap();
        let d = fs.lookup(r, b"d").unwrap().unwrap();
        let a = fs.lookup(d, b"a").unwrap().unwrap();
        fs.write(a, 0, &big).unwrap();
        for i in 0..200 {
            fs.create(d, format!("entry-{i:03}").as_bytes(), &nn(0o644))
                .unwrap();
        }
        let n = fs.mkdir(r, b"new", &nn(0o755)).unwrap();
        fs.create(n, b"x", &nn(0o644)).unwrap();
        fs.unlink(r, b"small").unwrap();
        fs.set_attr(
            a,
            &SetAttr {
                size: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
        fs.sync().unwrap();
        let mut b = [0u8; 8];
        assert_eq!(fs.read(a, 0, &mut b).unwrap(), 3);
        assert_eq!(&b[..3], &big[..3]);
    }
    e2fsck_clean(&img);
    let mnt = t.path().join("mnt");
    with_mount(&img, &mnt, || {
        assert_eq!(std::fs::read(mnt.join("d/a")).unwrap(), &big[..3]);
        assert_eq!(std::fs::read_dir(mnt.join("d")).unwrap().count(), 201);
        assert!(mnt.join("new/x").is_file());
        assert!(!mnt.join("small").exists());
    });
}

/// Visits every node reachable from `dir`, reading everything; errors are fine, panics are not.
fn walk(fs: &mut dyn Filesystem, dir: u64, depth: u32, budget: &mut u32) {
    let Ok(entries) = fs.read_dir(dir) else {
        return;
    };
    for e in entries {
        if *budget == 0 || depth > 8 {
            return;
        }
        *budget -= 1;
        let _ = fs.lookup(dir, &e.name);
        let _ = fs.list_xattrs(e.ino);
        let Ok(md) = fs.getattr(e.ino) else {
            continue;
        };
        match md.file_type {
            diskfab_fs::FileType::Directory => walk(fs, e.ino, depth + 1, budget),
            diskfab_fs::FileType::Symlink => {
                let _ = fs.read_link(e.ino);
            }
            _ => {
                let mut b = vec![0u8; 1 << 20];
                for off in [0u64, 4096, md.size.saturating_sub(10), md.size] {
                    let _ = fs.read(e.ino, off, &mut b);
                }
            }
        }
    }
}

#[test]
fn corrupted_metadata_gives_errors_not_panics() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
    for i in 0..60 {
        std::fs::write(tree.join(format!("a/f{i}")), vec![i as u8; i * 997]).unwrap();
    }
    std::fs::write(tree.join("a/b/c/big"), vec![7u8; 3 << 20]).unwrap();
    std::os::unix::fs::symlink("a/b/c/big", tree.join("ln")).unwrap();
    std::os::unix::fs::symlink("z".repeat(200), tree.join("a/longln")).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (k, (ty, opts)) in [
        ("ext4", "^metadata_csum"),
        ("ext4", "metadata_csum"),
        ("ext3", "^metadata_csum"),
    ]
    .iter()
    .enumerate()
    {
        let base = t.path().join(format!("base{k}.img"));
        run(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                ty,
                "-O",
                opts,
                "-d",
                s(&tree),
                s(&base),
                "16M",
            ],
        );
        let pristine = std::fs::read(&base).unwrap();
        for _ in 0..40 {
            let mut img = pristine.clone();
            for _ in 0..(1 + rnd() % 200) {
                // Skip the boot block and primary superblock; hit the metadata-dense first 2 MiB.
                let pos = 2048 + (rnd() % (2 << 20)) as usize;
                img[pos] = rnd() as u8;
            }
            let d: DevRef = Arc::new(diskfab_storage::MemDev::new(img.len()));
            d.write_at(&img, 0).unwrap();
            if let Ok(mut fs) = ExtDriver.open(d, false) {
                let _ = fs.info();
                let r = fs.root();
                walk(fs.as_mut(), r, 0, &mut 2000);
            }
        }
    }
}
