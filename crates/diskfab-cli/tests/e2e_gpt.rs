//! End-to-end: GPT disks with an ESP and an ext4 root — built by diskfab and checked with
//! sgdisk, fsck.vfat, mtools, e2fsck and the kernel; and the reference-tool fixture read back.

mod common;
use common::*;
use std::fs;
use std::process::Command;

#[test]
fn gpt_disk_built_by_diskfab_passes_sgdisk_fsck_vfat_mtools_and_e2fsck() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk.raw");
    let d = disk.to_str().unwrap();
    ok(&["create", "-f", "raw", d, "512M"]);
    ok(&[
        "part",
        d,
        "--gpt",
        "--add",
        "size=64M,type=esp,name=EFI",
        "--add",
        "type=linux,name=root",
    ]);
    ok(&["mkfs", d, "-p", "1", "-t", "vfat", "-L", "ESP"]);
    ok(&["mkfs", d, "-p", "2", "-t", "ext4", "-L", "root"]);
    let src = tmp.path().join("loader.conf");
    fs::write(&src, "timeout 3\n").unwrap();
    ok(&["mkdir", d, "-p", "1", "/loader"]);
    ok(&["copy-in", d, "-p", "1", src.to_str().unwrap(), "/loader"]);
    ok(&["copy-in", d, "-p", "2", src.to_str().unwrap(), "/"]);
    // Two filesystems, neither an OS root: diskfab must ask, listing the choices.
    let o = diskfab(&["ls", d, "/"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("partition 1") && err.contains("partition 2") && err.contains("-p"),
        "{err}"
    );

    tool("sgdisk", &["-v", d]);
    let (s1, z1) = sfdisk_part(&disk, 1);
    let (s2, z2) = sfdisk_part(&disk, 2);
    assert_eq!(z1, 64 << 20);
    let lo = Loop::new(&disk, s1, Some(z1), true);
    tool("fsck.vfat", &["-n", &lo.0]);
    drop(lo);
    let img_at = format!("{d}@@{s1}");
    let out = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &img_at, "::/loader/loader.conf"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "timeout 3\n");
    let label = tool(
        "blkid",
        &["-o", "value", "-s", "LABEL", "-p", "-O", &s1.to_string(), d],
    );
    assert_eq!(label.trim(), "ESP");
    e2fsck_clean(&disk, s2, z2);
    let m = Mount::ext(&disk, s2, z2);
    assert_eq!(
        fs::read_to_string(m.path().join("loader.conf")).unwrap(),
        "timeout 3\n"
    );
    assert!(m.path().join("lost+found").is_dir());
}

#[test]
fn reference_gpt_fixture_picks_the_os_root_and_reads_the_esp() {
    let fix = fixtures();
    let img = fix.join("debian-gpt.raw");
    let i = img.to_str().unwrap();
    let root = ok(&["ls", i, "/"]);
    assert!(
        root.lines().any(|l| l == "etc") && root.lines().any(|l| l == "usr"),
        "{root}"
    );
    let esp = ok(&["ls", i, "-p", "1", "/"]);
    assert!(
        esp.lines().any(|l| l == "EFI") && esp.lines().any(|l| l == "loader"),
        "{esp}"
    );
    assert_eq!(
        ok(&["cat", i, "-p", "1", "/loader/loader.conf"]),
        "timeout 3\n"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", i])).unwrap();
    assert_eq!(v["partition_table"], "gpt");
    assert_eq!(v["disk_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(v["volumes"][0]["filesystem"]["fs_type"], "vfat");
    assert_eq!(v["volumes"][0]["filesystem"]["uuid"], "1234-5678");
    assert_eq!(v["volumes"][0]["partition"]["type_name"], "esp");
    assert_eq!(v["volumes"][1]["filesystem"]["fs_type"], "ext4");
    assert_eq!(
        v["volumes"][1]["partition"]["part_uuid"],
        "aaaaaaaa-0000-4000-8000-000000000002"
    );
}
