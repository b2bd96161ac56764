//! VHD (qemu's "vpc") checked against qemu-img: images it made read back exactly and with the
//! size it reports, images we create and write compare equal under qemu (which has no `check`
//! for vpc), hostile footers, headers and block tables are refused without panics or writes.

use diskfab_image::{create, fuzz_vhd, CreateOptions, Format};
use diskfab_storage::Error;
use std::os::unix::fs::FileExt;
use std::path::Path;

mod common;
use common::{read_all, run, s, try_open as open};

fn qemu_size(p: &Path) -> u64 {
    let info: serde_json::Value = serde_json::from_str(&run(
        "qemu-img",
        &["info", "-f", "vpc", "--output=json", s(p)],
    ))
    .unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// The guest contents as qemu reads them.
fn qemu_raw(p: &Path, out: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(out);
    run(
        "qemu-img",
        &["convert", "-f", "vpc", "-O", "raw", s(p), s(out)],
    );
    std::fs::read(out).unwrap()
}

const QEMU_WRITES: [&str; 4] = [
    "write -P 0xab 1M 64k",
    "write -P 0x33 1000 3M",
    "write -P 0x44 7340032 4096",
    "write -P 0x55 0 512",
];

fn qemu_io(fmt: &str, p: &Path, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend_from_slice(&["-c", c]);
    }
    args.push(s(p));
    run("qemu-io", &args);
}

#[test]
fn qemu_made_fixed_and_dynamic_vhd_read_exactly_like_qemu_with_its_size() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("q.raw");
    // 10M rounds up to the CHS geometry (creator "qemu"); force_size keeps the exact size
    // (creator "qem2"); 200G is beyond the CHS maximum.
    for (sub, size, force) in [
        ("fixed", "10M", false),
        ("dynamic", "10M", false),
        ("dynamic", "9000000", false),
        ("fixed", "10M", true),
        ("dynamic", "10M", true),
    ] {
        let p = t.path().join(format!("q-{sub}-{size}-{force}.vhd"));
        let o = format!(
            "subformat={sub},force_size={}",
            if force { "on" } else { "off" }
        );
        run(
            "qemu-img",
            &["create", "-q", "-f", "vpc", "-o", &o, s(&p), size],
        );
        qemu_io("vpc", &p, &QEMU_WRITES);
        let before = std::fs::read(&p).unwrap();
        let img = open(&p, false).unwrap();
        assert_eq!(img.format(), Format::Vhd, "{sub} detected by its footer");
        assert_eq!(
            img.dev().size(),
            qemu_size(&p),
            "{sub} {size} force={force}"
        );
        assert!(read_all(&img) == qemu_raw(&p, &raw), "{sub} {size} {force}");
        let info = img.info().unwrap();
        assert_eq!(info.virtual_size, qemu_size(&p));
        assert_eq!(info.format_specific.unwrap()["type"], sub);
        drop(img);
        assert!(std::fs::read(&p).unwrap() == before, "read-only open wrote");
    }
    // A size beyond the CHS maximum: only the dynamic layout keeps the file small.
    let p = t.path().join("big.vhd");
    run("qemu-img", &["create", "-q", "-f", "vpc", s(&p), "200G"]);
    assert_eq!(open(&p, false).unwrap().dev().size(), qemu_size(&p));
}

fn expected_raw(t: &Path, size: u64, writes: &[(u64, usize, u8)]) -> std::path::PathBuf {
    let e = t.join("expect.raw");
    let _ = std::fs::remove_file(&e);
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", s(&e), &size.to_string()],
    );
    let cmds: Vec<String> = writes
        .iter()
        .map(|(o, n, b)| format!("write -P {b:#x} {o} {n}"))
        .collect();
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io("raw", &e, &refs);
    e
}

#[test]
fn vhd_we_create_and_write_compare_equal_under_qemu() {
    let t = tempfile::tempdir().unwrap();
    let size = 9_999_872u64; // not a multiple of the 2 MiB block
    let writes: [(u64, usize, u8); 5] = [
        (100, 300_000, 0x5a),          // unaligned, crosses sectors
        ((2 << 20) - 700, 5000, 0x6b), // crosses a block boundary
        (9 << 20, 4096, 0x7c),
        (size - 513, 513, 0x11), // the very end
        (150, 10, 0x22),         // overwrite inside an allocated block
    ];
    for fixed in [false, true] {
        let p = t.path().join(format!("w{fixed}.vhd"));
        create(
            &p,
            &CreateOptions {
                format: Format::Vhd,
                size: Some(size),
                fixed,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(qemu_size(&p), size, "qemu sees our exact size");
        let img = open(&p, true).unwrap();
        for &(o, n, b) in &writes {
            img.dev().write_at(&vec![b; n], o).unwrap();
        }
        img.dev().write_at(&[0u8; 8192], 5 << 20).unwrap(); // zeroes allocate nothing
        img.flush().unwrap();
        if !fixed {
            assert!(img.dev().is_zero_hint(4 << 20, 2 << 20).unwrap());
        }
        drop(img);
        let e = expected_raw(t.path(), size, &writes);
        run(
            "qemu-img",
            &["compare", "-q", "-f", "vpc", "-F", "raw", s(&p), s(&e)],
        );
        assert_eq!(qemu_size(&p), size);
        let img = open(&p, false).unwrap();
        assert!(read_all(&img) == std::fs::read(&e).unwrap());
        assert_eq!(img.info().unwrap().virtual_size, size);
        drop(img);
        let r = diskfab_image::check(&p).unwrap();
        assert_eq!((r.format.as_str(), r.exit_code()), ("vpc", 0));
        if !fixed {
            assert_eq!((r.allocated_clusters, r.total_clusters), (3, 5), "{r:?}");
        }
        // qemu writes into our image; we read what it wrote.
        qemu_io("vpc", &p, &["write -P 0x99 6M 70000"]);
        let img = open(&p, false).unwrap();
        assert!(read_all(&img) == qemu_raw(&p, &t.path().join("back.raw")));
    }
}

#[test]
fn vhd_writes_into_qemu_images_and_sector_bitmaps() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("q.vhd");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "force_size=on",
            s(&p),
            "8M",
        ],
    );
    qemu_io("vpc", &p, &["write -P 0xab 1M 64k"]);
    let img = open(&p, true).unwrap();
    img.dev().write_at(&[0xcd; 3000], (1 << 20) + 100).unwrap();
    img.dev().write_at(&[0xef; 3000], 5 << 20).unwrap();
    img.flush().unwrap();
    drop(img);
    let e = expected_raw(
        t.path(),
        8 << 20,
        &[
            (1 << 20, 65536, 0xab),
            ((1 << 20) + 100, 3000, 0xcd),
            (5 << 20, 3000, 0xef),
        ],
    );
    run(
        "qemu-img",
        &["compare", "-q", "-f", "vpc", "-F", "raw", s(&p), s(&e)],
    );
    // Sectors the bitmap does not mark as present read as zeroes (the specification's rule);
    // a write marks its sectors present again.
    let bytes = std::fs::read(&p).unwrap();
    let bat0 = u32::from_be_bytes(bytes[1536..1540].try_into().unwrap()) as u64 * 512;
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    // Sector 2174 (1 MiB + 63 KiB) is the second-to-last sector of the qemu write: bit 6 of
    // bitmap byte 271.
    let (at, byte) = ((1u64 << 20) + 65536 - 1024, bat0 + 271);
    f.write_all_at(&[0xfd], byte).unwrap();
    let img = open(&p, true).unwrap();
    let mut b = vec![0u8; 1024];
    img.dev().read_at(&mut b, at).unwrap();
    assert!(b[..512].iter().all(|&x| x == 0) && b[512..].iter().all(|&x| x == 0xab));
    img.dev().write_at(&[0x42; 10], at).unwrap();
    img.dev().read_at(&mut b, at).unwrap();
    assert_eq!(b[..10], [0x42; 10]);
    assert!(b[10..].iter().all(|&x| x == 0xab));
    drop(img);
    assert_eq!(std::fs::read(&p).unwrap()[byte as usize], 0xff);
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// Rewrites the checksum of the footer (at `at`, 512 bytes) or dynamic header (1024 bytes).
fn fix_sum(p: &Path, at: u64, len: usize, sum_at: usize) {
    let mut b = vec![0u8; len];
    std::fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut b, at)
        .unwrap();
    b[sum_at..sum_at + 4].fill(0);
    let sum = !b.iter().fold(0u32, |a, &x| a.wrapping_add(u32::from(x)));
    patch(p, at + sum_at as u64, &sum.to_be_bytes());
}

fn refused(p: &Path) -> Error {
    let before = std::fs::read(p).unwrap();
    let e = open(p, false).unwrap_err();
    assert_eq!(
        std::fs::read(p).unwrap(),
        before,
        "a refused image was modified"
    );
    assert_eq!(e.exit_code(), 3, "{e}");
    e
}

#[test]
fn hostile_vhd_footers_headers_and_tables_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.vhd");
    run("qemu-img", &["create", "-q", "-f", "vpc", s(&base), "8M"]);
    qemu_io("vpc", &base, &["write -P 1 0 1M", "write -P 2 4M 1M"]);
    let fresh = |name: &str| {
        let p = t.path().join(name);
        std::fs::copy(&base, &p).unwrap();
        p
    };
    let len = std::fs::metadata(&base).unwrap().len();

    // Truncated: the second block (and the trailing footer) are gone.
    let p = fresh("trunc.vhd");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 4096)
        .unwrap();
    assert!(refused(&p).to_string().contains("past the end"));

    // BAT entry pointing past EOF, into the header, or at another block.
    for (name, v) in [("eof.vhd", 0x00ff_ff00u32), ("hdr.vhd", 1), ("dup.vhd", 0)] {
        let p = fresh(name);
        let b = std::fs::read(&p).unwrap();
        let v = if v == 0 {
            u32::from_be_bytes(b[1536..1540].try_into().unwrap())
        } else {
            v
        };
        patch(&p, 1536 + 4 * 2, &v.to_be_bytes());
        refused(&p);
    }

    // Bad footer checksums (both copies) and a bad dynamic header checksum.
    let p = fresh("sum.vhd");
    patch(&p, 100, &[9]);
    patch(&p, len - 512 + 100, &[9]);
    assert!(refused(&p).to_string().contains("checksum"));
    let p = fresh("dynsum.vhd");
    patch(&p, 512 + 40, &[9]);
    assert!(refused(&p).to_string().contains("checksum"));

    // One damaged copy is tolerated: the other is used.
    let p = fresh("one.vhd");
    patch(&p, len - 512 + 100, &[9]);
    assert!(open(&p, false).is_ok());
    let p = fresh("other.vhd");
    patch(&p, 100, &[9]);
    assert!(open(&p, false).is_ok());

    // Absurd sizes, valid checksums: current size 2^60, block table too small, huge table.
    let p = fresh("size.vhd");
    for at in [0, len - 512] {
        patch(&p, at + 28, b"win ");
        patch(&p, at + 48, &(1u64 << 60).to_be_bytes());
        fix_sum(&p, at, 512, 64);
    }
    refused(&p);
    let p = fresh("small.vhd");
    patch(&p, 512 + 28, &1u32.to_be_bytes());
    fix_sum(&p, 512, 1024, 36);
    refused(&p);
    let p = fresh("bs.vhd");
    patch(&p, 512 + 32, &3u32.to_be_bytes());
    fix_sum(&p, 512, 1024, 36);
    refused(&p);

    // Differencing disks are refused as unsupported.
    let p = fresh("diff.vhd");
    for at in [0, len - 512] {
        patch(&p, at + 60, &4u32.to_be_bytes());
        fix_sum(&p, at, 512, 64);
    }
    let e = refused(&p);
    assert!(matches!(e, Error::Unsupported(_)), "{e}");

    // A fixed footer claiming more data than the file has.
    let f = t.path().join("f.vhd");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            s(&f),
            "1M",
        ],
    );
    let flen = std::fs::metadata(&f).unwrap().len();
    patch(&f, flen - 512 + 28, b"win ");
    patch(&f, flen - 512 + 48, &(64u64 << 20).to_be_bytes());
    fix_sum(&f, flen - 512, 512, 64);
    // Not probed as VHD (the footer does not fit the file), so it opens as raw.
    assert_eq!(open(&f, false).unwrap().format(), Format::Raw);

    // A file shorter than a footer.
    let p = t.path().join("tiny.vhd");
    std::fs::write(&p, b"conectix").unwrap();
    refused(&p);
}

#[test]
fn virtual_size_agrees_with_qemu_for_every_creator_and_geometry() {
    let t = tempfile::tempdir().unwrap();
    for sub in ["fixed", "dynamic"] {
        let base = t.path().join(format!("{sub}.vhd"));
        let o = format!("subformat={sub}");
        run(
            "qemu-img",
            &["create", "-q", "-f", "vpc", "-o", &o, s(&base), "10M"],
        );
        let len = std::fs::metadata(&base).unwrap().len();
        let footers: &[u64] = if sub == "fixed" {
            &[len - 512]
        } else {
            &[0, len - 512]
        };
        for creator in ["qemu", "vpc ", "win ", "vs  ", "qem2", "d2v ", "xyz "] {
            for (c, h, sec) in [(302u16, 4u8, 17u8), (65535, 16, 255), (100, 4, 17)] {
                let p = t.path().join("p.vhd");
                std::fs::copy(&base, &p).unwrap();
                for &at in footers {
                    patch(&p, at + 28, creator.as_bytes());
                    patch(&p, at + 48, &(10u64 << 20).to_be_bytes());
                    patch(&p, at + 56, &[(c >> 8) as u8, c as u8, h, sec]);
                    fix_sum(&p, at, 512, 64);
                }
                let ours = open(&p, false).unwrap().dev().size();
                assert_eq!(ours, qemu_size(&p), "{sub} {creator:?} {c}/{h}/{sec}");
            }
        }
    }
}

#[test]
fn fuzz_entry_point_survives_vhd_mutations() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f.vhd");
    run("qemu-img", &["create", "-q", "-f", "vpc", s(&p), "6M"]);
    qemu_io("vpc", &p, &["write -P 3 0 8k", "write -P 4 4M 8k"]);
    let bytes = std::fs::read(&p).unwrap();
    fuzz_vhd(&bytes);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut m = bytes.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % 2560; // footer copy, header, BAT, first bitmap
            m[i] ^= (x >> 32) as u8 | 1;
        }
        fuzz_vhd(&m);
        m.truncate((x as usize >> 8) % m.len());
        fuzz_vhd(&m);
    }
}
