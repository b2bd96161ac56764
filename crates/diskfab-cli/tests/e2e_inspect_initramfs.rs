//! `inspect` on initramfs images made of several segments, built with the real tools (cpio,
//! gzip, xz, zstd, lz4): early uncompressed archives, then one or more compressed ones, with zero
//! padding between them, as the kernel unpacks them.

mod common;
use common::*;
use std::fs;
use std::path::Path;

/// One cpio (newc) archive of kernel modules `mods` (under kernel/drivers), piped through
/// `compress` (a shell pipeline stage, or `cat`), appended to `out` after `pad` zero bytes.
fn segment(dir: &Path, out: &Path, mods: &[&str], compress: &str, pad: usize) {
    let root = dir.join("seg");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    for m in mods {
        write(
            &root,
            &format!("usr/lib/modules/6.1/kernel/drivers/{m}.ko"),
            "x",
        );
    }
    let script = format!(
        "set -e; head -c {pad} /dev/zero >> '{o}'; \
         (cd '{r}' && find . | cpio -o -H newc --quiet | {compress}) >> '{o}'",
        r = root.display(),
        o = out.display()
    );
    tool("bash", &["-c", &script]);
}

/// An early-microcode archive (no modules), as dracut and initramfs-tools write it first.
fn early(dir: &Path, out: &Path) {
    let root = dir.join("early");
    write(&root, "kernel/x86/microcode/GenuineIntel.bin", "ucode");
    let script = format!(
        "set -e; (cd '{r}' && find . | cpio -o -H newc --quiet) > '{o}'",
        r = root.display(),
        o = out.display()
    );
    tool("bash", &["-c", &script]);
}

fn kernel<'a>(os: &'a serde_json::Value, v: &str) -> &'a serde_json::Value {
    os["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["version"] == v)
        .unwrap_or_else(|| panic!("no kernel {v}: {os}"))
}

#[test]
fn every_initramfs_segment_is_decoded_and_its_modules_counted() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("deb");
    write(&g, "/etc/os-release", "ID=debian\nVERSION_ID=12\n");
    let img = |v: &str| {
        write(&g, &format!("/boot/vmlinuz-{v}"), "k");
        g.join(format!("boot/initrd.img-{v}"))
    };
    // Early cpio, then zstd main holding every driver.
    let a = img("1-zstd");
    early(t.path(), &a);
    segment(
        t.path(),
        &a,
        &["block/virtio_blk", "net/virtio_net"],
        "zstd -q",
        0,
    );
    // Early cpio, gzip, padding, then xz: drivers split over both compressed parts.
    let b = img("2-gzip-xz");
    early(t.path(), &b);
    segment(t.path(), &b, &["block/virtio_blk", "misc/a"], "gzip -9", 0);
    segment(t.path(), &b, &["net/virtio_net"], "xz --check=crc32", 512);
    // Two gzip members back to back, then lz4 legacy after padding, then an uncompressed cpio.
    let c = img("3-gzip2-lz4");
    early(t.path(), &c);
    segment(t.path(), &c, &["scsi/virtio_scsi"], "gzip", 0);
    segment(t.path(), &c, &["hv/hv_vmbus"], "gzip", 0);
    segment(t.path(), &c, &["net/e1000"], "lz4 -l -q", 4);
    segment(t.path(), &c, &["block/xen-blkfront"], "cat", 4);
    // zstd then lz4 frame then xz, no early archive.
    let d = img("4-zstd-lz4f-xz");
    segment(t.path(), &d, &["block/virtio_blk"], "zstd -q", 0);
    segment(t.path(), &d, &["net/virtio_net"], "lz4 -q", 0);
    segment(t.path(), &d, &["hv/hv_netvsc"], "xz --check=crc32", 0);
    // Hostile: the last segment cut in the middle; the earlier ones still count.
    let e = img("5-truncated");
    early(t.path(), &e);
    segment(t.path(), &e, &["block/virtio_blk"], "gzip", 0);
    let len = fs::metadata(&e).unwrap().len();
    segment(
        t.path(),
        &e,
        &["net/virtio_net", "misc/b"],
        "xz --check=crc32",
        0,
    );
    let full = fs::metadata(&e).unwrap().len();
    tool(
        "truncate",
        &[
            "-s",
            &(len + (full - len) / 2).to_string(),
            e.to_str().unwrap(),
        ],
    );

    let os = inspect_tree(t.path(), &g);
    let seg = |v: &str| kernel(&os, v)["initramfs"]["segments"].clone();
    let drv = |v: &str| kernel(&os, v)["initramfs"]["drivers"].clone();
    let n = |v: &str| kernel(&os, v)["initramfs"]["modules"].clone();
    use serde_json::json;
    assert_eq!(seg("1-zstd"), json!(["cpio", "zstd"]));
    assert_eq!(drv("1-zstd"), json!(["virtio_blk", "virtio_net"]));
    assert_eq!(seg("2-gzip-xz"), json!(["cpio", "gzip", "xz"]));
    assert_eq!(drv("2-gzip-xz"), json!(["virtio_blk", "virtio_net"]));
    assert_eq!(n("2-gzip-xz"), 3);
    assert_eq!(seg("3-gzip2-lz4"), json!(["cpio", "gzip", "lz4", "cpio"]));
    assert_eq!(
        drv("3-gzip2-lz4"),
        json!(["virtio_scsi", "e1000", "hv_vmbus", "xen_blkfront"])
    );
    assert_eq!(seg("4-zstd-lz4f-xz"), json!(["zstd", "lz4", "xz"]));
    assert_eq!(
        drv("4-zstd-lz4f-xz"),
        json!(["virtio_blk", "virtio_net", "hv_netvsc"])
    );
    assert_eq!(seg("5-truncated"), json!(["cpio", "gzip"]));
    assert_eq!(drv("5-truncated"), json!(["virtio_blk"]));
    let w = os["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    let w = w[0].as_str().unwrap();
    assert!(
        w.contains("initrd.img-5-truncated") && w.contains("segment 3") && w.contains("xz"),
        "{w}"
    );
    assert_documented(&os);
}
