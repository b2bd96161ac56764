//! The qcow2/raw layer checked against QEMU: images made by qemu-img read back exactly, images we
//! write pass `qemu-img check` and `qemu-img compare`, and hostile images are refused.

use diskfab_image::{clone_many, create, BackingGate, CreateOptions, Format, Image, OpenOptions};
use diskfab_storage::Error;
use std::path::Path;

mod common;
use common::{run, s};

/// A 3 MiB raw file with random data, a hole and a zeroed range.
fn pattern(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut data = vec![0u8; 3 << 20];
    let mut x = 0x1234_5678u64;
    for (i, b) in data.iter_mut().enumerate() {
        if (i >> 16) % 3 != 1 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x % 7) as u8; // compressible but not constant
        }
    }
    let p = dir.join("pattern.raw");
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

fn read_all(img: &Image) -> Vec<u8> {
    let d = img.dev();
    let mut v = vec![0u8; d.size() as usize];
    // Uneven chunks exercise cluster-straddling reads.
    let mut off = 0;
    while off < v.len() {
        let n = (v.len() - off).min(123_457);
        d.read_at(&mut v[off..off + n], off as u64).unwrap();
        off += n;
    }
    v
}

/// Opens an image whose hand-made raw bases (qemu-img, no diskfab trust mark) sit in its own
/// directory: that directory is allowed explicitly, as `--backing-dir` would.
fn open(p: &Path, writable: bool) -> Image {
    let gate = BackingGate {
        allow_dirs: p.parent().map(Path::to_path_buf).into_iter().collect(),
        ..Default::default()
    };
    Image::open(p, &OpenOptions { writable, gate }).unwrap()
}

#[test]
fn qemu_made_images_read_identically_for_cluster_sizes_512_to_2m_and_zlib_or_zstd_compressed() {
    let t = tempfile::tempdir().unwrap();
    let (raw, data) = pattern(t.path());
    for cs in ["512", "4096", "65536", "2M"] {
        let q = t.path().join(format!("c{cs}.qcow2"));
        run(
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "qcow2",
                "-o",
                &format!("cluster_size={cs}"),
                s(&raw),
                s(&q),
            ],
        );
        let img = open(&q, false);
        assert_eq!(img.format(), Format::Qcow2);
        assert!(read_all(&img) == data, "cluster size {cs} differs");
    }
    let c = t.path().join("comp.qcow2");
    run(
        "qemu-img",
        &["convert", "-c", "-f", "raw", "-O", "qcow2", s(&raw), s(&c)],
    );
    assert!(
        read_all(&open(&c, false)) == data,
        "compressed image differs"
    );
    let z = t.path().join("zstd.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "compression_type=zstd",
            s(&raw),
            s(&z),
        ],
    );
    let img = open(&z, false);
    assert_eq!(
        img.info().unwrap().format_specific.unwrap()["compression_type"],
        "zstd"
    );
    assert!(read_all(&img) == data, "zstd-compressed image differs");
    let v2 = t.path().join("v2.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10",
            s(&raw),
            s(&v2),
        ],
    );
    assert!(read_all(&open(&v2, false)) == data, "v2 image differs");
}

#[test]
fn chain_of_raw_and_qcow2_layers_reads_like_qemu_and_writes_leave_lower_layers_untouched() {
    let t = tempfile::tempdir().unwrap();
    let (raw, _) = pattern(t.path());
    let mid = t.path().join("mid.qcow2");
    let top = t.path().join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "pattern.raw",
            "-F",
            "raw",
            "-o",
            "cluster_size=4096",
            s(&mid),
        ],
    );
    run(
        "qemu-io",
        &[
            "-c",
            "write -P 0xaa 100k 300k",
            "-c",
            "write -z 1M 64k",
            s(&mid),
        ],
    );
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            s(&top),
        ],
    );
    run("qemu-io", &["-c", "write -P 0x55 250k 10k", s(&top)]);
    let expect = t.path().join("expect.raw");
    run("qemu-img", &["convert", "-O", "raw", s(&top), s(&expect)]);
    let img = open(&top, false);
    assert_eq!(img.info().unwrap().chain.len(), 2);
    assert!(
        read_all(&img) == std::fs::read(&expect).unwrap(),
        "depth-3 chain differs from qemu"
    );

    let before = (std::fs::read(&raw).unwrap(), std::fs::read(&mid).unwrap());
    let img = open(&top, true);
    let d = img.dev();
    d.write_at(&[0x77; 5000], 4000).unwrap(); // partial clusters: copy-on-write from below
    d.write_at(&vec![0x11; 1 << 20], 2 << 20).unwrap();
    d.write_zeroes(128 << 10, 256 << 10).unwrap();
    img.flush().unwrap();
    drop(img);
    run(
        "qemu-io",
        &[
            "-c",
            "write -P 0x77 4000 5000",
            "-c",
            "write -P 0x11 2M 1M",
            "-c",
            "write -z 128k 256k",
            s(&expect),
        ],
    );
    run("qemu-img", &["check", "-q", s(&top)]);
    run("qemu-img", &["compare", "-q", s(&top), s(&expect)]);
    assert!(
        before == (std::fs::read(&raw).unwrap(), std::fs::read(&mid).unwrap()),
        "a lower layer changed"
    );
}

#[test]
fn writes_that_grow_the_refcount_table_pass_qemu_img_check() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("small.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            s(&p),
            "64M",
        ],
    );
    let img = open(&p, true);
    let buf: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
    img.dev().write_at(&buf, 7).unwrap();
    img.flush().unwrap();
    drop(img);
    run("qemu-img", &["check", "-q", s(&p)]);
    let out = t.path().join("out.raw");
    run("qemu-img", &["convert", "-O", "raw", s(&p), s(&out)]);
    let got = std::fs::read(&out).unwrap();
    assert!(got[7..7 + buf.len()] == buf[..]);
}

#[test]
fn created_images_and_overlays_satisfy_qemu_img() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.qcow2");
    create(
        &base,
        &CreateOptions {
            size: Some(1 << 30),
            ..Default::default()
        },
    )
    .unwrap();
    let ovl = t.path().join("ovl.qcow2");
    create(
        &ovl,
        &CreateOptions {
            backing: Some("base.qcow2".into()),
            cluster_size: Some(4096),
            ..Default::default()
        },
    )
    .unwrap();
    run("qemu-img", &["check", "-q", s(&base)]);
    run("qemu-img", &["check", "-q", s(&ovl)]);
    let info: serde_json::Value =
        serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(&ovl)])).unwrap();
    assert_eq!(info["backing-filename"], "base.qcow2");
    assert_eq!(info["backing-filename-format"], "qcow2");
    assert_eq!(info["cluster-size"], 4096);
    assert_eq!(info["virtual-size"], 1u64 << 30);
    assert!(matches!(
        create(
            &ovl,
            &CreateOptions {
                size: Some(1 << 20),
                ..Default::default()
            }
        ),
        Err(Error::Exists(_))
    ));
    let raw = t.path().join("r.img");
    create(
        &raw,
        &CreateOptions {
            format: Format::Raw,
            size: Some(1000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&raw).unwrap().len(),
        1024,
        "sizes round up to 512 like qemu-img"
    );
}

#[test]
fn a_thousand_clones_are_valid_overlays_and_existing_files_are_never_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.qcow2");
    create(
        &base,
        &CreateOptions {
            size: Some(1 << 30),
            ..Default::default()
        },
    )
    .unwrap();
    let out = t.path().join("clones");
    std::fs::create_dir(&out).unwrap();
    let names: Vec<String> = (1..=1000).map(|i| format!("c-{i:04}.qcow2")).collect();
    let paths = clone_many(&base, &out, &names, Some(4096)).unwrap();
    assert_eq!(paths.len(), 1000);
    for p in [&paths[0], &paths[999]] {
        run("qemu-img", &["check", "-q", s(p)]);
        let info: serde_json::Value =
            serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(p)])).unwrap();
        assert_eq!(info["backing-filename"], "../base.qcow2");
    }
    let img = open(&paths[5], true);
    img.dev().write_at(b"clone five", 1 << 20).unwrap();
    img.flush().unwrap();
    drop(img);
    run("qemu-img", &["check", "-q", s(&paths[5])]);
    assert!(
        std::fs::metadata(&paths[5]).unwrap().len() < 64 << 10,
        "a tiny change keeps the clone tiny"
    );
    assert!(matches!(
        clone_many(&base, &out, &names[..1], None),
        Err(Error::Exists(_))
    ));
    assert!(clone_many(&base, &out, &["../evil.qcow2".to_string()], None).is_err());
    // A batch that meets an existing file (or repeats a name) makes nothing and changes nothing.
    let before = std::fs::read(&paths[7]).unwrap();
    for batch in [
        vec![
            "new-1.qcow2".to_string(),
            names[7].clone(),
            "new-2.qcow2".into(),
        ],
        vec!["new-1.qcow2".to_string(), "new-1.qcow2".into()],
    ] {
        let e = clone_many(&base, &out, &batch, None).expect_err("batch with an existing name");
        assert!(matches!(e, Error::Exists(_)), "{e}");
        assert!(!out.join("new-1.qcow2").exists() && !out.join("new-2.qcow2").exists());
    }
    assert!(before == std::fs::read(&paths[7]).unwrap());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1000);
}

fn qemu_image(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    run("qemu-img", &["create", "-q", "-f", "qcow2", s(&p), "64M"]);
    run("qemu-io", &["-c", "write -P 1 0 1M", s(&p)]);
    p
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .write_all_at(bytes, off)
        .unwrap();
}

fn refused(p: &Path, writable: bool) -> Error {
    refused_with(p, writable, 3)
}

/// Refused by the backing-file policy (exit code 6) rather than as a bad image.
fn denied(p: &Path) -> Error {
    refused_with(p, false, 6)
}

fn refused_with(p: &Path, writable: bool, code: i32) -> Error {
    let before = std::fs::read(p).unwrap();
    let e = Image::open(
        p,
        &OpenOptions {
            writable,
            gate: BackingGate::default(),
        },
    )
    .and_then(|img| {
        let mut b = vec![0u8; 1 << 20];
        img.dev().read_at(&mut b, 0)?;
        Ok(img)
    })
    .expect_err("hostile image was accepted");
    assert_eq!(e.exit_code(), code, "{e}");
    assert!(
        before == std::fs::read(p).unwrap(),
        "a refused image was modified"
    );
    e
}

#[test]
fn hostile_qcow2_images_are_refused_with_exit_code_3_or_6_by_policy_and_left_untouched() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Truncated: header only.
    let p = qemu_image(d, "trunc.qcow2");
    let head = std::fs::read(&p).unwrap()[..200].to_vec();
    std::fs::write(&p, head).unwrap();
    refused(&p, false);
    // L1 table offset past the end of the file.
    let p = qemu_image(d, "l1.qcow2");
    patch(&p, 40, &(1u64 << 40).to_be_bytes());
    refused(&p, false);
    // An L1 entry pointing past the end of the file (L1 at 0x30000 for 64 KiB clusters).
    let p = qemu_image(d, "l1e.qcow2");
    let l1 = u64::from_be_bytes(std::fs::read(&p).unwrap()[40..48].try_into().unwrap());
    patch(&p, l1, &((1u64 << 63) | (1 << 40)).to_be_bytes());
    refused(&p, false);
    // An L2 entry pointing past the end of the file (first L2 table of a 64 KiB-cluster image).
    let p = qemu_image(d, "l2e.qcow2");
    let bytes = std::fs::read(&p).unwrap();
    let l1 = u64::from_be_bytes(bytes[40..48].try_into().unwrap());
    let l2 = u64::from_be_bytes(bytes[l1 as usize..l1 as usize + 8].try_into().unwrap())
        & 0x00ff_ffff_ffff_fe00;
    patch(&p, l2, &((1u64 << 63) | (1 << 45)).to_be_bytes());
    refused(&p, false);
    // Refcount table entry garbage.
    let p = qemu_image(d, "rc.qcow2");
    let rt = u64::from_be_bytes(std::fs::read(&p).unwrap()[48..56].try_into().unwrap());
    patch(&p, rt, &0x1234_5678_9abc_def1u64.to_be_bytes());
    refused(&p, true);
    // Absurd size.
    let p = qemu_image(d, "size.qcow2");
    patch(&p, 24, &u64::MAX.to_be_bytes());
    refused(&p, false);
    // Backing chain loop a -> b -> a.
    let a = d.join("a.qcow2");
    let b = d.join("b.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", s(&a), "1M"]);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "a.qcow2",
            "-F",
            "qcow2",
            s(&b),
        ],
    );
    run(
        "qemu-img",
        &["rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", s(&a)],
    );
    assert!(denied(&b).to_string().contains("loop"));
    // Missing backing file.
    let m = d.join("m.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "gone.raw",
            "-F",
            "raw",
            s(&m),
            "1M",
        ],
    );
    refused(&m, false);
    // Backing file outside the gate, and a device as backing.
    for target in ["/etc/passwd", "/dev/zero"] {
        let e = d.join("escape.qcow2");
        let _ = std::fs::remove_file(&e);
        run(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-u",
                "-b",
                target,
                "-F",
                "raw",
                s(&e),
                "1M",
            ],
        );
        let err = denied(&e);
        assert!(
            err.to_string().contains("--backing-dir") || err.to_string().contains("device"),
            "{err}"
        );
    }
    // ...but an explicit allow opens it.
    let e = d.join("escape.qcow2");
    let _ = std::fs::remove_file(&e);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "/etc/passwd",
            "-F",
            "raw",
            s(&e),
            "1M",
        ],
    );
    let g = BackingGate {
        allow_dirs: vec!["/etc".into()],
        ..Default::default()
    };
    assert!(Image::open(
        &e,
        &OpenOptions {
            writable: false,
            gate: g
        }
    )
    .is_ok());
}

#[test]
fn qcow2_v2_images_are_written_with_explicit_zeroes_and_stay_valid() {
    let t = tempfile::tempdir().unwrap();
    let (raw, _) = pattern(t.path());
    let v2 = t.path().join("v2.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "-b",
            "pattern.raw",
            "-F",
            "raw",
            s(&v2),
        ],
    );
    let expect = t.path().join("e.raw");
    std::fs::copy(&raw, &expect).unwrap();
    let img = open(&v2, true);
    img.dev().write_at(&[9u8; 70_000], 1000).unwrap();
    img.dev().write_zeroes(1 << 20, 1 << 20).unwrap();
    img.flush().unwrap();
    drop(img);
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 9 1000 70000",
            "-c",
            "write -z 1M 1M",
            s(&expect),
        ],
    );
    run("qemu-img", &["check", "-q", s(&v2)]);
    run("qemu-img", &["compare", "-q", s(&v2), s(&expect)]);
}

#[test]
fn read_only_images_refuse_writes() {
    let t = tempfile::tempdir().unwrap();
    let p = qemu_image(t.path(), "ro.qcow2");
    let img = open(&p, false);
    assert!(matches!(
        img.dev().write_at(b"x", 0),
        Err(Error::ReadOnly(_))
    ));
}

#[test]
fn images_with_internal_snapshots_read_their_current_state_and_refuse_writes() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("snap.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", s(&p), "16M"]);
    run("qemu-io", &["-c", "write -P 1 0 1M", s(&p)]);
    run("qemu-img", &["snapshot", "-c", "before", s(&p)]);
    run("qemu-io", &["-c", "write -P 2 512k 1M", s(&p)]);
    let raw = t.path().join("cur.raw");
    run("qemu-img", &["convert", "-O", "raw", s(&p), s(&raw)]);
    assert!(read_all(&open(&p, false)) == std::fs::read(&raw).unwrap());
    let e = Image::open(
        &p,
        &OpenOptions {
            writable: true,
            gate: BackingGate::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}
