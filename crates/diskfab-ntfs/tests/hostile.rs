//! Hostile NTFS volumes: corruptions of an mkntfs-made volume (torn records, impossible
//! geometry, random damage to every metadata structure) give errors, never panics or hangs.

use diskfab_fs::{Filesystem, FsDriver};
use diskfab_ntfs::{NtfsDriver, NtfsFs};
use diskfab_storage::{DevRef, Error, MemDev};
use std::process::Command;
use std::sync::Arc;

/// A 2 MiB volume by mkntfs (512-byte clusters, $MFT at 16 KiB) holding /hello.txt (ntfscp).
fn volume() -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("v.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(2 << 20).unwrap();
    let run = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} (ntfs-3g) is required: {e}; run scripts/deps.sh"));
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let p = img.to_str().unwrap();
    run("mkntfs", &["-q", "-F", "-Q", "-c", "512", p]);
    let h = t.path().join("h.txt");
    std::fs::write(&h, "hello\n").unwrap();
    run("ntfscp", &["-q", p, h.to_str().unwrap(), "hello.txt"]);
    std::fs::read(&img).unwrap()
}

fn open(b: Vec<u8>) -> diskfab_storage::Result<NtfsFs> {
    let dev: DevRef = Arc::new(MemDev::from_vec(b, false));
    NtfsFs::open(dev)
}

#[test]
fn the_reference_volume_reads_and_writes_are_refused() {
    let v = volume();
    let dev: DevRef = Arc::new(MemDev::from_vec(v.clone(), false));
    assert_eq!(NtfsDriver.probe(&dev).unwrap().as_deref(), Some("ntfs"));
    let e = NtfsDriver.open(dev, true).err().unwrap();
    assert!(
        matches!(e, Error::ReadOnly(ref m) if m.contains("NTFS is read-only in diskfab")),
        "{e}"
    );
    let mut fs = open(v).unwrap();
    let root = fs.root();
    let ino = fs.lookup(root, b"HELLO.TXT").unwrap().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"hello\n");
    let names: Vec<Vec<u8>> = fs
        .read_dir(root)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b"hello.txt".to_vec()], "system files are hidden");
    assert!(matches!(
        fs.unlink(root, b"hello.txt"),
        Err(Error::ReadOnly(_))
    ));
}

#[test]
fn a_torn_root_record_and_impossible_geometry_are_bad_images() {
    let v = volume();
    // Record 5 (the root) at $MFT (16 KiB) + 5 KiB: break its first sector's check value.
    let mut torn = v.clone();
    torn[16384 + 5 * 1024 + 510] ^= 0xFF;
    let mut fs = open(torn).unwrap();
    let root = fs.root();
    let e = fs.read_dir(root).unwrap_err();
    assert!(
        matches!(e, Error::BadImage(ref m) if m.contains("update sequence")),
        "{e}"
    );
    // $MFT placed past the end of the volume.
    let mut far = v.clone();
    far[0x30..0x38].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(open(far).err().unwrap(), Error::BadImage(_)));
    // A record size that is not a power of two.
    let mut odd = v;
    odd[0x40] = 3;
    assert!(matches!(open(odd).err().unwrap(), Error::BadImage(_)));
}

#[test]
fn random_damage_to_the_metadata_never_panics() {
    let v = volume();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut b = v.clone();
        for _ in 0..(1 + next() % 8) {
            // Boot sector, $MFT records and the first index/data clusters.
            let off = (next() % (320 << 10)) as usize;
            b[off] = next() as u8;
        }
        let mut input = vec![0u8];
        input.extend(&b);
        diskfab_ntfs::fuzz_ntfs(&input);
    }
}
