//! The FAT driver checked against dosfstools and mtools (the kernel here cannot mount vfat).

use diskfab_fat::FatDriver;
use diskfab_fs::{path, Filesystem, FsDriver, MkfsDriver, MkfsOptions, NewNode, SetAttr};
use diskfab_storage::{DevRef, FileDev};
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

fn image(dir: &Path, name: &str, fat: &str, kib: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    run(
        "mkfs.vfat",
        &[
            "-F",
            fat,
            "-n",
            "TESTVOL",
            "-i",
            "1234abcd",
            "-C",
            s(&p),
            &kib.to_string(),
        ],
    );
    p
}

fn read_all(fs: &mut dyn Filesystem, p: &str) -> Vec<u8> {
    let ino = path::resolve(fs, p.as_bytes(), true).unwrap();
    let size = fs.getattr(ino).unwrap().size as usize;
    let mut b = vec![0u8; size];
    let mut off = 0;
    while off < size {
        let n = fs.read(ino, off as u64, &mut b[off..]).unwrap();
        assert!(n > 0);
        off += n;
    }
    b
}

#[test]
fn trees_copied_in_by_mtools_read_back_identically_on_fat12_16_and_32() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("EFI/Boot Loader/deeper")).unwrap();
    std::fs::write(
        tree.join("EFI/Boot Loader/deeper/A Long File Name.conf"),
        "timeout 3\n",
    )
    .unwrap();
    std::fs::write(tree.join("MixedCase.TXT"), "mixed").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(tree.join("big.bin"), &big).unwrap();
    for (fat, kib) in [("12", 8192u64), ("16", 65536), ("32", 300_000)] {
        let img = image(t.path(), &format!("f{fat}.img"), fat, kib);
        for e in std::fs::read_dir(&tree).unwrap() {
            run(
                "mcopy",
                &["-s", "-i", s(&img), s(&e.unwrap().path()), "::/"],
            );
        }
        let mut fs = FatDriver.open(dev(&img, false), false).unwrap();
        assert_eq!(
            read_all(fs.as_mut(), "/EFI/Boot Loader/deeper/A Long File Name.conf"),
            b"timeout 3\n"
        );
        assert_eq!(
            read_all(fs.as_mut(), "/mixedcase.txt"),
            b"mixed",
            "lookup is case-insensitive"
        );
        assert!(read_all(fs.as_mut(), "/big.bin") == big);
        let names: Vec<String> = fs
            .read_dir(fs.root())
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .collect();
        assert!(names.contains(&"MixedCase.TXT".to_string()), "{names:?}");
        let info = fs.info().unwrap();
        assert_eq!(info.fs_type, "vfat");
        assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(info.label.as_deref(), Some("TESTVOL"));
        assert_eq!(info.features, vec![format!("fat{fat}")]);
    }
}

fn nn() -> NewNode {
    NewNode {
        perm: 0o644,
        uid: 0,
        gid: 0,
        time: Some(diskfab_fs::Timespec {
            sec: 1_700_000_000,
            nsec: 0,
        }),
    }
}

#[test]
fn writes_leave_fsck_vfat_clean_and_mtools_sees_exactly_the_expected_tree() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "w.img", "32", 100_000);
    {
        let mut fs = FatDriver.open(dev(&img, true), true).unwrap();
        let r = fs.root();
        let d = fs.mkdir(r, b"A Directory With Long Name", &nn()).unwrap();
        let sub = fs.mkdir(d, b"nested sub dir", &nn()).unwrap();
        fs.mkdir(sub, b"deeper", &nn()).unwrap();
        let f = fs.create(d, b"file.txt", &nn()).unwrap();
        fs.write(f, 0, &vec![b'x'; 70_000]).unwrap();
        fs.write(f, 10, b"OVER").unwrap();
        let g = fs.create(r, b"gone.txt", &nn()).unwrap();
        fs.write(g, 0, b"bye").unwrap();
        fs.unlink(r, b"gone.txt").unwrap();
        let tr = fs.create(r, b"trunc.bin", &nn()).unwrap();
        fs.write(tr, 0, &vec![7; 50_000]).unwrap();
        fs.set_attr(
            tr,
            &SetAttr {
                size: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
        let many = fs.mkdir(r, b"many", &nn()).unwrap();
        for i in 0..300 {
            let x = fs
                .create(
                    many,
                    format!("Long File Name Number {i:03}.dat").as_bytes(),
                    &nn(),
                )
                .unwrap();
            fs.write(x, 0, i.to_string().as_bytes()).unwrap();
        }
        fs.mkdir(r, b"empty", &nn()).unwrap();
        fs.rmdir(r, b"empty").unwrap();
        let m = fs.create(r, b"moveme", &nn()).unwrap();
        fs.write(m, 0, b"moved").unwrap();
        fs.rename(r, b"moveme", d, b"Moved Here.txt").unwrap();
        assert!(fs.rmdir(r, b"many").is_err(), "non-empty rmdir must fail");
        fs.sync().unwrap();
    }
    let o = Command::new("fsck.vfat")
        .args(["-n", s(&img)])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck.vfat -n:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    run("mcopy", &["-n", "-s", "-i", s(&img), "::/*", s(&out)]);
    let mut want = vec![b'x'; 70_000];
    want[10..14].copy_from_slice(b"OVER");
    assert!(std::fs::read(out.join("A Directory With Long Name/file.txt")).unwrap() == want);
    assert_eq!(
        std::fs::read(out.join("A Directory With Long Name/Moved Here.txt")).unwrap(),
        b"moved"
    );
    assert_eq!(std::fs::read(out.join("trunc.bin")).unwrap(), vec![7; 5]);
    assert!(
        !out.join("gone.txt").exists()
            && !out.join("empty").exists()
            && !out.join("moveme").exists()
    );
    assert_eq!(std::fs::read_dir(out.join("many")).unwrap().count(), 300);
    assert_eq!(
        std::fs::read(out.join("many/Long File Name Number 123.dat")).unwrap(),
        b"123"
    );
}

#[test]
fn mkfs_of_every_fat_type_is_fsck_clean_with_label_and_serial() {
    let t = tempfile::tempdir().unwrap();
    for (ty, size) in [
        ("fat12", 4u64 << 20),
        ("fat16", 64 << 20),
        ("fat32", 300 << 20),
        ("vfat", 64 << 20),
    ] {
        let p = t.path().join(format!("{ty}.img"));
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        let o = MkfsOptions {
            label: Some("Boot".into()),
            fs_type: ty.into(),
            uuid: Some([0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            time: None,
        };
        FatDriver.mkfs(dev(&p, true), &o).unwrap();
        let f = Command::new("fsck.vfat")
            .args(["-n", s(&p)])
            .output()
            .unwrap();
        assert!(
            f.status.success(),
            "{ty}: {}",
            String::from_utf8_lossy(&f.stdout)
        );
        let info = run("minfo", &["-i", s(&p), "::"]);
        assert!(info.contains("BOOT"), "{ty} label: {info}");
        assert!(
            info.to_lowercase().contains("1234abcd"),
            "{ty} serial: {info}"
        );
        assert_eq!(
            FatDriver.probe(&dev(&p, false)).unwrap().as_deref(),
            Some("vfat")
        );
    }
}

#[test]
fn garbage_and_truncated_fat_images_are_errors_not_panics() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.img");
    let mut x = 12345u64;
    let junk: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&p, &junk).unwrap();
    assert_eq!(FatDriver.probe(&dev(&p, false)).unwrap(), None);
    let img = image(t.path(), "t.img", "16", 32768);
    let head = std::fs::read(&img).unwrap()[..64 * 1024].to_vec();
    std::fs::write(&img, head).unwrap();
    if let Ok(mut fs) = FatDriver.open(dev(&img, false), false) {
        let _ = fs.read_dir(fs.root());
        let _ = fs.info();
    }
    // Corrupt the BPB's sectors-per-cluster and FAT size fields.
    let img = image(t.path(), "c.img", "32", 100_000);
    let mut b = std::fs::read(&img).unwrap();
    b[13] = 0;
    b[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&img, b).unwrap();
    assert!(FatDriver.open(dev(&img, false), false).is_err());
}
