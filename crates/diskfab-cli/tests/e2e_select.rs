//! Filesystem selection: whole-disk filesystems (no partition table), the OS-root rule, and the
//! error that lists the choices when the choice is ambiguous.

mod common;
use common::*;
use std::fs;

#[test]
fn filesystems_on_the_whole_disk_work_without_a_partition_table() {
    let t = tempfile::tempdir().unwrap();
    let note = t.path().join("note.txt");
    fs::write(&note, "whole disk\n").unwrap();
    // ext4 on a raw whole disk: e2fsck and the kernel agree.
    let e = t.path().join("ext.raw");
    ok(&["create", "-f", "raw", e.to_str().unwrap(), "64M"]);
    ok(&["mkfs", e.to_str().unwrap(), "-t", "ext4", "-L", "whole"]);
    ok(&["copy-in", e.to_str().unwrap(), note.to_str().unwrap(), "/"]);
    assert_eq!(
        ok(&["cat", e.to_str().unwrap(), "/note.txt"]),
        "whole disk\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--json", e.to_str().unwrap()])).unwrap();
    assert!(v["partition_table"].is_null());
    assert_eq!(v["volumes"][0]["filesystem"]["label"], "whole");
    e2fsck_clean(&e, 0, 64 << 20);
    let m = Mount::ext(&e, 0, 64 << 20);
    assert_eq!(
        fs::read_to_string(m.path().join("note.txt")).unwrap(),
        "whole disk\n"
    );
    drop(m);
    // FAT on a qcow2 whole disk: fsck.vfat and mtools agree.
    let f = t.path().join("fat.qcow2");
    let raw = t.path().join("fat.raw");
    ok(&["create", f.to_str().unwrap(), "64M"]);
    ok(&["mkfs", f.to_str().unwrap(), "-t", "vfat", "-L", "DATA"]);
    ok(&["mkdir", f.to_str().unwrap(), "/Some Dir"]);
    ok(&[
        "copy-in",
        f.to_str().unwrap(),
        note.to_str().unwrap(),
        "/Some Dir",
    ]);
    tool("qemu-img", &["check", "-q", f.to_str().unwrap()]);
    to_raw(&f, &raw);
    tool("fsck.vfat", &["-n", raw.to_str().unwrap()]);
    let out = tool(
        "mtype",
        &["-i", raw.to_str().unwrap(), "::/Some Dir/note.txt"],
    );
    assert_eq!(out, "whole disk\n");
}

#[test]
fn two_data_partitions_are_ambiguous_and_the_error_lists_them() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("two.qcow2");
    let ds = d.to_str().unwrap();
    ok(&["create", ds, "256M"]);
    ok(&[
        "part",
        ds,
        "--gpt",
        "--add",
        "size=100M,type=linux",
        "--add",
        "type=linux",
    ]);
    ok(&["mkfs", ds, "-p", "1", "-t", "ext4"]);
    ok(&["mkfs", ds, "-p", "2", "-t", "ext4"]);
    let o = diskfab(&["ls", ds, "/"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("partition 1 (ext4)")
            && err.contains("partition 2 (ext4)")
            && err.contains("-p"),
        "{err}"
    );
    // With an OS root on partition 2, that one is chosen.
    ok(&["mkdir", "-p", "2", ds, "/etc", "/usr"]);
    let ls = ok(&["ls", ds, "/"]);
    assert!(ls.contains("etc") && ls.contains("usr"), "{ls}");
    // -p 3 does not exist: exit 5 (the operation failed) naming the choices.
    let o = diskfab(&["ls", "-p", "3", ds, "/"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no partition 3"));
}

#[test]
fn chown_resolves_names_through_the_images_own_passwd_and_group() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("own.qcow2");
    let ds = d.to_str().unwrap();
    ok(&["create", ds, "64M"]);
    ok(&["mkfs", ds, "-t", "ext4"]);
    let etc = t.path().join("etc");
    fs::create_dir(&etc).unwrap();
    fs::write(
        etc.join("passwd"),
        "root:x:0:0::/root:/bin/sh\nweb:x:4321:4321::/srv:/bin/false\n",
    )
    .unwrap();
    fs::write(etc.join("group"), "root:x:0:\nwww:x:777:\n").unwrap();
    ok(&["copy-in", ds, etc.to_str().unwrap(), "/"]);
    ok(&["mkdir", ds, "/srv"]);
    ok(&["chown", ds, "web:www", "/srv"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["ls", "--json", ds, "/srv"])).unwrap();
    let _ = v;
    let v: serde_json::Value = serde_json::from_str(&ok(&["ls", "--json", ds, "/"])).unwrap();
    let srv = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/srv")
        .unwrap();
    assert_eq!(
        (srv["uid"].as_u64(), srv["gid"].as_u64()),
        (Some(4321), Some(777))
    );
    let o = diskfab(&["chown", ds, "nobody-here", "/srv"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
