//! End-to-end on btrfs images made by mkfs.btrfs and the kernel (scripts/fixture_btrfs.sh):
//! `ls -R`, `cat`, `inspect`, `diff` work unchanged through the read-only btrfs driver, the
//! Fedora layout (top level holding only subvolumes `root` and `home`) shows `root` as `/`,
//! `DISKFAB_BTRFS_SUBVOL` selects another subvolume, and every write is refused before
//! anything is written.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

fn diskfab_env(args: &[&str], subvol: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diskfab"))
        .args(args)
        .env("DISKFAB_BTRFS_SUBVOL", subvol)
        .output()
        .expect("run diskfab")
}

fn host_tree(root: &Path) -> BTreeSet<String> {
    let out = tool("find", &[root.to_str().unwrap(), "-mindepth", "1"]);
    out.lines()
        .map(|l| l[root.to_str().unwrap().len()..].to_string())
        .collect()
}

fn listing_equals_the_debian_tree(img: &Path) {
    let tree = fixtures().join("debian-minbase");
    let out = ok(&["ls", "--json", "-R", img.to_str().unwrap(), "/"]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let ours: BTreeSet<String> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, host_tree(&tree), "path sets differ");
    for e in &entries {
        let p = e["path"].as_str().unwrap();
        let m = std::fs::symlink_metadata(tree.join(&p[1..])).unwrap();
        assert_eq!(
            e["perm"].as_u64().unwrap() as u32,
            m.mode() & 0o7777,
            "{p} mode"
        );
        assert_eq!(e["uid"].as_u64().unwrap() as u32, m.uid(), "{p} uid");
        if m.is_file() {
            assert_eq!(e["size"].as_u64().unwrap(), m.len(), "{p} size");
        }
    }
}

#[test]
fn ls_recursive_on_both_btrfs_layouts_equals_the_debootstrap_tree() {
    let fix = fixtures();
    listing_equals_the_debian_tree(&fix.join("btrfs-mkfs-r.raw"));
    listing_equals_the_debian_tree(&fix.join("btrfs-fedora.raw"));
}

#[test]
fn cat_reads_files_from_the_root_and_from_a_selected_compressed_subvolume() {
    let fix = fixtures();
    let want = std::fs::read(fix.join("debian-minbase/etc/os-release")).unwrap();
    for img in ["btrfs-mkfs-r.raw", "btrfs-fedora.raw"] {
        let o = diskfab(&["cat", fix.join(img).to_str().unwrap(), "/etc/os-release"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, want, "{img}");
    }
    let passwd = std::fs::read(fix.join("debian-minbase/etc/passwd")).unwrap();
    let img = fix.join("btrfs-fedora.raw");
    for c in ["zstd", "zlib", "lzo"] {
        let o = diskfab_env(
            &["cat", img.to_str().unwrap(), &format!("/{c}/etc/passwd")],
            "home",
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, passwd, "{c}");
        let o = diskfab_env(
            &["cat", img.to_str().unwrap(), &format!("/{c}/text.txt")],
            "home",
        );
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.starts_with("line 0 of a compressible") && text.lines().count() == 60000,
            "{c}"
        );
    }
    let top = diskfab_env(&["ls", img.to_str().unwrap(), "/"], "/");
    assert!(top.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&top.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        names,
        ["home", "root"],
        "the top level shows the subvolumes as directories"
    );
    let bad = diskfab_env(&["ls", img.to_str().unwrap(), "/"], "root/etc");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a subvolume"));
}

#[test]
fn inspect_finds_debian_on_the_btrfs_root_of_both_layouts() {
    let fix = fixtures();
    for img in ["btrfs-mkfs-r.raw", "btrfs-fedora.raw"] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["inspect", "--json", fix.join(img).to_str().unwrap()]))
                .unwrap();
        let os = &v["operating_systems"][0];
        assert_eq!(os["distro"], "debian", "{img}: {v}");
        assert_eq!(os["major_version"], 12, "{img}");
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "info",
        "--json",
        fix.join("btrfs-fedora.raw").to_str().unwrap(),
    ]))
    .unwrap();
    let fs = &v["volumes"][0]["filesystem"];
    assert_eq!(fs["fs_type"], "btrfs");
    assert_eq!(fs["uuid"], "6c1b2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e");
}

#[test]
fn diff_of_two_btrfs_images_reports_exactly_the_known_changes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let script = "mkdir -p A/etc A/d/empty A/x
         echo one > A/etc/a.txt; echo same > A/etc/same; echo gone > A/etc/gone
         ln -s target1 A/etc/link; echo hl > A/x/h1
         cp -a A B
         echo two > B/etc/a.txt; rm B/etc/gone; echo new > B/etc/new; ln -sfn target2 B/etc/link
         chmod 600 B/etc/same; chown 1000:1000 B/x/h1; ln B/x/h1 B/x/h2
         rmdir B/d/empty; setfattr -n user.k -v val B/etc/same
         head -c 300000 /dev/urandom > B/etc/big.bin";
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(w)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in ["A", "B"] {
        let img = w.join(format!("{n}.raw"));
        tool("truncate", &["-s", "256M", img.to_str().unwrap()]);
        tool(
            "mkfs.btrfs",
            &[
                "-q",
                "-r",
                w.join(n).to_str().unwrap(),
                img.to_str().unwrap(),
            ],
        );
    }
    let (a, b) = (w.join("A.raw"), w.join("B.raw"));
    let o = diskfab(&["diff", "--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("removed", "/d/empty"),
        ("modified", "/etc/a.txt"),
        ("added", "/etc/big.bin"),
        ("removed", "/etc/gone"),
        ("modified", "/etc/link"),
        ("added", "/etc/new"),
        ("modified", "/etc/same"),
        ("modified", "/x/h1"),
        ("added", "/x/h2"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want);
    let same = diskfab(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0));
    assert!(same.stdout.is_empty());
}

#[test]
fn writes_are_refused_with_a_clear_message_and_the_image_is_unchanged() {
    let fix = fixtures();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("copy.raw");
    tool(
        "cp",
        &[
            "--sparse=always",
            fix.join("btrfs-mkfs-r.raw").to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let before = sha(&img);
    let i = img.to_str().unwrap();
    for args in [
        vec!["customize", i, "--hostname", "changed"],
        vec!["mkdir", i, "/new"],
        vec!["rm", i, "/etc/hostname"],
    ] {
        let o = diskfab(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("btrfs is read-only in diskfab: writing is not supported yet"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(sha(&img), before, "the image was modified");
}
