//! `convert --no-sync`: no fsync-type call reaches the output while converting, and the image is
//! still complete (qemu-img compare and check agree). strace counts the calls.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// fsync, fdatasync, syncfs and sync calls made by `diskfab ARGS`.
fn sync_calls(dir: &Path, args: &[&str]) -> usize {
    let log = dir.join("strace.log");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o", log.to_str().unwrap()])
        .args(["-e", "trace=fsync,fdatasync,syncfs,sync,sync_file_range"])
        .arg(env!("CARGO_BIN_EXE_diskfab"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("strace is required for this test ({e}); run scripts/deps.sh"));
    assert!(
        o.status.success(),
        "diskfab {args:?} under strace failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines()
        .filter(|l| {
            [
                "fsync(",
                "fdatasync(",
                "syncfs(",
                "sync(",
                "sync_file_range(",
            ]
            .iter()
            .any(|c| l.contains(c))
        })
        .count()
}

#[test]
fn convert_no_sync_makes_no_fsync_of_the_data_and_the_output_is_complete() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src.qcow2");
    let s = src.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", s, "64M"]);
    for (pat, off) in [("0x5a", "0"), ("0xa5", "17M"), ("0x3c", "63M")] {
        tool("qemu-io", &["-c", &format!("write -P {pat} {off} 1M"), s]);
    }
    // (output format, extra args, fsync-type calls allowed with --no-sync: the empty image's
    // header written at creation is synced, as qemu-img -t unsafe also does)
    for (fmt, extra, at_create) in [
        ("raw", &[][..], 0),
        ("qcow2", &[][..], 1),
        ("vmdk", &["-o", "subformat=streamOptimized"][..], 1),
        ("vhdx", &[][..], 1),
    ] {
        let synced = t.path().join(format!("synced.{fmt}"));
        let unsynced = t.path().join(format!("unsynced.{fmt}"));
        let mut args = vec!["convert", s, synced.to_str().unwrap(), "-O", fmt];
        args.extend(extra);
        let with = sync_calls(t.path(), &args);
        args[2] = unsynced.to_str().unwrap();
        args.push("--no-sync");
        let without = sync_calls(t.path(), &args);
        assert_eq!(without, at_create, "{fmt}: --no-sync still synced");
        assert!(with > without, "{fmt}: the default made {with} sync calls");
        let u = unsynced.to_str().unwrap();
        tool("qemu-img", &["compare", "-q", s, u]);
        if fmt != "raw" {
            tool("qemu-img", &["check", "-q", u]);
        }
    }
}
