//! End-to-end: the diskfab binary on the XFS fixtures (scripts/fixture_xfs.sh): listing,
//! reading, info and diff agree with the kernel's loop mount and the source tree; writes are
//! refused with a clear error and leave the image untouched (xfs_repair -n stays clean).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn kernel_tree(root: &Path) -> BTreeSet<String> {
    let out = tool("find", &[root.to_str().unwrap(), "-mindepth", "1"]);
    out.lines()
        .map(|l| l[root.to_str().unwrap().len()..].to_string())
        .collect()
}

struct XfsMount(tempfile::TempDir);

impl XfsMount {
    fn new(img: &Path) -> XfsMount {
        let d = tempfile::tempdir().unwrap();
        tool(
            "mount",
            &[
                "-o",
                "loop,ro",
                img.to_str().unwrap(),
                d.path().to_str().unwrap(),
            ],
        );
        XfsMount(d)
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn ls_recursive_and_cat_on_xfs_match_the_kernel_mount() {
    let img = fixtures().join("xfs-v5.raw");
    let i = img.to_str().unwrap();
    let m = XfsMount::new(&img);
    let out = ok(&["ls", "--json", "-R", i, "/"]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let ours: BTreeSet<String> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, kernel_tree(m.0.path()), "path sets differ");
    for p in ["/etc/os-release", "/usr/bin/ls", "/xfstest/attrs"] {
        let o = diskfab(&["cat", i, p]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout == std::fs::read(m.0.path().join(&p[1..])).unwrap(),
            "{p}"
        );
    }
    let info = ok(&["info", "--json", i]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["volumes"][0]["filesystem"]["fs_type"], "xfs");
    assert_eq!(v["volumes"][0]["filesystem"]["label"], "debxfs");
}

#[test]
fn diff_of_the_v4_and_v5_fixtures_names_what_only_one_has() {
    let fix = fixtures();
    let a = fix.join("xfs-v4.raw");
    let b = fix.join("xfs-v5.raw");
    let o = diskfab(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.code() == Some(1),
        "diff exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("/xfstest"), "{}", &out[..out.len().min(2000)]);
    assert!(out.contains("/wide"), "{}", &out[..out.len().min(2000)]);
    let same = diskfab(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
}

#[test]
fn copy_in_and_customize_on_xfs_are_refused_and_leave_the_image_clean() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("w.raw");
    tool(
        "cp",
        &[
            "--sparse=always",
            fixtures().join("xfs-v5.raw").to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let before = sha(&img);
    let host = t.path().join("hello.txt");
    std::fs::write(&host, "hi\n").unwrap();
    let i = img.to_str().unwrap();
    for args in [
        vec!["copy-in", i, host.to_str().unwrap(), "/"],
        vec!["customize", i, "--mkdir", "/newdir"],
    ] {
        let o = diskfab(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("xfs") && err.contains("not supported"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(sha(&img), before, "a refused write changed the image");
    tool("xfs_repair", &["-n", i]);
}
