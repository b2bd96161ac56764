//! End-to-end: the diskfab binary on a real Debian image (mke2fs -d from debootstrap, MBR, qcow2),
//! checked against the source tree, qemu-img, e2fsck and the kernel's own ext4 driver.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn host_tree(root: &Path) -> BTreeSet<String> {
    let out = tool("find", &[root.to_str().unwrap(), "-mindepth", "1"]);
    out.lines()
        .map(|l| l[root.to_str().unwrap().len()..].to_string())
        .collect()
}

#[test]
fn info_reports_qcow2_mbr_and_the_ext4_root() {
    let fix = fixtures();
    let img = fix.join("debian-mbr.qcow2");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--json", img.to_str().unwrap()])).unwrap();
    assert_eq!(v["image"]["format"], "qcow2");
    assert_eq!(v["image"]["virtual_size"], 2u64 << 30);
    assert_eq!(v["partition_table"], "mbr");
    let fs = &v["volumes"][0]["filesystem"];
    assert_eq!(fs["fs_type"], "ext4");
    assert_eq!(fs["label"], "debroot");
    assert_eq!(fs["uuid"], "4f0e6a54-2a4e-4c6b-9d3c-1a2b3c4d5e6f");
    assert_eq!(v["volumes"][0]["partition"]["start"], 1u64 << 20);
}

#[test]
fn recursive_listing_equals_the_debootstrap_tree_with_modes_and_owners() {
    let fix = fixtures();
    let tree = fix.join("debian-minbase");
    let img = fix.join("debian-mbr.qcow2");
    let out = ok(&["ls", "--json", "-R", img.to_str().unwrap(), "/"]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let ours: BTreeSet<String> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .filter(|p| p != "/lost+found")
        .collect();
    assert_eq!(ours, host_tree(&tree), "path sets differ");
    for e in &entries {
        let p = e["path"].as_str().unwrap();
        if p == "/lost+found" {
            continue;
        }
        let m = fs::symlink_metadata(tree.join(&p[1..])).unwrap();
        assert_eq!(
            e["perm"].as_u64().unwrap() as u32,
            m.mode() & 0o7777,
            "{p} mode"
        );
        assert_eq!(e["uid"].as_u64().unwrap() as u32, m.uid(), "{p} uid");
        assert_eq!(e["gid"].as_u64().unwrap() as u32, m.gid(), "{p} gid");
        if m.is_file() {
            assert_eq!(e["size"].as_u64().unwrap(), m.len(), "{p} size");
        }
        if m.file_type().is_symlink() {
            let t = fs::read_link(tree.join(&p[1..])).unwrap();
            assert_eq!(
                e["target"].as_str().unwrap(),
                t.to_str().unwrap(),
                "{p} target"
            );
        }
    }
}

#[test]
fn cat_reads_files_and_follows_merged_usr_symlinks_inside_the_image() {
    let fix = fixtures();
    let tree = fix.join("debian-minbase");
    let img = fix.join("debian-mbr.qcow2");
    let o = diskfab(&["cat", img.to_str().unwrap(), "/etc/os-release"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, fs::read(tree.join("etc/os-release")).unwrap());
    // /bin -> usr/bin and sh -> dash: resolved inside the image, never on the host.
    let o = diskfab(&["cat", img.to_str().unwrap(), "/bin/sh"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, fs::read(tree.join("usr/bin/dash")).unwrap());
}

#[test]
fn missing_path_exits_5_and_usage_error_exits_2() {
    let fix = fixtures();
    let img = fix.join("debian-mbr.qcow2");
    let o = diskfab(&["cat", img.to_str().unwrap(), "/etc/nope"]);
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/etc/nope") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(diskfab(&["ls"]).status.code(), Some(2));
    assert_eq!(
        diskfab(&["ls", img.to_str().unwrap(), "-p", "7"])
            .status
            .code(),
        Some(5)
    );
}

/// Builds a host tree exercising every node type copy-in must keep.
fn make_host_tree(root: &Path) {
    fs::create_dir_all(root.join("app/conf")).unwrap();
    fs::write(root.join("app/conf/app.toml"), "name = 'demo'\n").unwrap();
    fs::write(root.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("app/run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::chown(root.join("app/conf"), Some(1000), Some(1001)).unwrap();
    std::os::unix::fs::symlink("conf/app.toml", root.join("app/link")).unwrap();
    fs::hard_link(root.join("app/run.sh"), root.join("app/run-again.sh")).unwrap();
    tool("mkfifo", &[root.join("app/fifo").to_str().unwrap()]);
    let big = fs::File::create(root.join("app/sparse.bin")).unwrap();
    big.set_len(300 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    big.write_all_at(b"tail data", (300 << 20) - 9).unwrap();
    big.write_all_at(&[0xa5; 100_000], 1 << 20).unwrap();
    tool(
        "setfattr",
        &[
            "-n",
            "user.purpose",
            "-v",
            "demo",
            root.join("app/run.sh").to_str().unwrap(),
        ],
    );
    let names: Vec<String> = (0..400)
        .map(|i| format!("many/file-with-a-longish-name-{i:04}"))
        .collect();
    fs::create_dir(root.join("app/many")).unwrap();
    for n in &names {
        fs::write(root.join("app").join(n), n.as_bytes()).unwrap();
    }
}

fn assert_same_file(a: &Path, b: &Path) {
    let (ma, mb) = (
        fs::symlink_metadata(a).unwrap(),
        fs::symlink_metadata(b).unwrap(),
    );
    assert_eq!(ma.mode(), mb.mode(), "{} mode", b.display());
    assert_eq!(
        (ma.uid(), ma.gid()),
        (mb.uid(), mb.gid()),
        "{} owner",
        b.display()
    );
    assert_eq!(ma.mtime(), mb.mtime(), "{} mtime", b.display());
    if ma.is_file() {
        assert_eq!(
            fs::read(a).unwrap(),
            fs::read(b).unwrap(),
            "{} content",
            b.display()
        );
    }
    if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    }
}

#[test]
fn clone_edit_and_copy_in_are_seen_by_the_kernel_and_the_base_is_untouched() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let base_hash = sha(&base);
    let tmp = tempfile::tempdir().unwrap();
    let clones = tmp.path().join("clones");
    let fixs = fix.to_str().unwrap();
    ok(&[
        "clone",
        base.to_str().unwrap(),
        "--count",
        "3",
        "--out",
        clones.to_str().unwrap(),
        "--cluster-size",
        "4K",
    ]);
    let c1 = clones.join("debian-mbr-0001.qcow2");
    let c2 = clones.join("debian-mbr-0002.qcow2");
    let c2s = c2.to_str().unwrap();
    // The base lives outside the clones' directory; a clone diskfab made opens with no flag.
    let o = diskfab(&["ls", c2s, "/"]);
    assert!(
        o.status.success(),
        "a clone must open without flags: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let host = tmp.path().join("host");
    make_host_tree(&host);
    let app = host.join("app");
    ok(&[
        "--backing-dir",
        fixs,
        "copy-in",
        c2s,
        app.to_str().unwrap(),
        "/opt",
    ]);
    ok(&["--backing-dir", fixs, "mkdir", "--parents", c2s, "/srv/a/b"]);
    ok(&["--backing-dir", fixs, "chmod", c2s, "0700", "/srv/a"]);
    ok(&[
        "--backing-dir",
        fixs,
        "chown",
        c2s,
        "_apt:nogroup",
        "/srv/a/b",
    ]);
    ok(&[
        "--backing-dir",
        fixs,
        "ln",
        "-s",
        c2s,
        "/etc/hostname",
        "/srv/h",
    ]);
    ok(&["--backing-dir", fixs, "mv", c2s, "/etc/motd", "/srv/"]);
    ok(&["--backing-dir", fixs, "rm", "-r", c2s, "/usr/share/doc"]);
    assert_eq!(sha(&base), base_hash, "base image was modified");
    tool("qemu-img", &["check", c2s]);
    tool(
        "qemu-img",
        &["compare", c1.to_str().unwrap(), base.to_str().unwrap()],
    );

    let raw = tmp.path().join("c2.raw");
    to_raw(&c2, &raw);
    let (start, size) = sfdisk_part(&raw, 1);
    e2fsck_clean(&raw, start, size);
    let m = Mount::ext(&raw, start, size);
    let opt = m.path().join("opt/app");
    for rel in [
        "conf",
        "conf/app.toml",
        "run.sh",
        "run-again.sh",
        "link",
        "fifo",
        "sparse.bin",
        "many/file-with-a-longish-name-0399",
    ] {
        assert_same_file(&app.join(rel), &opt.join(rel));
    }
    assert_eq!(fs::read_dir(opt.join("many")).unwrap().count(), 400);
    let (r1, r2) = (
        fs::metadata(opt.join("run.sh")).unwrap(),
        fs::metadata(opt.join("run-again.sh")).unwrap(),
    );
    assert_eq!(r1.ino(), r2.ino(), "hard link kept");
    assert!(
        fs::metadata(opt.join("sparse.bin")).unwrap().blocks() * 512 < 8 << 20,
        "sparse file stayed sparse"
    );
    let x = tool(
        "getfattr",
        &[
            "--only-values",
            "-n",
            "user.purpose",
            opt.join("run.sh").to_str().unwrap(),
        ],
    );
    assert_eq!(x, "demo");
    let srv = m.path().join("srv");
    assert_eq!(fs::metadata(srv.join("a")).unwrap().mode() & 0o7777, 0o700);
    let b = fs::metadata(srv.join("a/b")).unwrap();
    assert_eq!(
        (b.uid(), b.gid()),
        (42, 65534),
        "_apt:nogroup resolved through the image's passwd/group"
    );
    assert_eq!(
        fs::read_link(srv.join("h")).unwrap().to_str().unwrap(),
        "/etc/hostname"
    );
    assert!(srv.join("motd").exists() && !m.path().join("etc/motd").exists());
    assert!(!m.path().join("usr/share/doc").exists());
}

#[test]
fn copy_out_recreates_the_tree_on_the_host() {
    let fix = fixtures();
    let tree = fix.join("debian-minbase");
    let img = fix.join("debian-mbr.qcow2");
    let tmp = tempfile::tempdir().unwrap();
    ok(&[
        "copy-out",
        img.to_str().unwrap(),
        "/etc/apt",
        "/usr/bin/dash",
        tmp.path().to_str().unwrap(),
    ]);
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(tree.join("etc/apt"))
        .arg(tmp.path().join("apt"))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_same_file(&tree.join("usr/bin/dash"), &tmp.path().join("dash"));
}
