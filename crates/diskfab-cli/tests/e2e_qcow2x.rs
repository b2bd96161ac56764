//! qcow2 extended L2 entries, external data files and internal snapshots through the CLI,
//! checked against qemu-img.

mod common;
use common::*;

fn info(img: &str) -> serde_json::Value {
    serde_json::from_str(&tool("qemu-img", &["info", "--output=json", img])).unwrap()
}

#[test]
fn create_and_convert_with_extended_l2_make_images_qemu_reads_identically() {
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "extended_l2=on",
        &p("new.qcow2"),
        "8M",
    ]);
    let i = info(&p("new.qcow2"));
    assert_eq!(i["format-specific"]["data"]["extended-l2"], true);
    tool("qemu-img", &["check", "-q", &p("new.qcow2")]);
    // A source with data at sub-4 KiB granularity, converted with 16 KiB clusters (512-byte
    // subclusters).
    tool(
        "qemu-img",
        &["create", "-q", "-f", "raw", &p("src.raw"), "4M"],
    );
    tool(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0xab 1536 1024",
            "-c",
            "write -P 0xcd 1M 100k",
            "-c",
            "write -P 0x01 3M 4097",
            &p("src.raw"),
        ],
    );
    ok(&[
        "convert",
        &p("src.raw"),
        &p("out.qcow2"),
        "-O",
        "qcow2",
        "-o",
        "extended_l2=on,cluster_size=16K",
    ]);
    let i = info(&p("out.qcow2"));
    assert_eq!(i["format-specific"]["data"]["extended-l2"], true);
    assert_eq!(i["cluster-size"], 16384);
    tool("qemu-img", &["check", "-q", &p("out.qcow2")]);
    tool(
        "qemu-img",
        &["compare", "-q", &p("src.raw"), &p("out.qcow2")],
    );
    assert!(diskfab(&["check", &p("out.qcow2")]).status.success());
    // Too small a cluster for subclusters: a clear refusal, nothing left behind.
    let o = diskfab(&[
        "convert",
        &p("src.raw"),
        &p("bad.qcow2"),
        "-O",
        "qcow2",
        "-o",
        "extended_l2=on,cluster_size=8K",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("16K"));
    assert!(!t.path().join("bad.qcow2").exists());
}

#[test]
fn info_shows_the_external_data_file_and_the_gate_refuses_it_without_trust_with_exit_code_6() {
    let t = tempfile::tempdir().unwrap();
    let (img_dir, other) = (t.path().join("a/b"), t.path().join("other"));
    std::fs::create_dir_all(&img_dir).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let img = img_dir.join("img.qcow2");
    let img = img.to_str().unwrap();
    // Relative data file names: this QEMU resolves them against its working directory.
    let o = std::process::Command::new("qemu-img")
        .current_dir(&img_dir)
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=d.raw",
            img,
            "1M",
        ])
        .status()
        .unwrap();
    assert!(o.success());
    // A data file is raw bytes: refused until its directory is allowed.
    let o = diskfab(&["info", "--json", img]);
    assert_eq!(o.status.code(), Some(6));
    let dir = img_dir.to_str().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--json", "--backing-dir", dir, img])).unwrap();
    assert_eq!(v["image"]["format_specific"]["data_file"], "d.raw");
    assert_eq!(v["image"]["format_specific"]["data_file_raw"], false);
    // Now the data file is a symlink to a directory the gate does not allow.
    std::fs::rename(img_dir.join("d.raw"), other.join("d.raw")).unwrap();
    std::os::unix::fs::symlink(other.join("d.raw"), img_dir.join("d.raw")).unwrap();
    let o = diskfab(&["info", "--json", "--backing-dir", dir, img]);
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("external data file") && err.contains("--backing-dir"),
        "{err}"
    );
    let allowed = ok(&[
        "info",
        "--json",
        "--backing-dir",
        other.to_str().unwrap(),
        img,
    ]);
    assert!(allowed.contains("d.raw"));
}

#[test]
fn check_and_info_on_snapshotted_images_agree_with_qemu_img() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("s.qcow2");
    let img = img.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", img, "4M"]);
    tool("qemu-io", &["-c", "write -P 1 0 1M", img]);
    tool("qemu-img", &["snapshot", "-c", "golden", img]);
    tool("qemu-io", &["-c", "write -P 2 256k 64k", img]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", img])).unwrap();
    let list = &v["image"]["format_specific"]["snapshot_list"];
    assert_eq!(list[0]["name"], "golden");
    assert_eq!(list[0]["id"], info(img)["snapshots"][0]["id"]);
    assert_eq!(diskfab(&["check", img]).status.code(), Some(0));
    // Writing is refused with a clear message; the image is unchanged.
    let before = std::fs::read(img).unwrap();
    let o = diskfab(&["mkfs", img, "-t", "ext4"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("snapshots"));
    assert!(before == std::fs::read(img).unwrap());
}
