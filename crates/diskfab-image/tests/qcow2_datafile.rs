//! qcow2 images with an external data file, checked against QEMU: images written by qemu-io
//! read back like `qemu-img convert`, the data file is opened only through the backing-file
//! gate, and writable opens are refused without touching anything.

use diskfab_image::{check, BackingGate, Image, OpenOptions};
use diskfab_storage::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::s;

/// Runs `cmd` in `dir`, the image's directory: this QEMU resolves a relative data file name
/// against its working directory, diskfab against the image's directory (like backing files).
fn run_in(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run scripts/deps.sh)"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn open_with(p: &Path, writable: bool, gate: BackingGate) -> diskfab_storage::Result<Image> {
    Image::open(p, &OpenOptions { writable, gate })
}

fn read_all(img: &Image) -> Vec<u8> {
    let d = img.dev();
    let mut v = vec![0u8; d.size() as usize];
    for (i, c) in v.chunks_mut(100_003).enumerate() {
        d.read_at(c, i as u64 * 100_003).unwrap();
    }
    v
}

/// A qcow2 image in `dir` whose data lives in `data` (a name as qemu-img stores it), written
/// by qemu-io: data at the start (guest cluster 0 is host offset 0 of the data file), a small
/// write, zeroes over data.
fn qemu_image(dir: &Path, name: &str, data: &str, extra: &str) -> PathBuf {
    let p = dir.join(name);
    let o = format!("data_file={data}{extra}");
    run_in(
        dir,
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-o", &o, s(&p), "3M"],
    );
    run_in(
        dir,
        "qemu-io",
        &[
            "-c",
            "write -P 0xab 0 192k",
            "-c",
            "write -P 0xcd 1M 4k",
            "-c",
            "write -z 64k 64k",
            "-c",
            "write -P 0x17 2M 1M",
            s(&p),
        ],
    );
    p
}

fn qemu_raw(img: &Path) -> Vec<u8> {
    let out = img.with_extension("oracle.raw");
    let dir = img.parent().unwrap();
    run_in(dir, "qemu-img", &["convert", "-O", "raw", s(img), s(&out)]);
    std::fs::read(&out).unwrap()
}

#[test]
fn data_file_images_read_like_qemu_img_convert_plain_raw_and_with_subclusters() {
    let t = tempfile::tempdir().unwrap();
    for (i, extra) in ["", ",data_file_raw=on", ",extended_l2=on,cluster_size=32k"]
        .into_iter()
        .enumerate()
    {
        let img = qemu_image(
            t.path(),
            &format!("i{i}.qcow2"),
            &format!("d{i}.raw"),
            extra,
        );
        let want = qemu_raw(&img);
        // Data files are raw bytes: their directory must be allowed.
        let here = BackingGate {
            allow_dirs: vec![t.path().to_path_buf()],
            ..Default::default()
        };
        let got = read_all(&open_with(&img, false, here).unwrap());
        assert!(got == want, "case {extra:?}");
        assert!(
            got[..4096].iter().all(|&b| b == 0xab),
            "cluster at data offset 0"
        );
        let r = check(&img).unwrap();
        assert_eq!(
            (r.corruptions, r.leaks),
            (0, 0),
            "{extra:?}: {:?}",
            r.messages
        );
        run_in(t.path(), "qemu-img", &["check", "-q", s(&img)]);
    }
}

fn refused(img: &Path, writable: bool, gate: BackingGate) -> Error {
    let before = std::fs::read(img).unwrap();
    let e = open_with(img, writable, gate).expect_err("data file accepted");
    assert!(
        before == std::fs::read(img).unwrap(),
        "refused image modified"
    );
    e
}

#[test]
fn data_files_are_opened_only_through_the_backing_gate_and_never_for_writing() {
    let t = tempfile::tempdir().unwrap();
    let deep = t.path().join("a/b");
    let other = t.path().join("other");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    // The data file really lives outside the image's directory and its parent; the name the
    // image stores is a plain name: a symlink next to the image leads there.
    let img = qemu_image(&other, "img.qcow2", "x.raw", "");
    let moved = deep.join("img.qcow2");
    std::fs::rename(&img, &moved).unwrap();
    std::os::unix::fs::symlink(other.join("x.raw"), deep.join("x.raw")).unwrap();
    let e = refused(&moved, false, BackingGate::default());
    assert_eq!(e.exit_code(), 6, "{e}");
    assert!(e.to_string().contains("external data file"), "{e}");
    assert!(e.to_string().contains("--backing-dir"), "{e}");
    // Allowing the image's own directory does not reach where the symlink leads.
    let e = refused(
        &moved,
        false,
        BackingGate {
            allow_dirs: vec![deep.clone()],
            ..Default::default()
        },
    );
    assert_eq!(e.exit_code(), 6, "{e}");
    // Allowing the directory explicitly opens it, with the content QEMU sees.
    let gate = BackingGate {
        allow_dirs: vec![other.clone()],
        ..Default::default()
    };
    let img = open_with(&moved, false, gate.clone()).unwrap();
    assert!(read_all(&img) == qemu_raw(&moved));
    // Writable opens are refused before anything is written, even when the gate allows.
    let e = refused(&moved, true, gate);
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    // A data file that is not a regular file (or on procfs) is never opened.
    std::fs::remove_file(deep.join("x.raw")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", deep.join("x.raw")).unwrap();
    let any = BackingGate {
        allow_any: true,
        ..Default::default()
    };
    assert_eq!(refused(&moved, false, any.clone()).exit_code(), 6);
    std::fs::remove_file(deep.join("x.raw")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", deep.join("x.raw")).unwrap();
    assert_eq!(refused(&moved, false, any).exit_code(), 6);
}

#[test]
fn data_file_names_with_directories_are_refused_as_corrupt() {
    let t = tempfile::tempdir().unwrap();
    let sub = t.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    // qemu-img stores these names as given; diskfab opens data files only next to the image.
    for name in ["../x.raw", "sub2/y.raw", "/etc/passwd"] {
        let img = sub.join("n.qcow2");
        // qemu-img would create (truncate) an absolute data file: make the image with a name of
        // the same length under a scratch directory and rewrite the name in the header.
        let made = if name.starts_with('/') {
            "zz/abcd.raw"
        } else {
            name
        };
        if let Some(d) = Path::new(made).parent() {
            std::fs::create_dir_all(sub.join(d)).unwrap();
        }
        let o = format!("data_file={made}");
        run_in(
            &sub,
            "qemu-img",
            &["create", "-q", "-f", "qcow2", "-o", &o, s(&img), "1M"],
        );
        let mut bytes = std::fs::read(&img).unwrap();
        let at = bytes
            .windows(made.len())
            .position(|w| w == made.as_bytes())
            .unwrap();
        bytes[at..at + made.len()].copy_from_slice(name.as_bytes());
        std::fs::write(&img, &bytes).unwrap();
        let e = refused(
            &img,
            false,
            BackingGate {
                allow_any: true,
                ..Default::default()
            },
        );
        assert_eq!(e.exit_code(), 3, "{name}: {e}");
        assert!(e.to_string().contains("plain file name"), "{name}: {e}");
        std::fs::remove_file(&img).unwrap();
    }
}
