//! End-to-end: the catalog records what inspection finds in real and phony images and finds
//! them again by content; rescan notices changed images.

mod common;
use common::*;
use std::path::Path;

fn write(root: &Path, p: &str, s: &str) {
    let f = root.join(p);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, s).unwrap();
}

/// A phony guest with os-release, a dpkg status file and a module tree, made by mke2fs -d.
fn phony(
    work: &Path,
    name: &str,
    id: &str,
    version: &str,
    ssh: Option<&str>,
    virtio: bool,
) -> std::path::PathBuf {
    let t = work.join(format!("tree-{name}"));
    write(
        &t,
        "etc/os-release",
        &format!("ID={id}\nVERSION_ID=\"{version}\"\nNAME=\"{id}\"\n"),
    );
    write(&t, "etc/hostname", &format!("{name}\n"));
    write(&t, "usr/bin/.keep", "");
    let mut status = String::from(
        "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n",
    );
    if let Some(v) = ssh {
        status += &format!("Package: openssh-server\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n\n");
    }
    write(&t, "var/lib/dpkg/status", &status);
    let kv = "6.1.0-18-amd64";
    let mut dep = String::from("kernel/drivers/ata/ahci.ko:\n");
    if virtio {
        dep += "kernel/drivers/block/virtio_blk.ko:\n";
    }
    write(&t, &format!("lib/modules/{kv}/modules.dep"), &dep);
    write(&t, &format!("boot/vmlinuz-{kv}"), "x");
    let img = work.join(format!("{name}.raw"));
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-d",
            t.to_str().unwrap(),
            img.to_str().unwrap(),
            "16M",
        ],
    );
    img
}

fn ids(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn catalog_finds_images_by_distro_version_packages_drivers_and_tags() {
    let fix = fixtures();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let db = w.join("cat.db");
    let c = db.to_str().unwrap();
    let debian = w.join("debian.qcow2");
    std::fs::copy(fix.join("debian-mbr.qcow2"), &debian).unwrap();
    let old = phony(w, "old", "debian", "11", Some("1:8.4p1-5+deb11u3"), false);
    let new = phony(w, "new", "debian", "13", Some("1:9.9p1-1"), true);
    let fed = phony(w, "fed", "fedora", "40", None, true);
    ok(&[
        "catalog",
        "--catalog",
        c,
        "add",
        debian.to_str().unwrap(),
        old.to_str().unwrap(),
        "--tag",
        "env=prod",
    ]);
    ok(&[
        "catalog",
        "--catalog",
        c,
        "add",
        new.to_str().unwrap(),
        fed.to_str().unwrap(),
    ]);
    let search = |q: &str| -> Vec<String> {
        let o = diskfab(&["catalog", "--catalog", c, "search", "--json", q]);
        assert!(
            o.status.code().is_some_and(|x| x <= 1),
            "{q}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        ids(&String::from_utf8_lossy(&o.stdout))
    };
    // The real Debian 12 image: its packages come from its own dpkg status (88 packages).
    assert_eq!(
        search("distro=debian version>=12"),
        vec!["debian.qcow2", "new.raw"]
    );
    assert_eq!(search("distro=debian version<12"), vec!["old.raw"]);
    assert_eq!(search("package=dpkg>=1.21"), vec!["debian.qcow2"]);
    assert_eq!(search("package=openssh-server>=1:9"), vec!["new.raw"]);
    assert_eq!(
        search("!package=openssh-server"),
        vec!["debian.qcow2", "fed.raw"]
    );
    assert_eq!(search("driver=virtio_blk"), vec!["new.raw", "fed.raw"]);
    assert_eq!(
        search("distro=debian !driver=virtio_blk env=prod"),
        vec!["debian.qcow2", "old.raw"]
    );
    assert_eq!(
        search("distro=fedora,debian arch=x86_64"),
        vec!["debian.qcow2"]
    );
    assert!(search("distro=windows").is_empty());
    // Tags, show, remove.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["catalog", "--catalog", c, "list", "--json"])).unwrap();
    let fed_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("fed.raw"))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    ok(&[
        "catalog",
        "--catalog",
        c,
        "tag",
        &fed_id.to_string(),
        "owner=team-a",
    ]);
    assert_eq!(search("owner=team-a"), vec!["fed.raw"]);
    let show: serde_json::Value = serde_json::from_str(&ok(&[
        "catalog",
        "--catalog",
        c,
        "show",
        "--json",
        fed.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(show["attrs"]["distro"], "fedora");
    assert!(show["report"]["operating_systems"].is_array());
    ok(&[
        "catalog",
        "--catalog",
        c,
        "untag",
        &fed_id.to_string(),
        "owner",
    ]);
    assert!(search("owner=team-a").is_empty());
    // Rescan: only the changed image is re-inspected, and its new content is searchable.
    ok(&["customize", old.to_str().unwrap(), "--hostname", "renamed"]);
    let r: serde_json::Value =
        serde_json::from_str(&ok(&["catalog", "--catalog", c, "rescan", "--json"])).unwrap();
    let updated: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "updated")
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert_eq!(updated.len(), 1, "{r}");
    assert!(updated[0].ends_with("old.raw"));
    assert_eq!(
        search("hostname=renamed env=prod"),
        vec!["old.raw"],
        "user tags survive a rescan"
    );
    ok(&["catalog", "--catalog", c, "remove", &fed_id.to_string()]);
    assert_eq!(search("driver=virtio_blk"), vec!["new.raw"]);
    // A malformed query is a usage error.
    assert_eq!(
        diskfab(&["catalog", "--catalog", c, "search", "nonsense"])
            .status
            .code(),
        Some(2)
    );
}
