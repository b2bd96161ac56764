//! `inspect` on guests whose databases come from the reference tools themselves: an rpmdb made by
//! rpm/rpmbuild, initramfs images made by cpio and the compressors, netplan YAML checked against
//! netplan's own generator, and the other network, sudo and AppArmor files.

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
    assert_documented(&os);
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

/// An initramfs like the distributions build: an uncompressed early-microcode cpio archive, then
/// the main cpio archive compressed with `compress` (a shell pipeline stage).
fn initramfs(dir: &Path, out: &Path, version: &str, compress: &str) {
    let early = dir.join("early");
    let main = dir.join("main");
    let _ = fs::remove_dir_all(&early);
    let _ = fs::remove_dir_all(&main);
    write(&early, "kernel/x86/microcode/GenuineIntel.bin", "ucode");
    let m = format!("usr/lib/modules/{version}/kernel/drivers");
    write(&main, &format!("{m}/block/virtio_blk.ko.xz"), "x");
    write(&main, &format!("{m}/scsi/virtio_scsi.ko.zst"), "x");
    write(&main, &format!("{m}/net/virtio_net.ko"), "x");
    write(
        &main,
        &format!("{m}/net/ethernet/intel/e1000/e1000.ko.gz"),
        "x",
    );
    write(&main, &format!("{m}/hv/hv-vmbus.ko"), "x");
    write(&main, &format!("{m}/misc/not-a-hypervisor-driver.ko"), "x");
    write(
        &main,
        "usr/lib/firmware/looks-like.ko",
        "not a module: outside kernel/",
    );
    write(&main, "init", "#!/bin/sh\n");
    let script = format!(
        "set -e; (cd '{e}' && find . | cpio -o -H newc --quiet) > '{o}'; \
         (cd '{m}' && find . | cpio -o -H newc --quiet | {compress}) >> '{o}'",
        e = early.display(),
        m = main.display(),
        o = out.display()
    );
    tool("bash", &["-c", &script]);
}

#[test]
fn initramfs_images_made_by_cpio_and_each_compressor_list_their_hypervisor_drivers() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("deb");
    write(&g, "/etc/os-release", "ID=debian\nVERSION_ID=12\n");
    let kinds = [
        ("gzip", "gzip -9"),
        ("xz", "xz --check=crc32 -T1"),
        ("zstd", "zstd -q -19"),
        ("lz4", "lz4 -l -q"),
        ("lz4f", "lz4 -q"),
    ];
    for (i, (k, c)) in kinds.iter().enumerate() {
        let v = format!("6.1.0-{i}-{k}");
        write(&g, &format!("/boot/vmlinuz-{v}"), "k");
        initramfs(t.path(), &g.join(format!("boot/initrd.img-{v}")), &v, c);
    }
    // Hostile: cpio header claiming a huge file, then junk that is no known compression.
    write(&g, "/boot/vmlinuz-9.9.9-bad", "k");
    write(
        &g,
        "/boot/initrd.img-9.9.9-bad",
        &format!(
            "070701{}ffffffff{}0000000a00000000../../etc\0",
            "0".repeat(48),
            "0".repeat(32)
        ),
    );
    let os = inspect_tree(t.path(), &g);
    let kernels = os["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 6, "{os}");
    for (i, (k, _)) in kinds.iter().enumerate() {
        let kern = &kernels[i];
        assert_eq!(kern["version"], format!("6.1.0-{i}-{k}"));
        let ir = &kern["initramfs"];
        let want_seg = if k.starts_with("lz4") { "lz4" } else { k };
        assert_eq!(
            ir["segments"],
            serde_json::json!(["cpio", want_seg]),
            "{k}: {ir}"
        );
        assert_eq!(ir["modules"], 6, "{k}");
        assert_eq!(
            ir["drivers"],
            serde_json::json!([
                "virtio_blk",
                "virtio_scsi",
                "virtio_net",
                "e1000",
                "hv_vmbus"
            ]),
            "{k}"
        );
    }
    assert_eq!(kernels[5]["initramfs"]["modules"], 0);
    assert_documented(&os);
    let w = os["warnings"].to_string();
    assert!(
        w.contains("initrd.img-9.9.9-bad") && w.contains("past the end"),
        "{w}"
    );
    assert_eq!(os["warnings"].as_array().unwrap().len(), 1, "{w}");
}

/// (name, mac, method, addresses, gateway, dns, dhcp6) of the interfaces from `source_prefix`.
fn ifaces(os: &serde_json::Value, source_prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = os["network"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["source"].as_str().unwrap().starts_with(source_prefix))
        .map(|i| {
            format!(
                "{} {} {} {} {} {} {}",
                i["name"],
                i["mac"],
                i["method"],
                i["addresses"],
                i["gateway"],
                i["dns"],
                i["dhcp6"]
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn netplan_yaml_means_what_netplan_generate_makes_of_it_for_networkd() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("ubuntu");
    write(&g, "/etc/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\n");
    let yaml = "network:\n  version: 2\n  ethernets:\n    lan:\n      match:\n        macaddress: \"52:54:00:AA:BB:01\"\n      set-name: eth0\n      addresses: [10.0.0.5/24]\n      routes:\n        - to: default\n          via: 10.0.0.1\n      nameservers:\n        addresses: [1.1.1.1, 9.9.9.9]\n    ens4:\n      dhcp4: true\n    ens5:\n      dhcp4: yes\n      dhcp6: true\n      addresses: [\"192.168.5.5/24\"]\n      gateway4: 192.168.5.1\n";
    write(&g, "/etc/netplan/50-cloud-init.yaml", yaml);
    let ours = inspect_tree(t.path(), &g);
    let from_yaml = ifaces(&ours, "netplan:/etc/netplan/50-cloud-init.yaml");
    assert_eq!(from_yaml.len(), 3, "{ours}");
    // netplan's own generator turns the same YAML into networkd files; read those instead.
    let h = t.path().join("generated");
    write(&h, "/etc/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\n");
    write(&h, "/etc/netplan/50-cloud-init.yaml", yaml);
    tool(
        "bash",
        &[
            "-c",
            &format!(
                "chmod 600 '{0}/etc/netplan/'*; /usr/lib/netplan/generate --root-dir '{0}' && rm -r '{0}/etc/netplan'",
                h.display()
            ),
        ],
    );
    let gen = inspect_tree(t.path(), &h);
    assert_eq!(from_yaml, ifaces(&gen, "systemd-networkd"), "{gen}");
    assert_documented(&ours);
    assert!(
        from_yaml
            .iter()
            .any(|i| i.contains("\"10.0.0.1\"") && i.contains("\"52:54:00:aa:bb:01\"")),
        "{from_yaml:?}"
    );
    let binds = ours["mac_bindings"].to_string();
    assert!(
        binds.contains("52:54:00:aa:bb:01") && binds.contains("eth0"),
        "{binds}"
    );
}

#[test]
fn mac_bindings_sudo_rights_and_apparmor_mode_come_from_their_files() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("guest");
    write(&g, "/etc/os-release", "ID=debian\nVERSION_ID=12\n");
    write(&g, "/etc/udev/rules.d/70-persistent-net.rules", "# generated\nSUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"52:54:00:00:00:0A\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"\n");
    write(
        &g,
        "/etc/NetworkManager/system-connections/w.nmconnection",
        "[connection]\nid=w\n[ethernet]\nmac-address=52:54:00:00:00:0B\n[ipv4]\nmethod=auto\n",
    );
    write(
        &g,
        "/etc/systemd/network/5.network",
        "[Match]\nMACAddress=52:54:00:00:00:0c\n[Network]\nDHCP=yes\n",
    );
    write(&g, "/etc/passwd", "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\ncarol:x:1002:27::/home/carol:/bin/bash\ndave:x:1003:1003::/home/dave:/bin/sh\n");
    write(
        &g,
        "/etc/group",
        "root:x:0:\nsudo:x:27:alice\nops:x:1500:bob\nusers:x:100:dave\n",
    );
    let sudoers = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";
    let ops = "%ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n";
    write(&g, "/etc/sudoers", sudoers);
    write(&g, "/etc/sudoers.d/ops", ops);
    write(&g, "/etc/sudoers.d/README.dpkg-old", "dave ALL=(ALL) ALL\n");
    // The reference tool accepts both files.
    for f in ["etc/sudoers", "etc/sudoers.d/ops"] {
        tool("visudo", &["-c", "-q", "-f", g.join(f).to_str().unwrap()]);
    }
    write(
        &g,
        "/etc/default/grub",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n",
    );
    write(&g, "/etc/apparmor.d/usr.sbin.a", "/usr/sbin/a {\n}\n");
    write(
        &g,
        "/etc/apparmor.d/usr.sbin.b",
        "profile b /usr/sbin/b flags=(attach_disconnected,complain) {\n}\n",
    );
    write(&g, "/etc/apparmor.d/usr.sbin.c", "/usr/sbin/c {\n}\n");
    write(&g, "/etc/apparmor.d/usr.sbin.d", "/usr/sbin/d {\n}\n");
    write(&g, "/etc/apparmor.d/tunables/global", "@{HOME}=/home/\n");
    write(&g, "/etc/apparmor.d/disable/usr.sbin.c", "");
    write(&g, "/etc/apparmor.d/force-complain/usr.sbin.d", "");
    let os = inspect_tree(t.path(), &g);
    let mut macs: Vec<String> = os["mac_bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {}",
                b["mac"].as_str().unwrap(),
                b["source"].as_str().unwrap().split(':').next().unwrap()
            )
        })
        .collect();
    macs.sort();
    assert_eq!(
        macs,
        [
            "52:54:00:00:00:0a udev",
            "52:54:00:00:00:0b networkmanager",
            "52:54:00:00:00:0c systemd-networkd"
        ]
    );
    let admins: Vec<(&str, bool)> = os["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["admin"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        admins,
        [
            ("root", true),
            ("alice", true),
            ("bob", true),
            ("carol", true),
            ("dave", false)
        ],
        "sudoers user, sudo member, %ops member, sudo as primary group; not the ignored file"
    );
    assert_eq!(os["admin_groups"], serde_json::json!(["ops", "sudo"]));
    assert_eq!(
        os["apparmor_mode"],
        serde_json::json!({"mode": "mixed", "enforce": 1, "complain": 2, "disabled": 1})
    );
    assert_documented(&os);
    write(
        &g,
        "/etc/default/grub",
        "GRUB_CMDLINE_LINUX=\"apparmor=0\"\n",
    );
    assert_eq!(
        inspect_tree(t.path(), &g)["apparmor_mode"]["mode"],
        "disabled"
    );
}
