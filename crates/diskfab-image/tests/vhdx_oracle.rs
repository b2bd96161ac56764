//! VHDX checked against qemu-img: images it made (dynamic, fixed, several block sizes, data
//! written by qemu-io) read back exactly like `qemu-img convert -O raw`; images we create and
//! write pass `qemu-img check` and `qemu-img compare`; hostile headers, region tables, metadata
//! and block tables are refused with the right error class, without panics or writes.

use diskfab_image::vhdx::crc32c;
use diskfab_image::{create, fuzz_vhdx, CreateOptions, Format};
use diskfab_storage::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod common;
use common::{read_all, run, s, try_open as open};

/// The guest contents as qemu reads them.
fn qemu_raw(p: &Path, out: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(out);
    run(
        "qemu-img",
        &["convert", "-f", "vhdx", "-O", "raw", s(p), s(out)],
    );
    std::fs::read(out).unwrap()
}

fn qemu_io(p: &Path, cmds: &[&str]) {
    let mut args = vec!["-f", "vhdx"];
    for c in cmds {
        args.extend_from_slice(&["-c", c]);
    }
    args.push(s(p));
    run("qemu-io", &args);
}

const QEMU_WRITES: [&str; 5] = [
    "write -P 0xab 1M 64k",
    "write -P 0x33 1000 3M",
    "write -P 0x44 9437184 4096",
    "write -P 0x55 0 512",
    "write -P 0x66 20970496 1024",
];

#[test]
fn qemu_made_vhdx_of_every_shape_reads_exactly_like_qemu() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("q.raw");
    // 21M: the last block is partial with every block size.
    for o in [
        "subformat=dynamic",
        "subformat=dynamic,block_size=1M",
        "subformat=dynamic,block_size=32M",
        "subformat=dynamic,block_state_zero=off",
        "subformat=fixed,block_size=1M",
        "subformat=fixed",
    ] {
        let p = t.path().join("q.vhdx");
        let _ = std::fs::remove_file(&p);
        run(
            "qemu-img",
            &["create", "-q", "-f", "vhdx", "-o", o, s(&p), "21M"],
        );
        qemu_io(&p, &QEMU_WRITES);
        let before = std::fs::read(&p).unwrap();
        let img = open(&p, false).unwrap();
        assert_eq!(img.format(), Format::Vhdx, "{o}");
        assert_eq!(img.dev().size(), 21 << 20, "{o}");
        assert!(read_all(&img) == qemu_raw(&p, &raw), "{o}: contents differ");
        let info = img.info().unwrap();
        let fs = info.format_specific.unwrap();
        let fixed = o.contains("fixed");
        assert_eq!(fs["type"], if fixed { "fixed" } else { "dynamic" }, "{o}");
        drop(img);
        assert!(std::fs::read(&p).unwrap() == before, "read-only open wrote");
    }
}

/// A raw file of `size` bytes holding `writes` (offset, length, byte).
fn expected_raw(t: &Path, size: u64, writes: &[(u64, usize, u8)]) -> PathBuf {
    let p = t.join("expected.raw");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    for &(off, len, b) in writes {
        f.write_all_at(&vec![b; len], off).unwrap();
    }
    p
}

fn header_sequences(p: &Path) -> [u64; 2] {
    let f = std::fs::File::open(p).unwrap();
    [64u64 << 10, 128 << 10].map(|o| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, o + 8).unwrap();
        u64::from_le_bytes(b)
    })
}

#[test]
fn vhdx_we_create_and_write_pass_qemu_check_and_compare() {
    let t = tempfile::tempdir().unwrap();
    let size = 70u64 << 20;
    // Unaligned, block-crossing, sector-sized, zero (skipped when unallocated) and tail writes.
    let writes: [(u64, usize, u8); 6] = [
        (0, 512, 0x11),
        (1_048_000, 3 << 20, 0x22),
        (33 << 20, 4096, 0x33),
        (40 << 20, 1 << 20, 0),
        (size - 700, 700, 0x44),
        (1_048_576 + 5, 10, 0x55),
    ];
    let exp = expected_raw(t.path(), size, &writes);
    for (fixed, bs) in [(false, None), (false, Some(1 << 20)), (true, Some(2 << 20))] {
        let p = t.path().join(format!("ours-{fixed}-{bs:?}.vhdx"));
        create(
            &p,
            &CreateOptions {
                format: Format::Vhdx,
                size: Some(size),
                fixed,
                cluster_size: bs,
                ..Default::default()
            },
        )
        .unwrap();
        run("qemu-img", &["check", "-q", "-f", "vhdx", s(&p)]);
        let seq0 = header_sequences(&p);
        for half in [0..3, 3..6] {
            let img = open(&p, true).unwrap();
            for &(off, len, b) in &writes[half] {
                img.dev().write_at(&vec![b; len], off).unwrap();
            }
            img.flush().unwrap();
        }
        // Two write sessions: each moved both headers two sequence numbers on.
        let seq = header_sequences(&p);
        assert_eq!(seq.iter().max().unwrap() - seq0.iter().max().unwrap(), 4);
        run("qemu-img", &["check", "-q", "-f", "vhdx", s(&p)]);
        run(
            "qemu-img",
            &["compare", "-q", "-f", "vhdx", "-F", "raw", s(&p), s(&exp)],
        );
        assert!(read_all(&open(&p, false).unwrap()) == std::fs::read(&exp).unwrap());
    }
}

#[test]
fn our_writes_into_qemu_made_vhdx_pass_qemu_check_and_compare() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("q.raw");
    for o in [
        "block_size=1M",
        "subformat=fixed,block_size=1M",
        "block_size=8M",
    ] {
        let p = t.path().join("q.vhdx");
        let _ = std::fs::remove_file(&p);
        run(
            "qemu-img",
            &["create", "-q", "-f", "vhdx", "-o", o, s(&p), "21M"],
        );
        qemu_io(&p, &QEMU_WRITES);
        let mut want = qemu_raw(&p, &raw);
        let img = open(&p, true).unwrap();
        for (off, len, b) in [(3_000_000u64, 2 << 20, 0x77u8), (17 << 20, 512, 0x88)] {
            img.dev().write_at(&vec![b; len], off).unwrap();
            want[off as usize..off as usize + len].fill(b);
        }
        img.flush().unwrap();
        drop(img);
        run("qemu-img", &["check", "-q", "-f", "vhdx", s(&p)]);
        assert!(qemu_raw(&p, &raw) == want, "{o}");
    }
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// Recomputes the CRC-32C of the structure of `len` bytes at `at` (checksum at `at + 4`).
fn fix_crc(p: &Path, at: u64, len: usize) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, at).unwrap();
    b[4..8].fill(0);
    f.write_all_at(&crc32c(&b).to_le_bytes(), at + 4).unwrap();
}

fn refused(p: &Path) -> Error {
    let before = std::fs::read(p).unwrap();
    let e = open(p, true).expect_err("hostile image opened");
    assert!(std::fs::read(p).unwrap() == before, "refusal wrote");
    e
}

/// Our layout: headers at 64/128 KiB, region tables at 192/256 KiB, metadata at 2 MiB (items
/// from +64 KiB: file parameters, size, page 83, logical, physical), BAT at 3 MiB.
fn fresh(t: &Path, name: &str) -> PathBuf {
    let p = t.join(name);
    create(
        &p,
        &CreateOptions {
            format: Format::Vhdx,
            size: Some(8 << 20),
            cluster_size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let img = open(&p, true).unwrap();
    img.dev().write_at(&[9u8; 4096], 0).unwrap();
    img.flush().unwrap();
    p
}

const META: u64 = 2 << 20;
const BAT: u64 = 3 << 20;

#[test]
fn hostile_vhdx_headers_regions_metadata_and_tables_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let bad = |e: Error, what: &str| assert!(matches!(e, Error::BadImage(_)), "{what}: {e}");
    let unsup = |e: Error, what: &str| assert!(matches!(e, Error::Unsupported(_)), "{what}: {e}");

    // One damaged header: the other one is used; both damaged: refused.
    let p = fresh(t.path(), "h.vhdx");
    let seqs = header_sequences(&p);
    let newer = if seqs[0] > seqs[1] {
        64u64 << 10
    } else {
        128 << 10
    };
    patch(&p, newer + 100, &[1]);
    assert_eq!(read_all(&open(&p, false).unwrap())[..4096], [9u8; 4096]);
    patch(&p, (64 << 10) + (128 << 10) - newer + 100, &[1]);
    bad(refused(&p), "both headers damaged");

    // A log GUID (valid checksum) but an empty log: no valid sequence, corrupt (MS-VHDX 2.3.3).
    let p = fresh(t.path(), "log.vhdx");
    for h in [64u64 << 10, 128 << 10] {
        patch(&p, h + 48, &[0xaa; 16]);
        fix_crc(&p, h, 4096);
    }
    let e = refused(&p);
    assert!(e.to_string().contains("no valid sequence"), "{e}");
    bad(e, "pending log without entries");

    // Both region tables damaged; an unknown required region.
    let p = fresh(t.path(), "r.vhdx");
    patch(&p, (192 << 10) + 20, &[1]);
    assert!(open(&p, false).is_ok(), "second region table is used");
    patch(&p, (256 << 10) + 20, &[1]);
    bad(refused(&p), "both region tables damaged");
    let p = fresh(t.path(), "r2.vhdx");
    for r in [192u64 << 10, 256 << 10] {
        patch(&p, r + 8, &3u32.to_le_bytes());
        patch(&p, r + 16 + 64, &[0x42; 16]);
        patch(&p, r + 16 + 64 + 16, &(5u64 << 20).to_le_bytes());
        patch(&p, r + 16 + 64 + 24, &(1u32 << 20).to_le_bytes());
        patch(&p, r + 16 + 64 + 28, &1u32.to_le_bytes());
        fix_crc(&p, r, 64 << 10);
    }
    unsup(refused(&p), "unknown required region");

    // Metadata: differencing (has-parent bit), bad block size, size beyond 64 TiB, item out of
    // bounds.
    let fp = META + (64 << 10);
    let cases: [(&str, u64, Vec<u8>, bool); 5] = [
        ("has parent", fp + 4, 2u32.to_le_bytes().to_vec(), false),
        (
            "block size 3 MiB",
            fp,
            (3u32 << 20).to_le_bytes().to_vec(),
            true,
        ),
        (
            "size 65 TiB",
            fp + 8,
            (65u64 << 40).to_le_bytes().to_vec(),
            true,
        ),
        (
            "logical sector 1000",
            fp + 32,
            1000u32.to_le_bytes().to_vec(),
            true,
        ),
        (
            "item past region",
            META + 32 + 16,
            (2u32 << 20).to_le_bytes().to_vec(),
            true,
        ),
    ];
    for (what, off, bytes, is_bad) in cases {
        let p = fresh(t.path(), "m.vhdx");
        patch(&p, off, &bytes);
        let e = refused(&p);
        if is_bad {
            bad(e, what);
        } else {
            assert!(e.to_string().contains("differencing"), "{e}");
            unsup(e, what);
        }
        std::fs::remove_file(&p).unwrap();
    }

    // BAT: past the end of the file, over the metadata, two blocks in one place, partially
    // present, an unknown state.
    let len = std::fs::metadata(fresh(t.path(), "len.vhdx"))
        .unwrap()
        .len();
    let cases: [(&str, u64); 5] = [
        ("past the end", len | 6),
        ("over the metadata", META | 6),
        ("same place as block 0", 4 << 20 | 6),
        ("partially present", 5 << 20 | 7),
        ("state 4", 4),
    ];
    for (what, e) in cases {
        let p = fresh(t.path(), "b.vhdx");
        patch(&p, BAT + 8, &e.to_le_bytes());
        bad(refused(&p), what);
        std::fs::remove_file(&p).unwrap();
    }

    // Truncated and empty files.
    let p = fresh(t.path(), "trunc.vhdx");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    bad(refused(&p), "truncated");
}

#[test]
fn fuzz_entry_point_survives_vhdx_mutations() {
    let t = tempfile::tempdir().unwrap();
    let p = fresh(t.path(), "f.vhdx");
    let img = std::fs::read(&p).unwrap();
    // The fuzz input layout: the first 320 KiB, then the first 64 KiB of each following MiB.
    let mut seed = img[..320 << 10].to_vec();
    for m in 1..5 {
        seed.extend_from_slice(&img[m << 20..(m << 20) + (64 << 10)]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut d = seed.clone();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % d.len();
            d[i] = (x >> 32) as u8;
        }
        fuzz_vhdx(&d);
    }
    fuzz_vhdx(&seed[..1000]);
    fuzz_vhdx(&[]);
}
