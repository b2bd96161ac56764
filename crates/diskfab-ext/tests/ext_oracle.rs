//! The ext driver checked against e2fsprogs and the Linux kernel: trees made by `mke2fs -d` read
//! back identically; after writes `e2fsck -fn` is clean and a kernel loop mount sees the result.

use diskfab_ext::ExtDriver;
use diskfab_fs::{path, FileType, Filesystem, FsDriver, MkfsDriver, MkfsOptions, NewNode, SetAttr};
use diskfab_storage::{DevRef, Error, FileDev};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// A source tree with every kind of node and metadata mke2fs -d copies.
fn source_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    std::fs::write(root.join("etc/hostname"), "host\n").unwrap();
    std::fs::write(
        root.join("etc/deep/er/big.bin"),
        (0..3_000_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let f = std::fs::File::create(root.join("sparse")).unwrap();
    f.set_len(50 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", (50 << 20) - 4).unwrap();
    std::os::unix::fs::symlink("etc/hostname", root.join("short-link")).unwrap();
    std::os::unix::fs::symlink("x".repeat(200), root.join("long-link")).unwrap();
    std::fs::hard_link(root.join("etc/hostname"), root.join("hard")).unwrap();
    run("mkfifo", &[s(&root.join("fifo"))]);
    run("mknod", &[s(&root.join("null")), "c", "1", "3"]);
    std::fs::set_permissions(
        root.join("etc/hostname"),
        std::fs::Permissions::from_mode(0o4640),
    )
    .unwrap();
    run("chown", &["1234:5678", s(&root.join("etc/hostname"))]);
    run(
        "setfattr",
        &[
            "-n",
            "user.color",
            "-v",
            "blue",
            s(&root.join("etc/hostname")),
        ],
    );
    run(
        "setfacl",
        &["-m", "u:4242:rw-", s(&root.join("etc/hostname"))],
    );
    for i in 0..300 {
        std::fs::write(root.join(format!("etc/deep/f{i:04}")), format!("{i}")).unwrap();
    }
}

fn compare_tree(fs: &mut dyn Filesystem, host: &Path, inpath: &str) {
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let p = format!("{}/{name}", inpath.trim_end_matches('/'));
        let ino = path::resolve(fs, p.as_bytes(), false).unwrap_or_else(|err| panic!("{p}: {err}"));
        let m = fs.getattr(ino).unwrap();
        let hm = std::fs::symlink_metadata(e.path()).unwrap();
        assert_eq!(m.perm, hm.mode() & 0o7777, "{p} mode");
        assert_eq!((m.uid, m.gid), (hm.uid(), hm.gid()), "{p} owner");
        assert_eq!(m.nlink, hm.nlink() as u32, "{p} nlink");
        if hm.is_file() {
            assert_eq!(m.size, hm.len(), "{p} size");
            let mut buf = vec![0u8; hm.len() as usize];
            let mut off = 0;
            while off < buf.len() {
                let n = fs.read(ino, off as u64, &mut buf[off..]).unwrap();
                assert!(n > 0);
                off += n;
            }
            assert!(buf == std::fs::read(e.path()).unwrap(), "{p} content");
        } else if hm.file_type().is_symlink() {
            assert_eq!(
                fs.read_link(ino).unwrap(),
                std::fs::read_link(e.path())
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
                "{p}"
            );
        } else if hm.is_dir() {
            assert_eq!(m.file_type, FileType::Directory);
            compare_tree(fs, &e.path(), &p);
        }
    }
}

#[test]
fn tree_made_by_mke2fs_d_reads_back_identically_with_modes_owners_links_and_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    source_tree(&src);
    let img = t.path().join("fs.img");
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-d", s(&src), s(&img), "128M"],
    );
    let mut fs = open(&img, false);
    compare_tree(fs.as_mut(), &src, "/");
    let ino = path::resolve(fs.as_mut(), b"/etc/hostname", false).unwrap();
    let x = fs.list_xattrs(ino).unwrap();
    assert!(
        x.contains(&(b"user.color".to_vec(), b"blue".to_vec())),
        "{x:?}"
    );
    // POSIX ACLs come back in the Linux xattr encoding, byte for byte as the host kernel has them.
    let host_acl = run(
        "getfattr",
        &[
            "-e",
            "hex",
            "-n",
            "system.posix_acl_access",
            s(&src.join("etc/hostname")),
        ],
    );
    let ours = x
        .iter()
        .find(|(n, _)| n == b"system.posix_acl_access")
        .expect("ACL xattr");
    let hex: String = ours.1.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        host_acl.contains(&hex),
        "ACL differs: host {host_acl} ours {hex}"
    );
    let null = path::resolve(fs.as_mut(), b"/null", false).unwrap();
    assert_eq!(fs.getattr(null).unwrap().rdev, (1, 3));
    let fifo = path::resolve(fs.as_mut(), b"/fifo", false).unwrap();
    assert_eq!(fs.getattr(fifo).unwrap().file_type, FileType::Fifo);
    let info = fs.info().unwrap();
    assert_eq!(info.fs_type, "ext4");
    assert!(
        info.features.iter().any(|f| f == "metadata_csum"),
        "{:?}",
        info.features
    );
}

#[test]
fn inline_data_files_and_directories_are_readable() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/small"), "tiny file\n").unwrap();
    let img = t.path().join("fs.img");
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
            s(&src),
            s(&img),
            "32M",
        ],
    );
    let mut fs = open(&img, false);
    compare_tree(fs.as_mut(), &src, "/");
}

fn nn(perm: u32) -> NewNode {
    NewNode {
        perm,
        uid: 1000,
        gid: 100,
        time: None,
    }
}

#[test]
fn every_write_scenario_leaves_e2fsck_clean_and_the_kernel_sees_the_result() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("w.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "256M"]);
    {
        let mut fs = open(&img, true);
        let r = fs.root();
        let d = fs.mkdir(r, b"dir", &nn(0o750)).unwrap();
        let f = fs.create(d, b"file", &nn(0o644)).unwrap();
        fs.write(f, 0, &vec![0xab; 100_000]).unwrap();
        fs.write(f, 50_000, b"overwrite").unwrap();
        let g = fs.create(r, b"gone", &nn(0o600)).unwrap();
        fs.write(g, 0, b"bye").unwrap();
        fs.unlink(r, b"gone").unwrap();
        let sp = fs.create(r, b"sparse", &nn(0o644)).unwrap();
        fs.write(sp, (1 << 30) - 3, b"end").unwrap();
        let tr = fs.create(r, b"trunc", &nn(0o644)).unwrap();
        fs.write(tr, 0, &vec![1; 70_000]).unwrap();
        fs.set_attr(
            tr,
            &SetAttr {
                size: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
        fs.set_attr(
            f,
            &SetAttr {
                perm: Some(0o4755),
                uid: Some(70_000),
                gid: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
        fs.symlink(r, b"s-short", b"dir/file", &nn(0o777)).unwrap();
        fs.symlink(r, b"s-long", "y".repeat(300).as_bytes(), &nn(0o777))
            .unwrap();
        fs.link(f, r, b"hard").unwrap();
        fs.mknod(r, b"null", FileType::CharDevice, (1, 3), &nn(0o666))
            .unwrap();
        fs.mknod(r, b"pipe", FileType::Fifo, (0, 0), &nn(0o644))
            .unwrap();
        let many = fs.mkdir(r, b"many", &nn(0o755)).unwrap();
        for i in 0..5000 {
            let x = fs
                .create(
                    many,
                    format!("file-with-a-longish-name-{i:05}").as_bytes(),
                    &nn(0o644),
                )
                .unwrap();
            fs.write(x, 0, i.to_string().as_bytes()).unwrap();
        }
        let e = fs.mkdir(r, b"empty", &nn(0o755)).unwrap();
        let _ = e;
        fs.rmdir(r, b"empty").unwrap();
        let m = fs.mkdir(r, b"moveme", &nn(0o755)).unwrap();
        fs.create(m, b"inner", &nn(0o644)).unwrap();
        fs.rename(r, b"moveme", d, b"moved").unwrap();
        fs.set_xattr(f, b"user.k", b"v").unwrap();
        fs.set_xattr(f, b"security.selinux", b"system_u:object_r:etc_t:s0\0")
            .unwrap();
        fs.sync().unwrap();
    }
    e2fsck_clean(&img);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &["-o", "loop,ro", s(&img), s(&mnt)]);
    let check = || -> Result<(), String> {
        let c = std::fs::read(mnt.join("dir/file")).map_err(|e| e.to_string())?;
        let mut want = vec![0xab; 100_000];
        want[50_000..50_009].copy_from_slice(b"overwrite");
        if c != want {
            return Err("dir/file content".into());
        }
        let m = std::fs::metadata(mnt.join("dir/file")).unwrap();
        if (m.mode() & 0o7777, m.uid(), m.gid(), m.nlink()) != (0o4755, 70_000, 5, 2) {
            return Err(format!(
                "dir/file meta {:o} {} {} {}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.nlink()
            ));
        }
        if mnt.join("gone").exists() {
            return Err("gone exists".into());
        }
        let sp = std::fs::metadata(mnt.join("sparse")).unwrap();
        if sp.len() != 1 << 30 || sp.blocks() > 64 {
            return Err(format!("sparse {} {}", sp.len(), sp.blocks()));
        }
        if std::fs::read(mnt.join("trunc")).unwrap() != vec![1; 10] {
            return Err("trunc".into());
        }
        if std::fs::read_link(mnt.join("s-long"))
            .unwrap()
            .as_os_str()
            .len()
            != 300
        {
            return Err("s-long".into());
        }
        if std::fs::read(mnt.join("s-short")).unwrap() != want {
            return Err("s-short".into());
        }
        if std::fs::read_dir(mnt.join("many")).unwrap().count() != 5000 {
            return Err("many".into());
        }
        if std::fs::read(mnt.join("many/file-with-a-longish-name-04321")).unwrap() != b"4321" {
            return Err("many content".into());
        }
        if !mnt.join("dir/moved/inner").exists() || mnt.join("moveme").exists() {
            return Err("rename".into());
        }
        let x = run("getfattr", &["-d", "-m", "-", s(&mnt.join("dir/file"))]);
        if !x.contains("user.k=\"v\"") || !x.contains("security.selinux") {
            return Err(format!("xattrs {x}"));
        }
        let nul = std::fs::metadata(mnt.join("null")).unwrap();
        if nul.rdev() != libc_makedev(1, 3) {
            return Err("null rdev".into());
        }
        Ok(())
    };
    let r = check();
    run("umount", &[s(&mnt)]);
    r.unwrap();
}

fn libc_makedev(ma: u64, mi: u64) -> u64 {
    (ma << 8) | mi
}

#[test]
fn a_kernel_made_htree_directory_grows_through_leaf_splits_and_stays_clean() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("h.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "64M"]);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &["-o", "loop", s(&img), s(&mnt)]);
    std::fs::create_dir(mnt.join("h")).unwrap();
    for i in 0..1000 {
        std::fs::write(mnt.join(format!("h/kernel-{i:05}")), "k").unwrap();
    }
    run("umount", &[s(&mnt)]);
    {
        let mut fs = open(&img, true);
        let h = path::resolve(fs.as_mut(), b"/h", true).unwrap();
        for i in 0..4000 {
            fs.create(
                h,
                format!("diskfab-made-entry-{i:05}").as_bytes(),
                &nn(0o644),
            )
            .unwrap();
        }
        for i in (0..1000).step_by(3) {
            fs.unlink(h, format!("kernel-{i:05}").as_bytes()).unwrap();
        }
        fs.sync().unwrap();
    }
    e2fsck_clean(&img);
    run("mount", &["-o", "loop,ro", s(&img), s(&mnt)]);
    let n = std::fs::read_dir(mnt.join("h")).unwrap().count();
    let found = mnt.join("h/diskfab-made-entry-03999").exists();
    run("umount", &[s(&mnt)]);
    assert_eq!(n, 4000 + 1000 - 334);
    assert!(found);
}

#[test]
fn mkfs_makes_an_ext4_that_e2fsck_and_the_kernel_accept_with_debian_features() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("m.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let opts = MkfsOptions {
        label: Some("rootfs".into()),
        fs_type: "ext4".into(),
        uuid: Some(*b"0123456789abcdef"),
        time: Some(1_700_000_000),
    };
    ExtDriver.mkfs(dev(&img, true), &opts).unwrap();
    e2fsck_clean(&img);
    let d = run("dumpe2fs", &["-h", s(&img)]);
    for f in [
        "has_journal",
        "ext_attr",
        "resize_inode",
        "dir_index",
        "filetype",
        "extent",
        "64bit",
        "flex_bg",
        "sparse_super",
        "large_file",
        "huge_file",
        "dir_nlink",
        "extra_isize",
        "metadata_csum",
    ] {
        assert!(
            d.split_whitespace().any(|w| w == f),
            "feature {f} missing:\n{d}"
        );
    }
    assert!(d.contains("rootfs"));
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &["-o", "loop", s(&img), s(&mnt)]);
    let lf = mnt.join("lost+found").is_dir();
    std::fs::write(mnt.join("kernel-wrote"), "ok").unwrap();
    run("umount", &[s(&mnt)]);
    assert!(lf);
    e2fsck_clean(&img);
    for ty in ["ext2", "ext3"] {
        let p = t.path().join(format!("{ty}.img"));
        std::fs::File::create(&p)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        ExtDriver
            .mkfs(
                dev(&p, true),
                &MkfsOptions {
                    fs_type: ty.into(),
                    ..Default::default()
                },
            )
            .unwrap();
        e2fsck_clean(&p);
        assert_eq!(
            ExtDriver.probe(&dev(&p, false)).unwrap().as_deref(),
            Some(ty)
        );
    }
}

#[test]
fn garbage_superblocks_are_bad_images_and_dirty_journals_refuse_writes() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("g.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "32M"]);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.write_all_at(&[0xff; 200], 1024 + 60).unwrap();
    }
    let e = ExtDriver
        .open(dev(&img, false), false)
        .err()
        .expect("garbage accepted");
    assert!(matches!(e, Error::BadImage(_)), "{e}");
    let img = t.path().join("r.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", s(&img), "32M"]);
    run("debugfs", &["-w", "-R", "feature needs_recovery", s(&img)]);
    let e = ExtDriver
        .open(dev(&img, true), true)
        .err()
        .expect("dirty journal opened for writing");
    assert!(e.to_string().contains("recovery"), "{e}");
    let mut fs = open(&img, false);
    assert!(fs.info().unwrap().needs_recovery);
}

#[test]
fn orphan_file_filesystems_stay_writable_and_e2fsck_clean() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("o.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "orphan_file",
            s(&img),
            "64M",
        ],
    );
    {
        let mut fs = open(&img, true);
        let r = fs.root();
        let d = fs.mkdir(r, b"d", &nn(0o755)).unwrap();
        let f = fs.create(d, b"f", &nn(0o644)).unwrap();
        fs.write(f, 0, b"orphan_file is fine").unwrap();
        fs.sync().unwrap();
    }
    e2fsck_clean(&img);
    let mut fs = open(&img, false);
    assert!(fs
        .info()
        .unwrap()
        .features
        .iter()
        .any(|f| f == "orphan_file"));
    let f = path::resolve(fs.as_mut(), b"/d/f", true).unwrap();
    let mut b = [0u8; 19];
    assert_eq!(fs.read(f, 0, &mut b).unwrap(), 19);
}
