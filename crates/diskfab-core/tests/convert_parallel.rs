//! The parallel convert pipeline: workers that read and compress, one writer in guest order.
//! Sources are made by qemu-img, qemu-io and dd; outputs are judged by `qemu-img compare` and
//! `qemu-img check`.

use diskfab_core::image::Format;
use diskfab_core::ops::images::{convert, ConvertOptions};
use diskfab_core::storage::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
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

/// A 40 MiB qcow2 (made by qemu-img from a raw file): 8 MiB of /dev/urandom, repeated patterns
/// at unaligned offsets, a zeroed range inside written data, and never-written gaps.
fn mixed_source(dir: &Path) -> PathBuf {
    let raw = dir.join("mixed.raw");
    run("qemu-img", &["create", "-q", "-f", "raw", s(&raw), "40M"]);
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", s(&raw)),
            "bs=1M",
            "count=8",
            "seek=3",
            "conv=notrunc",
            "status=none",
        ],
    );
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x5a 12345 5M",
            "-c",
            "write -P 0xc3 20M 7777777",
            "-c",
            "write -z 22M 1M",
            "-c",
            "write -P 0x01 39M 1000",
            s(&raw),
        ],
    );
    let q = dir.join("mixed.qcow2");
    run(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&q)],
    );
    q
}

fn options(format: Format, threads: usize) -> ConvertOptions {
    ConvertOptions {
        format,
        threads,
        ..Default::default()
    }
}

#[test]
fn parallel_compressed_convert_of_random_zero_and_repeated_data_compares_identical_and_is_deterministic(
) {
    let t = tempfile::tempdir().unwrap();
    let src = mixed_source(t.path());
    let targets: [(&str, ConvertOptions); 4] = [
        (
            "zlib.qcow2",
            ConvertOptions {
                compress: true,
                ..options(Format::Qcow2, 0)
            },
        ),
        (
            "zstd.qcow2",
            ConvertOptions {
                compress: true,
                zstd: true,
                ..options(Format::Qcow2, 0)
            },
        ),
        (
            "stream.vmdk",
            ConvertOptions {
                stream_optimized: true,
                ..options(Format::Vmdk, 0)
            },
        ),
        ("plain.vhdx", options(Format::Vhdx, 0)),
    ];
    for (name, o) in targets {
        let mut outputs = Vec::new();
        for threads in [1, 3, 8] {
            let out = t.path().join(format!("{threads}-{name}"));
            convert(
                &src,
                &out,
                &ConvertOptions {
                    threads,
                    ..o.clone()
                },
                &|_| {},
            )
            .unwrap();
            run("qemu-img", &["compare", "-q", s(&src), s(&out)]);
            run("qemu-img", &["check", "-q", s(&out)]);
            // VMDK and VHDX carry random identifiers: compare their layout (where each
            // guest range is stored in the file) instead of every byte.
            outputs.push(if name.ends_with(".qcow2") {
                std::fs::read(&out).unwrap()
            } else {
                run("qemu-img", &["map", "--output=json", s(&out)])
                    .replace(s(&out), "")
                    .into_bytes()
            });
        }
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "{name}: output depends on the number of workers"
        );
    }
}

/// The host offset of the L2 table covering guest cluster 0 of a qemu-made qcow2.
fn first_l2(img: &Path) -> u64 {
    let f = std::fs::File::open(img).unwrap();
    let mut hdr = [0u8; 48];
    f.read_exact_at(&mut hdr, 0).unwrap();
    let l1 = u64::from_be_bytes(hdr[40..48].try_into().unwrap());
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, l1).unwrap();
    u64::from_be_bytes(e) & 0x00ff_ffff_ffff_fe00
}

#[test]
fn a_table_entry_past_eof_fails_convert_in_a_worker_and_removes_the_partial_output() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("bad.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", s(&src), "64M"]);
    // Data from the start (so the writer has written chunks before the failure) to 40 MiB.
    run(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x77 0 41M", s(&src)],
    );
    // Guest cluster 600 (37.5 MiB) now points 1 TiB past the end of the file.
    let l2 = first_l2(&src);
    let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    let bad = (1u64 << 40) | (1 << 63);
    f.write_all_at(&bad.to_be_bytes(), l2 + 600 * 8).unwrap();
    drop(f);
    for (name, o) in [
        ("out.raw", options(Format::Raw, 0)),
        (
            "out.qcow2",
            ConvertOptions {
                compress: true,
                zstd: true,
                ..options(Format::Qcow2, 3)
            },
        ),
        (
            "out.vmdk",
            ConvertOptions {
                stream_optimized: true,
                ..options(Format::Vmdk, 2)
            },
        ),
    ] {
        let out = t.path().join(name);
        let err = convert(&src, &out, &o, &|_| {}).unwrap_err();
        assert!(
            matches!(&err, Error::BadImage(m) if m.contains("past the end")),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}: partial output left behind");
    }
}
