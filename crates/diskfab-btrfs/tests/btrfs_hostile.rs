//! Hostile btrfs images: corrupt superblocks and nodes, loops and shared children in trees,
//! absurd counts and truncation give clear errors (never a panic or a hang); a damaged copy of
//! DUP metadata or of the primary superblock is read around, as the kernel does.

use diskfab_btrfs::BtrfsDriver;
use diskfab_fs::{path, Filesystem, FsDriver};
use diskfab_storage::{DevRef, Error, FileDev, MemDev};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn open_mem(img: Vec<u8>) -> Result<Box<dyn Filesystem>, Error> {
    let dev: DevRef = Arc::new(MemDev::from_vec(img, false));
    BtrfsDriver.open(dev, false)
}

const NODE: usize = 4096;
const FSID: [u8; 16] = [0x42; 16];

/// A 1 MiB single-device volume whose one system chunk maps logical = physical; the chunk tree
/// root is at 128 KiB with `chunk_level`, the root tree at 256 KiB.
fn volume(chunk_level: u8) -> Vec<u8> {
    let mut img = vec![0u8; 1 << 20];
    let sb = &mut img[65536..65536 + 4096];
    sb[0x20..0x30].copy_from_slice(&FSID);
    sb[0x30..0x38].copy_from_slice(&65536u64.to_le_bytes());
    sb[0x40..0x48].copy_from_slice(b"_BHRfS_M");
    sb[0x48..0x50].copy_from_slice(&1u64.to_le_bytes());
    sb[0x50..0x58].copy_from_slice(&(256u64 << 10).to_le_bytes());
    sb[0x58..0x60].copy_from_slice(&(128u64 << 10).to_le_bytes());
    sb[0x70..0x78].copy_from_slice(&(1u64 << 20).to_le_bytes());
    sb[0x88..0x90].copy_from_slice(&1u64.to_le_bytes());
    sb[0x90..0x94].copy_from_slice(&4096u32.to_le_bytes());
    sb[0x94..0x98].copy_from_slice(&(NODE as u32).to_le_bytes());
    sb[0xc7] = chunk_level;
    sb[0xc9..0xd1].copy_from_slice(&1u64.to_le_bytes());
    let mut a = Vec::new();
    a.extend_from_slice(&256u64.to_le_bytes());
    a.push(228);
    a.extend_from_slice(&0u64.to_le_bytes());
    a.extend_from_slice(&(1u64 << 20).to_le_bytes()); // length
    a.extend_from_slice(&2u64.to_le_bytes()); // owner
    a.extend_from_slice(&65536u64.to_le_bytes()); // stripe_len
    a.extend_from_slice(&2u64.to_le_bytes()); // SYSTEM
    a.extend_from_slice(&[0u8; 12]);
    a.extend_from_slice(&1u16.to_le_bytes());
    a.extend_from_slice(&0u16.to_le_bytes());
    a.extend_from_slice(&1u64.to_le_bytes());
    a.extend_from_slice(&0u64.to_le_bytes());
    a.extend_from_slice(&[0u8; 16]);
    sb[0xa0..0xa4].copy_from_slice(&(a.len() as u32).to_le_bytes());
    sb[0x32b..0x32b + a.len()].copy_from_slice(&a);
    fix_sb(&mut img, 65536);
    img
}

fn fix_sb(img: &mut [u8], at: usize) {
    let c = crc32c(&img[at + 0x20..at + 4096]);
    img[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

/// Writes an interior node at `at` with `ptrs` (first key objectid, child address).
fn interior(img: &mut [u8], at: usize, level: u8, nritems: u32, ptrs: &[(u64, u64)]) {
    let n = &mut img[at..at + NODE];
    n.fill(0);
    n[0x20..0x30].copy_from_slice(&FSID);
    n[0x30..0x38].copy_from_slice(&(at as u64).to_le_bytes());
    n[0x60..0x64].copy_from_slice(&nritems.to_le_bytes());
    n[0x64] = level;
    for (i, (obj, child)) in ptrs.iter().enumerate() {
        let o = 101 + i * 33;
        n[o..o + 8].copy_from_slice(&obj.to_le_bytes());
        n[o + 8] = 216;
        n[o + 17..o + 25].copy_from_slice(&child.to_le_bytes());
    }
    let c = crc32c(&n[0x20..]);
    n[..4].copy_from_slice(&c.to_le_bytes());
}

fn err_of(img: Vec<u8>) -> String {
    match open_mem(img) {
        Ok(_) => panic!("a hostile image opened"),
        Err(e) => {
            assert!(
                matches!(e, Error::BadImage(_) | Error::Unsupported(_)),
                "{e:?}"
            );
            e.to_string()
        }
    }
}

#[test]
fn a_node_pointing_at_itself_is_refused_not_followed() {
    let mut img = volume(1);
    interior(&mut img, 128 << 10, 1, 1, &[(256, 128 << 10)]);
    let e = err_of(img);
    assert!(e.contains("has level 1, its parent says 0"), "{e}");
}

/// Writes a leaf at `at` holding one empty item with key (`obj`, 216, 0).
fn leaf(img: &mut [u8], at: usize, obj: u64) {
    let n = &mut img[at..at + NODE];
    n.fill(0);
    n[0x20..0x30].copy_from_slice(&FSID);
    n[0x30..0x38].copy_from_slice(&(at as u64).to_le_bytes());
    n[0x60..0x64].copy_from_slice(&1u32.to_le_bytes());
    n[101..109].copy_from_slice(&obj.to_le_bytes());
    n[109] = 216;
    n[118..122].copy_from_slice(&((NODE - 101) as u32).to_le_bytes());
    let c = crc32c(&n[0x20..]);
    n[..4].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn two_pointers_to_one_subtree_are_refused_as_keys_outside_the_range() {
    let mut img = volume(1);
    interior(
        &mut img,
        128 << 10,
        1,
        2,
        &[(1, 192 << 10), (300, 192 << 10)],
    );
    leaf(&mut img, 192 << 10, 1);
    let e = err_of(img);
    assert!(e.contains("outside its parent's range"), "{e}");
}

#[test]
fn absurd_item_counts_and_levels_are_refused() {
    let mut img = volume(1);
    interior(&mut img, 128 << 10, 1, 1_000_000, &[]);
    assert!(err_of(img).contains("do not fit"));
    let mut img = volume(9);
    interior(&mut img, 128 << 10, 9, 1, &[(256, 0)]);
    assert!(err_of(img).contains("level 9"));
}

#[test]
fn corrupt_superblocks_truncation_and_unknown_checksums_are_clear_errors() {
    let mut img = volume(0);
    img[65536 + 0x100] ^= 1;
    assert!(err_of(img).contains("checksum mismatch"));
    let mut img = volume(0);
    img[65536 + 0xc4] = 3;
    fix_sb(&mut img, 65536);
    assert!(err_of(img).contains("blake2"));
    let mut img = volume(0);
    img[65536 + 0x94..65536 + 0x98].copy_from_slice(&(1u32 << 30).to_le_bytes());
    fix_sb(&mut img, 65536);
    assert!(err_of(img).contains("node size"));
    let mut img = volume(0);
    img.truncate(70_000);
    assert!(open_mem(img).is_err());
    // No chunk tree node at all (zeroes): a checksum error, not a panic.
    let e = err_of(volume(0));
    assert!(e.contains("checksum mismatch") || e.contains("fsid"), "{e}");
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// A small DUP-metadata image made by mkfs.btrfs -r, and the two physical copies of its
/// FS tree's root leaf.
fn small_image(dir: &Path) -> (std::path::PathBuf, Vec<u64>) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "btrfs-host\n").unwrap();
    let img = dir.join("s.raw");
    run("truncate", &["-s", "128M", img.to_str().unwrap()]);
    run(
        "mkfs.btrfs",
        &[
            "-q",
            "-m",
            "dup",
            "-r",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let dump = run(
        "btrfs",
        &[
            "inspect-internal",
            "dump-tree",
            "-t",
            "fs",
            img.to_str().unwrap(),
        ],
    );
    let leaf = dump
        .lines()
        .find_map(|l| {
            l.strip_prefix("leaf ")
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap()
        .to_string();
    let out = dir.join("leaf");
    let map = run(
        "btrfs-map-logical",
        &[
            "-l",
            &leaf,
            "-b",
            "16384",
            "-o",
            out.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let phys: Vec<u64> = map
        .lines()
        .filter_map(|l| {
            l.split("physical ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(phys.len(), 2, "{map}");
    (img, phys)
}

fn flip(img: &Path, at: u64) {
    let mut b = std::fs::read(img).unwrap();
    b[at as usize + 200] ^= 0xff;
    std::fs::write(img, b).unwrap();
}

fn hostname(img: &Path) -> Result<Vec<u8>, Error> {
    let dev: DevRef = Arc::new(FileDev::open(img, false)?);
    let mut fs = BtrfsDriver.open(dev, false)?;
    let ino = path::resolve(fs.as_mut(), b"/etc/hostname", true)?;
    let mut buf = vec![0u8; 64];
    let n = fs.read(ino, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn a_damaged_dup_copy_is_read_around_and_both_damaged_is_a_checksum_error() {
    let t = tempfile::tempdir().unwrap();
    let (img, phys) = small_image(t.path());
    flip(&img, phys[0]);
    assert_eq!(hostname(&img).unwrap(), b"btrfs-host\n");
    flip(&img, phys[1]);
    let e = hostname(&img).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
}

#[test]
fn a_damaged_primary_superblock_falls_back_to_the_mirror_at_64_mib() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = small_image(t.path());
    flip(&img, 65536);
    assert_eq!(hostname(&img).unwrap(), b"btrfs-host\n");
    flip(&img, 64 << 20);
    let e = hostname(&img).unwrap_err().to_string();
    assert!(
        e.contains("superblock") && e.contains("checksum mismatch"),
        "{e}"
    );
}

#[test]
fn writable_opens_and_every_write_are_refused_with_the_read_only_message() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = small_image(t.path());
    let dev: DevRef = Arc::new(FileDev::open(&img, true).unwrap());
    let e = BtrfsDriver.open(dev.clone(), true).err().unwrap();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(diskfab_btrfs::READ_ONLY));
    let mut fs = BtrfsDriver.open(dev, false).unwrap();
    let root = fs.root();
    let nn = diskfab_fs::NewNode::root(0o644);
    for e in [
        fs.create(root, b"x", &nn).err(),
        fs.mkdir(root, b"x", &nn).err(),
        fs.unlink(root, b"etc").err(),
        fs.write(root, 0, b"x").err(),
        fs.set_xattr(root, b"user.x", b"y").err(),
    ] {
        assert!(e.unwrap().to_string().contains(diskfab_btrfs::READ_ONLY));
    }
}

/// A deterministic stand-in for a fuzz campaign in every test run: thousands of bit flips,
/// byte stores and truncations of the committed seeds through the fuzz entry point never panic.
#[test]
fn mutated_fuzz_seeds_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/btrfs");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert_eq!(seeds.len(), 7);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed = 0;
    for s in &seeds {
        parsed += diskfab_btrfs::fuzz_btrfs(s);
        for _ in 0..300 {
            let mut m = s.clone();
            for _ in 0..1 + next() % 8 {
                let i = 1 + (next() as usize) % (m.len() - 1);
                match next() % 3 {
                    0 => m[i] ^= 1 << (next() % 8),
                    1 => m[i] = next() as u8,
                    _ => m.truncate(i.max(2)),
                }
                if m.len() < 2 {
                    break;
                }
            }
            diskfab_btrfs::fuzz_btrfs(&m);
        }
    }
    assert!(parsed >= 7, "the seeds parse ({parsed})");
}
