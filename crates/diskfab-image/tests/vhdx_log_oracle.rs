//! VHDX log replay checked against qemu. Dirty images are made by qemu itself: `qemu-io` writes
//! through a `blkdebug` node that fails every write to one block-table sector, so qemu's log
//! entry (and the header's log GUID) is on disk but the in-place update is not; `abort` then
//! kills it without a clean close. The oracle is a copy replayed by `qemu-img check -r all`
//! and converted to raw by `qemu-img convert`.

use diskfab_image::{fuzz_vhdx, Image};
use diskfab_storage::Error;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{s, try_open as open};

fn out(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = out(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha256(p: &Path) -> String {
    run("sha256sum", &[s(p)])[..64].to_string()
}

/// The current header's log GUID (the valid header with the larger sequence number).
fn log_guid(p: &Path) -> [u8; 16] {
    let b = std::fs::read(p).unwrap();
    let h = [64usize << 10, 128 << 10]
        .into_iter()
        .map(|o| &b[o..o + 4096])
        .filter(|h| &h[..4] == b"head")
        .max_by_key(|h| u64::from_le_bytes(h[8..16].try_into().unwrap()))
        .unwrap();
    h[48..64].try_into().unwrap()
}

/// One qemu-made dirty image.
struct Dirty {
    create: &'static [&'static str],
    size: &'static str,
    clean: Vec<String>,
    dirty: Vec<String>,
    /// 512-byte sector of the block-table sector whose in-place update fails.
    bat_sector: u64,
}

fn make(dir: &Path, name: &str, d: &Dirty) -> PathBuf {
    let p = dir.join(name);
    let mut args = vec!["create", "-q", "-f", "vhdx"];
    args.extend_from_slice(d.create);
    args.extend_from_slice(&[s(&p), d.size]);
    run("qemu-img", &args);
    if !d.clean.is_empty() {
        let mut a = vec!["-f", "vhdx"];
        d.clean.iter().for_each(|c| a.extend_from_slice(&["-c", c]));
        a.push(s(&p));
        run("qemu-io", &a);
    }
    let conf = dir.join(format!("{name}.blkdebug"));
    std::fs::write(
        &conf,
        format!(
            "[inject-error]\nevent = \"pwritev\"\nerrno = \"5\"\nsector = \"{}\"\nonce = \"off\"\niotype = \"write\"\n",
            d.bat_sector
        ),
    )
    .unwrap();
    let spec = format!(
        r#"json:{{"driver":"vhdx","cache":{{"no-flush":true}},"file":{{"driver":"blkdebug","config":"{}","image":{{"driver":"file","filename":"{}"}}}}}}"#,
        s(&conf),
        s(&p)
    );
    let mut a: Vec<&str> = Vec::new();
    d.dirty.iter().for_each(|c| a.extend_from_slice(&["-c", c]));
    a.extend_from_slice(&["-c", "abort", &spec]);
    let o = out("qemu-io", &a);
    assert!(!o.status.success(), "qemu-io was expected to abort");
    assert_ne!(log_guid(&p), [0; 16], "{name}: qemu left no pending log");
    let info = out("qemu-img", &["info", s(&p)]);
    assert!(
        String::from_utf8_lossy(&info.stderr).contains("log that needs to be replayed"),
        "{name}: qemu-img does not see a pending log"
    );
    p
}

/// The guest contents after qemu replays the log of a copy, as a raw file.
fn qemu_replayed(p: &Path) -> PathBuf {
    let copy = p.with_extension("replayed.vhdx");
    std::fs::copy(p, &copy).unwrap();
    run("qemu-img", &["check", "-q", "-r", "all", s(&copy)]);
    let raw = p.with_extension("raw");
    run(
        "qemu-img",
        &["convert", "-f", "vhdx", "-O", "raw", s(&copy), s(&raw)],
    );
    raw
}

/// Asserts our view of `img` equals the raw file `raw`, in 4 MiB pieces.
fn assert_reads_like(img: &Image, raw: &Path, what: &str) {
    let d = img.dev();
    let f = std::fs::File::open(raw).unwrap();
    assert_eq!(d.size(), f.metadata().unwrap().len(), "{what}: size");
    let (mut a, mut b) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    let mut off = 0;
    while off < d.size() {
        let n = (d.size() - off).min(4 << 20) as usize;
        d.read_at(&mut a[..n], off).unwrap();
        f.read_exact_at(&mut b[..n], off).unwrap();
        assert!(a[..n] == b[..n], "{what}: differs in the 4 MiB at {off}");
        off += n as u64;
    }
}

fn scenarios() -> Vec<(&'static str, Dirty)> {
    let many: Vec<String> = (0..520u64)
        .map(|i| format!("write -P {} {}k 4k", i % 250 + 1, i * 1024 + i % 200 * 4))
        .collect();
    vec![
        (
            "first-write.vhdx",
            Dirty {
                create: &[],
                size: "64M",
                clean: vec![],
                dirty: vec!["write -P 0x5a 0 3M".into()],
                bat_sector: 4096,
            },
        ),
        (
            "after-clean-session.vhdx",
            Dirty {
                create: &["-o", "block_size=1M"],
                size: "64M",
                clean: vec![
                    "write -P 1 0 1M".into(),
                    "write -P 2 20M 1M".into(),
                    "write -P 3 40M 3M".into(),
                ],
                dirty: vec!["write -P 0x21 5M 40M".into()],
                bat_sector: 4096,
            },
        ),
        (
            "partial-block.vhdx",
            Dirty {
                create: &[],
                size: "64M",
                clean: vec!["write -P 4 1M 64k".into()],
                dirty: vec!["write -P 0x23 30M 64k".into()],
                bat_sector: 4096,
            },
        ),
        (
            // 512 blocks allocated cleanly (the log ring wraps four times over entries with
            // other GUIDs), the 513th block's table sector fails.
            "many-blocks.vhdx",
            Dirty {
                create: &["-o", "block_size=1M"],
                size: "520M",
                clean: vec![],
                dirty: many,
                bat_sector: 4104,
            },
        ),
    ]
}

#[test]
fn qemu_dirty_logs_read_only_replay_in_memory_like_qemu_and_leave_the_file_untouched() {
    let t = tempfile::tempdir().unwrap();
    for (name, d) in scenarios() {
        let p = make(t.path(), name, &d);
        let before = sha256(&p);
        let raw = qemu_replayed(&p);
        let img = open(&p, false).unwrap();
        assert_reads_like(&img, &raw, name);
        drop(img);
        assert_eq!(
            sha256(&p),
            before,
            "{name}: a read-only open changed the file"
        );
        assert_ne!(log_guid(&p), [0; 16]);
    }
}

#[test]
fn writable_open_replays_the_log_onto_the_file_which_then_passes_qemu_img_check() {
    let t = tempfile::tempdir().unwrap();
    for (name, d) in scenarios() {
        let p = make(t.path(), name, &d);
        let raw = qemu_replayed(&p);
        drop(open(&p, true).unwrap());
        assert_eq!(log_guid(&p), [0; 16], "{name}: log GUID not cleared");
        let check = run("qemu-img", &["check", s(&p)]);
        assert!(check.contains("No errors"), "{name}: {check}");
        run("qemu-img", &["compare", "-q", s(&p), s(&raw)]);
        // And our own re-open (no log any more) still reads the same.
        assert_reads_like(&open(&p, false).unwrap(), &raw, name);
    }
}

#[test]
fn corrupt_or_truncated_logs_are_refused_as_bad_images_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let (name, d) = scenarios().swap_remove(0);
    let p = make(t.path(), name, &d);
    // A flipped byte inside the only entry: its CRC-32C fails, no valid sequence remains.
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0xee], (1 << 20) + 5000).unwrap();
    drop(f);
    let before = sha256(&p);
    for w in [false, true] {
        assert!(
            matches!(open(&p, w), Err(Error::BadImage(m)) if m.contains("no valid sequence")),
            "writable={w}"
        );
    }
    assert_eq!(sha256(&p), before);
    // A valid log but a file shorter than the entry's FlushedFileOffset (16 MiB).
    let q = make(t.path(), "short.vhdx", &d);
    let f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    f.set_len(12 << 20).unwrap();
    drop(f);
    let before = sha256(&q);
    for w in [false, true] {
        assert!(
            matches!(open(&q, w), Err(Error::BadImage(m)) if m.contains("truncated")),
            "writable={w}"
        );
    }
    assert_eq!(sha256(&q), before);
}

#[test]
fn a_dirty_image_in_the_fuzz_layout_puts_a_valid_log_entry_within_the_fuzzers_reach() {
    let t = tempfile::tempdir().unwrap();
    let (name, d) = scenarios().swap_remove(0);
    let p = make(t.path(), name, &d);
    // scripts/fuzz.sh's seed layout: the first 320 KiB, then the first 64 KiB of each MiB.
    let b = std::fs::read(&p).unwrap();
    let mut seed = b[..320 << 10].to_vec();
    for m in 1..12usize {
        seed.extend_from_slice(&b[m << 20..(m << 20) + (64 << 10)]);
    }
    let place = diskfab_image::vhdx_log::LogPlace {
        offset: 1 << 20,
        guid: log_guid(&p),
        max_file: 1 << 40,
    };
    // fuzz_vhdx parses the part from 320 KiB (the log's first 64 KiB onwards) as a log.
    let log = &seed[320 << 10..];
    let r = diskfab_image::vhdx_log::find_active(&log[..log.len() / 4096 * 4096], &place).unwrap();
    assert_eq!(r.map(|r| r.entries), Some(1));
    fuzz_vhdx(&seed);
}
