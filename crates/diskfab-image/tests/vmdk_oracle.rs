//! VMDK checked against qemu-img: monolithicSparse, streamOptimized and monolithicFlat images
//! it made read back exactly; images we create and write pass `qemu-img check` and compare
//! equal; extent paths stay in the descriptor's directory; hostile headers, tables and grains
//! are refused without panics or writes.

use diskfab_image::{create, fuzz_vmdk, CreateOptions, Format};
use diskfab_storage::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod common;
use common::{read_all, run, s, try_open as open};

fn qemu_io(fmt: &str, p: &Path, cmds: &[String]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend_from_slice(&["-c", c]);
    }
    args.push(s(p));
    run("qemu-io", &args);
}

/// The guest contents as qemu reads them.
fn qemu_raw(p: &Path) -> Vec<u8> {
    let out = p.with_extension("qraw");
    let _ = std::fs::remove_file(&out);
    run("qemu-img", &["convert", "-O", "raw", s(p), s(&out)]);
    std::fs::read(out).unwrap()
}

/// A raw file of `size` bytes with `writes` (offset, length, pattern) made by qemu-io.
fn raw_with(dir: &Path, name: &str, size: u64, writes: &[(u64, usize, u8)]) -> PathBuf {
    let e = dir.join(name);
    let _ = std::fs::remove_file(&e);
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", s(&e), &size.to_string()],
    );
    let cmds: Vec<String> = writes
        .iter()
        .map(|(o, n, b)| format!("write -P {b:#x} {o} {n}"))
        .collect();
    qemu_io("raw", &e, &cmds);
    e
}

const SIZE: u64 = (12 << 20) + 3 * 512; // not a multiple of the grain
const WRITES: [(u64, usize, u8); 5] = [
    (1 << 20, 65536, 0xab),
    (1000, 3 << 20, 0x33),
    (5_000_000, 3000, 0x12),
    (SIZE - 700, 700, 0x44),
    (11 << 20, 300, 0x00),
];

#[test]
fn qemu_made_vmdk_subformats_read_exactly_like_qemu() {
    let t = tempfile::tempdir().unwrap();
    let src = raw_with(t.path(), "src.raw", SIZE, &WRITES);
    let want = std::fs::read(&src).unwrap();
    for sub in ["monolithicSparse", "streamOptimized", "monolithicFlat"] {
        let p = t.path().join(format!("{sub}.vmdk"));
        run(
            "qemu-img",
            &[
                "convert",
                "-O",
                "vmdk",
                "-o",
                &format!("subformat={sub}"),
                s(&src),
                s(&p),
            ],
        );
        let before = std::fs::read(&p).unwrap();
        let img = open(&p, false).unwrap();
        assert_eq!(img.format(), Format::Vmdk);
        assert_eq!(img.dev().size(), SIZE, "{sub}");
        assert!(read_all(&img) == want, "{sub}");
        assert!(read_all(&img) == qemu_raw(&p), "{sub}");
        let info = img.info().unwrap();
        assert_eq!(info.format_specific.unwrap()["create_type"], sub);
        drop(img);
        assert!(std::fs::read(&p).unwrap() == before, "read-only open wrote");
    }
    // Descriptors naming sparse and flat extent files; written through the descriptor.
    for sub in ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] {
        let p = t.path().join(format!("{sub}.vmdk"));
        run(
            "qemu-img",
            &[
                "convert",
                "-O",
                "vmdk",
                "-o",
                &format!("subformat={sub}"),
                s(&src),
                s(&p),
            ],
        );
        let img = open(&p, true).unwrap();
        assert!(read_all(&img) == want, "{sub}");
        img.dev().write_at(&[0x3c; 100_000], 6 << 20).unwrap();
        img.flush().unwrap();
        drop(img);
        let mut all = WRITES.to_vec();
        all.push((6 << 20, 100_000, 0x3c));
        let e = raw_with(t.path(), "e.raw", SIZE, &all);
        run("qemu-img", &["check", "-q", s(&p)]);
        run("qemu-img", &["compare", "-q", "-F", "raw", s(&p), s(&e)]);
    }
    // Written in place by qemu (grain tables filled as it goes), with zeroed grains.
    let p = t.path().join("z.vmdk");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "zeroed_grain=on",
            s(&p),
            "16M",
        ],
    );
    qemu_io(
        "vmdk",
        &p,
        &[
            "write -P 0x61 0 256k".into(),
            "write -z 64k 64k".into(),
            "write -P 0x62 9M 100k".into(),
        ],
    );
    let img = open(&p, false).unwrap();
    assert!(read_all(&img) == qemu_raw(&p));
    assert!(img.dev().is_zero_hint(64 << 10, 64 << 10).unwrap());
}

#[test]
fn sparse_vmdk_we_create_and_write_pass_qemu_img_check_and_compare() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("w.vmdk");
    create(
        &p,
        &CreateOptions {
            format: Format::Vmdk,
            size: Some(SIZE),
            ..Default::default()
        },
    )
    .unwrap();
    run("qemu-img", &["check", "-q", s(&p)]);
    let cid = |p: &Path| {
        let info: serde_json::Value =
            serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(p)])).unwrap();
        info["format-specific"]["data"]["cid"].as_u64().unwrap()
    };
    let cid0 = cid(&p);
    let img = open(&p, true).unwrap();
    for &(o, n, b) in &WRITES {
        img.dev().write_at(&vec![b; n], o).unwrap();
    }
    img.dev().write_at(&[0x21; 10], 1 << 20).unwrap(); // into an allocated grain
    img.flush().unwrap();
    assert!(img.dev().is_zero_hint(8 << 20, 1 << 20).unwrap());
    drop(img);
    let mut all = WRITES.to_vec();
    all.push((1 << 20, 10, 0x21));
    let e = raw_with(t.path(), "e.raw", SIZE, &all);
    run("qemu-img", &["check", "-q", s(&p)]);
    run("qemu-img", &["compare", "-q", "-F", "raw", s(&p), s(&e)]);
    assert_ne!(cid(&p), cid0, "the content id changes with the content");
    let info: serde_json::Value =
        serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(&p)])).unwrap();
    assert_eq!(info["virtual-size"], SIZE);
    // Reopened: grains are appended after what is there; qemu writes in, we read it back.
    let img = open(&p, true).unwrap();
    img.dev().write_at(&[0x77; 70000], 7 << 20).unwrap();
    drop(img);
    qemu_io("vmdk", &p, &["write -P 0x78 10M 5000".into()]);
    run("qemu-img", &["check", "-q", s(&p)]);
    let img = open(&p, false).unwrap();
    assert!(read_all(&img) == qemu_raw(&p));
    let r = diskfab_image::check(&p).unwrap();
    assert_eq!((r.format.as_str(), r.exit_code()), ("vmdk", 0));
    assert_eq!(r.total_clusters, SIZE.div_ceil(65536));
    assert!(r.allocated_clusters > 50, "{r:?}");
}

#[test]
fn stream_optimized_vmdk_is_written_once_in_order_and_passes_qemu_img_check() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("s.vmdk");
    let opts = CreateOptions {
        format: Format::Vmdk,
        size: Some(SIZE),
        stream_optimized: true,
        ..Default::default()
    };
    create(&p, &opts).unwrap();
    run("qemu-img", &["check", "-q", s(&p)]);
    let src = raw_with(t.path(), "src.raw", SIZE, &WRITES);
    let want = std::fs::read(&src).unwrap();
    let img = open(&p, true).unwrap();
    let d = img.dev();
    // In order, in odd-sized pieces, with a flush (a complete, valid file) half-way.
    let mut off = 0usize;
    for (i, n) in [100_000usize, 1 << 20, 33, 4 << 20]
        .iter()
        .cycle()
        .enumerate()
    {
        if off >= want.len() {
            break;
        }
        let end = (off + n).min(want.len());
        d.write_at(&want[off..end], off as u64).unwrap();
        off = end;
        if i == 3 {
            img.flush().unwrap();
            run("qemu-img", &["check", "-q", s(&p)]);
        }
    }
    let e = d.write_at(&[1; 512], 0).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    img.flush().unwrap();
    drop(img);
    run("qemu-img", &["check", "-q", s(&p)]);
    run("qemu-img", &["compare", "-q", "-F", "raw", s(&p), s(&src)]);
    let img = open(&p, false).unwrap();
    assert!(read_all(&img) == want);
    drop(img);
    // Once it holds data, it cannot be opened for writing again.
    let e = open(&p, true).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

fn descriptor(dir: &Path, name: &str, extent_file: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n\
             createType=\"monolithicFlat\"\nRW 2048 FLAT \"{extent_file}\" 0\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn flat_vmdk_extents_stay_next_to_the_descriptor() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    std::fs::create_dir(&dir).unwrap();
    let src = raw_with(t.path(), "src.raw", 4 << 20, &[(4096, 8192, 0x5e)]);
    let p = dir.join("flat.vmdk");
    run(
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            s(&src),
            s(&p),
        ],
    );
    // Written through the descriptor: the flat file changes, qemu sees it.
    let img = open(&p, true).unwrap();
    img.dev().write_at(&[0x6f; 1000], 3 << 20).unwrap();
    img.flush().unwrap();
    drop(img);
    let e = raw_with(
        t.path(),
        "e.raw",
        4 << 20,
        &[(4096, 8192, 0x5e), (3 << 20, 1000, 0x6f)],
    );
    run("qemu-img", &["compare", "-q", "-F", "raw", s(&p), s(&e)]);

    std::fs::write(t.path().join("secret"), vec![7u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink(t.path().join("secret"), dir.join("link")).unwrap();
    let fifo = std::ffi::CString::new(s(&dir.join("fifo"))).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    // A plain file next to the descriptor not named *.vmdk is raw bytes: refused by policy.
    std::fs::write(dir.join("notes"), vec![9u8; 1 << 20]).unwrap();
    for (name, extent, code) in [
        ("abs.vmdk", s(&t.path().join("secret")).to_string(), 3),
        ("up.vmdk", "../secret".to_string(), 3),
        ("sub.vmdk", "x/../../secret".to_string(), 3),
        ("link.vmdk", "link".to_string(), 3),
        ("fifo.vmdk", "fifo".to_string(), 6), // must not block
        ("notes.vmdk", "notes".to_string(), 6),
        ("self.vmdk", "self.vmdk".to_string(), 3),
        ("missing.vmdk", "nothere".to_string(), 3),
        ("short.vmdk", "flat.vmdk".to_string(), 3), // the 512-byte descriptor is not 1 MiB
    ] {
        let d = descriptor(&dir, name, &extent);
        let e = open(&d, false).unwrap_err();
        assert_eq!(e.exit_code(), code, "{name}: {e}");
    }
    // A large file that starts like a descriptor is a raw disk (its guest wrote that text).
    let big = dir.join("guest.img");
    let mut b = std::fs::read(dir.join("abs.vmdk")).unwrap();
    b.resize(1 << 20, 0);
    std::fs::write(&big, b).unwrap();
    assert_eq!(open(&big, false).unwrap().format(), Format::Raw);
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Opens `p` and reads it all; the error (there must be one) must be a bad image, and the
/// file must not change.
fn refused(p: &Path) -> Error {
    let before = std::fs::read(p).unwrap();
    let e = match open(p, false) {
        Err(e) => e,
        Ok(img) => {
            let d = img.dev();
            let mut buf = vec![0u8; d.size() as usize];
            d.read_at(&mut buf, 0).unwrap_err()
        }
    };
    assert_eq!(
        std::fs::read(p).unwrap(),
        before,
        "a refused image was modified"
    );
    assert_eq!(e.exit_code(), 3, "{e}");
    e
}

#[test]
fn hostile_vmdk_headers_tables_and_grains_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = raw_with(
        t.path(),
        "src.raw",
        8 << 20,
        &[(0, 1 << 20, 0x11), (6 << 20, 4096, 0x22)],
    );
    let sparse = t.path().join("sp.vmdk");
    let stream = t.path().join("st.vmdk");
    run("qemu-img", &["convert", "-O", "vmdk", s(&src), s(&sparse)]);
    let so = ["convert", "-O", "vmdk", "-o", "subformat=streamOptimized"];
    run("qemu-img", &[&so[..], &[s(&src), s(&stream)]].concat());
    let sp = std::fs::read(&sparse).unwrap();
    let fresh = |from: &Path, name: &str| {
        let p = t.path().join(name);
        std::fs::copy(from, &p).unwrap();
        p
    };
    let gd = le32(&sp, 56) as u64 * 512;
    let gt = le32(&sp, gd as usize) as u64 * 512;

    // Truncated: grains (and perhaps tables) past the end of the file.
    let p = fresh(&sparse, "trunc.vmdk");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(sp.len() as u64 / 2)
        .unwrap();
    refused(&p);
    // A grain table entry past EOF, one into the header, a GD entry past EOF.
    let p = fresh(&sparse, "gte.vmdk");
    patch(&p, gt, &0x00ff_ffffu32.to_le_bytes());
    assert!(refused(&p).to_string().contains("grain"));
    let p = fresh(&sparse, "gthdr.vmdk");
    patch(&p, gt, &2u32.to_le_bytes());
    refused(&p);
    let p = fresh(&sparse, "gde.vmdk");
    patch(&p, gd, &0x0fff_ffffu32.to_le_bytes());
    refused(&p);
    // Two guest grains sharing one host grain, or redundant tables that disagree: readable,
    // but never written in place.
    let rgt = le32(&sp, le32(&sp, 48) as usize * 512) as u64 * 512;
    let first = le32(&sp, gt as usize);
    let p = fresh(&sparse, "dupgrain.vmdk");
    patch(&p, gt + 4 * 40, &first.to_le_bytes());
    patch(&p, rgt + 4 * 40, &first.to_le_bytes());
    assert!(open(&p, false).is_ok());
    let e = open(&p, true).unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
    let p = fresh(&sparse, "rgt.vmdk");
    patch(&p, rgt + 4 * 41, &first.to_le_bytes());
    assert!(open(&p, true)
        .unwrap_err()
        .to_string()
        .contains("redundant"));
    // Absurd capacity and grain sizes, mangled newline characters, unknown versions.
    for (name, off, val) in [
        ("cap.vmdk", 12, &u64::MAX.to_le_bytes()[..]),
        ("cap0.vmdk", 12, &0u64.to_le_bytes()[..]),
        ("grain.vmdk", 20, &3u64.to_le_bytes()[..]),
        ("grainbig.vmdk", 20, &(1u64 << 40).to_le_bytes()[..]),
        ("gtes.vmdk", 44, &7u32.to_le_bytes()[..]),
        ("nl.vmdk", 75, b"\n"),
        ("ver.vmdk", 4, &9u32.to_le_bytes()[..]),
    ] {
        let p = fresh(&sparse, name);
        patch(&p, off, val);
        refused(&p);
    }

    // Stream-optimized: a corrupt compressed grain, a grain marker for the wrong sector, a
    // compressed size beyond the file.
    let st = std::fs::read(&stream).unwrap();
    let first = le32(&st, 64) as u64 * 512; // overhead: where qemu puts the first grain
    let p = fresh(&stream, "deflate.vmdk");
    patch(&p, first + 20, &[0xff; 16]);
    refused(&p);
    let p = fresh(&stream, "lba.vmdk");
    patch(&p, first, &12345u64.to_le_bytes());
    refused(&p);
    let p = fresh(&stream, "csize.vmdk");
    patch(&p, first + 8, &u32::MAX.to_le_bytes());
    refused(&p);
    // A stream whose header says "GD at end" but whose footer is missing.
    let ours = t.path().join("ours.vmdk");
    create(
        &ours,
        &CreateOptions {
            format: Format::Vmdk,
            size: Some(8 << 20),
            stream_optimized: true,
            ..Default::default()
        },
    )
    .unwrap();
    let p = fresh(&ours, "nofooter.vmdk");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 512)
        .unwrap();
    assert!(refused(&p).to_string().contains("footer"));
    // A tiny file with the magic.
    let p = t.path().join("tiny.vmdk");
    std::fs::write(&p, b"KDMV").unwrap();
    refused(&p);
}

#[test]
fn fuzz_entry_point_survives_vmdk_mutations() {
    let t = tempfile::tempdir().unwrap();
    let src = raw_with(
        t.path(),
        "src.raw",
        4 << 20,
        &[(0, 8192, 3), (3 << 20, 8192, 4)],
    );
    for sub in ["monolithicSparse", "streamOptimized"] {
        let p = t.path().join(format!("{sub}.vmdk"));
        run(
            "qemu-img",
            &[
                "convert",
                "-O",
                "vmdk",
                "-o",
                &format!("subformat={sub}"),
                s(&src),
                s(&p),
            ],
        );
        let bytes = std::fs::read(&p).unwrap();
        fuzz_vmdk(&bytes);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut m = bytes.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len().min(0x11000);
                m[i] ^= (x >> 32) as u8 | 1;
            }
            fuzz_vmdk(&m);
            m.truncate((x as usize >> 8) % m.len());
            fuzz_vmdk(&m);
        }
    }
}
