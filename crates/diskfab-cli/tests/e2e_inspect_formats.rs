//! `inspect` on guests whose databases come from the reference tools themselves: an rpmdb made by
//! rpm/rpmbuild, Windows hives made by hivex, initramfs images made by cpio and the compressors,
//! netplan and the other network/sudo formats.

mod common;
use common::*;
use std::fs;
use std::path::Path;

/// Builds `name` as a binary rpm with rpmbuild (in `top`) and returns the package file.
fn rpmbuild(top: &Path, name: &str, epoch: Option<u32>, arch: &str) -> String {
    fs::create_dir_all(top).unwrap();
    let spec = top.join(format!("{name}.spec"));
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    fs::write(
        &spec,
        format!(
            "Name: {name}\n{epoch}Version: 1.2.3\nRelease: 4.fc40\nSummary: Test package {name}\n\
             License: MIT\nBuildArch: {arch}\n%description\nA test package.\n%install\n\
             mkdir -p %{{buildroot}}/usr/share/{name}\necho hi > %{{buildroot}}/usr/share/{name}/f\n\
             %files\n/usr/share/{name}/f\n"
        ),
    )
    .unwrap();
    tool(
        "rpmbuild",
        &[
            "-bb",
            "--quiet",
            "--define",
            &format!("_topdir {}", top.display()),
            spec.to_str().unwrap(),
        ],
    );
    format!(
        "{}/RPMS/{arch}/{name}-1.2.3-4.fc40.{arch}.rpm",
        top.display()
    )
}

/// `rpm` with an sqlite database in `root`'s /var/lib/rpm.
fn rpm(root: &Path, args: &[&str]) -> String {
    let mut a = vec![
        "--define",
        "_db_backend sqlite",
        "--root",
        root.to_str().unwrap(),
        "--dbpath",
        "/var/lib/rpm",
    ];
    a.extend_from_slice(args);
    tool("rpm", &a)
}

#[test]
fn sqlite_rpmdb_written_by_rpm_lists_the_same_packages_as_rpm_query() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("fedora");
    write(
        &g,
        "/etc/os-release",
        "ID=fedora\nVERSION_ID=40\nNAME=Fedora\n",
    );
    write(&g, "/usr/bin/dnf", "");
    let top = t.path().join("build");
    let pkgs = [
        rpmbuild(&top, "tinypkg", Some(3), "noarch"),
        rpmbuild(&top, "other-tool", None, "x86_64"),
    ];
    rpm(&g, &["--initdb"]);
    for p in &pkgs {
        rpm(&g, &["-i", "--nodeps", "--ignorearch", "--noscripts", p]);
    }
    let db = g.join("var/lib/rpm/rpmdb.sqlite");
    assert!(db.exists(), "rpm wrote an sqlite database");
    // A transaction left in the write-ahead log (not checkpointed) must be read too: duplicate a
    // row from a writer that exits without closing.
    tool(
        "python3",
        &[
            "-c",
            "import sqlite3,sys,os\nc=sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA wal_autocheckpoint=0')\n\
             c.execute('INSERT INTO Packages(blob) SELECT blob FROM Packages ORDER BY hnum LIMIT 1')\n\
             c.commit()\nos._exit(0)",
            db.to_str().unwrap(),
        ],
    );
    assert!(
        fs::metadata(g.join("var/lib/rpm/rpmdb.sqlite-wal"))
            .unwrap()
            .len()
            > 0
    );
    let os = inspect_tree(t.path(), &g);
    let mut want: Vec<String> = rpm(
        &g,
        &[
            "-qa",
            "--qf",
            "%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}\\n",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    want.sort();
    assert_eq!(want.len(), 3, "rpm sees both packages and the WAL row");
    let mut ours: Vec<String> = os["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}|{}|{}|{}|{}|{}",
                a["name"].as_str().unwrap(),
                a["epoch"],
                a["version"].as_str().unwrap(),
                a["release"].as_str().unwrap_or(""),
                a["arch"].as_str().unwrap_or(""),
                a["summary"].as_str().unwrap_or("")
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, want);
    assert_eq!(
        (
            os["package_format"].as_str(),
            os["package_management"].as_str()
        ),
        (Some("rpm"), Some("dnf"))
    );
    assert!(os["warnings"].as_array().unwrap().is_empty(), "{os}");
}

#[test]
fn berkeley_db_rpmdb_and_a_corrupt_sqlite_rpmdb_give_warnings() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("centos7");
    write(&g, "/etc/os-release", "ID=centos\nVERSION_ID=7\n");
    // Berkeley DB hash magic at offset 12, as in CentOS 7's /var/lib/rpm/Packages.
    let mut bdb = vec![0u8; 4096];
    bdb[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
    fs::create_dir_all(g.join("var/lib/rpm")).unwrap();
    fs::write(g.join("var/lib/rpm/Packages"), &bdb).unwrap();
    let os = inspect_tree(t.path(), &g);
    assert_eq!(os["package_format"], "rpm");
    assert!(os["applications"].as_array().unwrap().is_empty());
    let w = os["warnings"].to_string();
    assert!(w.contains("Berkeley DB"), "{w}");
    let g = t.path().join("corrupt");
    write(&g, "/etc/os-release", "ID=fedora\nVERSION_ID=40\n");
    write(
        &g,
        "/var/lib/rpm/rpmdb.sqlite",
        "SQLite format 3\0 but then garbage",
    );
    let os = inspect_tree(t.path(), &g);
    assert!(os["applications"].as_array().unwrap().is_empty());
    assert!(os["warnings"].to_string().contains("rpmdb.sqlite"), "{os}");
}
