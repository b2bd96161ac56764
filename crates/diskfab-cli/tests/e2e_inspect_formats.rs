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

/// A hive built by hivex (hivexregedit --merge) from .reg text onto an empty hive.
fn hive(dir: &Path, name: &str, reg: &str) -> std::path::PathBuf {
    let blank = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/blank_hive.py");
    let h = dir.join(name);
    tool("python3", &[blank.to_str().unwrap(), h.to_str().unwrap()]);
    let r = dir.join(format!("{name}.reg"));
    fs::write(&r, reg).unwrap();
    tool(
        "hivexregedit",
        &["--merge", h.to_str().unwrap(), r.to_str().unwrap()],
    );
    h
}

/// .reg text declaring `path` and every parent key (hivexregedit needs them in order).
fn reg_key(path: &str, values: &str, declared: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut cur = String::new();
    for c in path.split('\\').filter(|c| !c.is_empty()) {
        cur = format!("{cur}\\{c}");
        if !declared.contains(&cur) {
            declared.push(cur.clone());
            out.push_str(&format!("[{cur}]\n\n"));
        }
    }
    out.push_str(&format!("[{cur}]\n{values}\n"));
    out
}

#[test]
fn windows_guest_from_hivex_built_hives_reports_product_build_host_apps_services_drives() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("win");
    let cfg = g.join("Windows/System32/config");
    fs::create_dir_all(&cfg).unwrap();
    let mut d = Vec::new();
    let mut sw = String::new();
    sw += &reg_key(
        "\\Microsoft\\Windows NT\\CurrentVersion",
        "\"ProductName\"=\"Windows 10 Pro\"\n\"CurrentBuild\"=\"22631\"\n\"EditionID\"=\"Professional\"\n\
         \"InstallationType\"=\"Client\"\n\"DisplayVersion\"=\"23H2\"\n\"CurrentMajorVersionNumber\"=dword:0000000a\n\
         \"CurrentMinorVersionNumber\"=dword:00000000\n\"CurrentVersion\"=\"6.3\"\n",
        &mut d,
    );
    let un = "\\Microsoft\\Windows\\CurrentVersion\\Uninstall";
    sw += &reg_key(
        &format!("{un}\\7-Zip"),
        "\"DisplayName\"=\"7-Zip 23.01 (x64)\"\n\"DisplayVersion\"=\"23.01\"\n",
        &mut d,
    );
    sw += &reg_key(
        &format!("{un}\\{{0A1B}}"),
        "\"DisplayName\"=\"Virtio-win-driver-installer\"\n\"DisplayVersion\"=\"0.1.240\"\n",
        &mut d,
    );
    sw += &reg_key(
        &format!("{un}\\NoName"),
        "\"SystemComponent\"=dword:00000001\n",
        &mut d,
    );
    sw += &reg_key(
        &format!("\\WOW6432Node{un}\\Notepad++"),
        "\"DisplayName\"=\"Notepad++ (32-bit x86)\"\n\"DisplayVersion\"=\"8.6\"\n",
        &mut d,
    );
    hive(&cfg, "software", &sw);
    let mut d = Vec::new();
    let mut sys = reg_key("\\Select", "\"Current\"=dword:00000002\n", &mut d);
    sys += &reg_key(
        "\\ControlSet001\\Services\\Tcpip\\Parameters",
        "\"Hostname\"=\"OLD-NAME\"\n",
        &mut d,
    );
    sys += &reg_key(
        "\\ControlSet002\\Services\\Tcpip\\Parameters",
        "\"Hostname\"=\"WIN-TEST01\"\n",
        &mut d,
    );
    sys += &reg_key(
        "\\ControlSet002\\Control\\Session Manager\\Environment",
        "\"PROCESSOR_ARCHITECTURE\"=\"AMD64\"\n",
        &mut d,
    );
    for (name, start, ty) in [
        ("viostor", 0, 1),
        ("netkvm", 3, 1),
        ("Dhcp", 2, 0x20),
        ("Old", 4, 0x10),
    ] {
        sys += &reg_key(
            &format!("\\ControlSet002\\Services\\{name}"),
            &format!("\"Start\"=dword:{start:08x}\n\"Type\"=dword:{ty:08x}\n\"ImagePath\"=str(2):\"system32\\\\drivers\\\\{name}.sys\"\n"),
            &mut d,
        );
    }
    // Enough services that hivex spreads the subkey list over its larger list forms.
    for i in 0..600 {
        sys += &reg_key(
            &format!("\\ControlSet002\\Services\\filler{i:04}"),
            "",
            &mut d,
        );
    }
    sys += &reg_key(
        "\\MountedDevices",
        "\"\\\\DosDevices\\\\C:\"=hex:78,56,34,12,00,00,10,00,00,00,00,00\n\
         \"\\\\DosDevices\\\\D:\"=hex:44,4d,49,4f,3a,49,44,3a,33,22,11,00,55,44,77,66,88,99,aa,bb,cc,dd,ee,ff\n\
         \"\\\\??\\\\Volume{{x}}\"=hex:01,02\n",
        &mut d,
    );
    let system = hive(&cfg, "SYSTEM", &sys);
    // The reference tool's own view of the services key.
    let script = format!(
        "printf 'cd \\\\ControlSet002\\\\Services\\nls\\n' | hivexsh '{}'",
        system.display()
    );
    let mut want_services: Vec<String> = tool("bash", &["-c", &script])
        .lines()
        .map(str::to_string)
        .collect();
    want_services.sort_by_key(|s| s.to_lowercase());
    assert_eq!(want_services.len(), 605, "Tcpip, 4 named, 600 fillers");
    let os = inspect_tree(t.path(), &g);
    assert_eq!(os["type"], "windows", "{os}");
    assert_eq!(
        (
            os["product_name"].as_str(),
            os["major_version"].as_u64(),
            os["minor_version"].as_u64(),
            os["osinfo"].as_str(),
            os["hostname"].as_str(),
            os["arch"].as_str()
        ),
        (
            Some("Windows 11 Pro"),
            Some(10),
            Some(0),
            Some("win11"),
            Some("WIN-TEST01"),
            Some("x86_64")
        )
    );
    let w = &os["windows"];
    assert_eq!(
        (
            w["build"].as_u64(),
            w["edition"].as_str(),
            w["display_version"].as_str(),
            w["control_set"].as_str()
        ),
        (
            Some(22631),
            Some("Professional"),
            Some("23H2"),
            Some("ControlSet002")
        )
    );
    assert_eq!(
        w["virtio_drivers"],
        serde_json::json!(["viostor", "netkvm"])
    );
    let apps: Vec<(String, String, String)> = os["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().into(),
                a["version"].as_str().unwrap().into(),
                a["arch"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("7-Zip 23.01 (x64)", "23.01", ""),
            ("Notepad++ (32-bit x86)", "8.6", "x86"),
            ("Virtio-win-driver-installer", "0.1.240", "")
        ]
        .map(|(a, b, c)| (a.into(), b.into(), c.into()))
    );
    let svc = w["services"].as_array().unwrap();
    let names: Vec<String> = svc
        .iter()
        .map(|s| s["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(names, want_services);
    let viostor = svc.iter().find(|s| s["name"] == "viostor").unwrap();
    assert_eq!(
        (
            viostor["start"].as_str(),
            viostor["kind"].as_str(),
            viostor["image"].as_str()
        ),
        (
            Some("boot"),
            Some("kernel-driver"),
            Some("system32\\drivers\\viostor.sys")
        )
    );
    assert_eq!(os["services"], serde_json::json!(["Dhcp", "viostor"]));
    let drives = w["drive_letters"].as_array().unwrap();
    assert_eq!(drives.len(), 2, "{drives:?}");
    assert_eq!(
        (
            drives[0]["letter"].as_str(),
            drives[0]["mbr_disk_signature"].as_str(),
            drives[0]["partition_offset"].as_u64()
        ),
        (Some("C:"), Some("12345678"), Some(1 << 20))
    );
    assert_eq!(
        drives[1]["gpt_partition_guid"],
        "00112233-4455-6677-8899-aabbccddeeff"
    );
    assert!(os["warnings"].as_array().unwrap().is_empty(), "{os}");
}

#[test]
fn truncated_and_hostile_hives_give_warnings_not_failures() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("badwin");
    let cfg = g.join("WINDOWS/system32/CONFIG");
    fs::create_dir_all(&cfg).unwrap();
    let mut d = Vec::new();
    let good = hive(
        &cfg,
        "full",
        &reg_key("\\Select", "\"Current\"=dword:00000001\n", &mut d),
    );
    let bytes = fs::read(&good).unwrap();
    fs::remove_file(&good).unwrap();
    fs::remove_file(cfg.join("full.reg")).unwrap();
    // SYSTEM cut inside its first hive bin; SOFTWARE a base block followed by 0xff cells.
    fs::write(cfg.join("system"), &bytes[..4200]).unwrap();
    let mut sw = bytes[..4096].to_vec();
    sw.extend(b"hbin");
    sw.extend(std::iter::repeat_n(0xffu8, 60_000));
    fs::write(cfg.join("software"), &sw).unwrap();
    let t0 = std::time::Instant::now();
    let os = inspect_tree(t.path(), &g);
    assert!(t0.elapsed().as_secs() < 20);
    assert_eq!(os["type"], "windows");
    assert!(
        os["product_name"].is_null() && os["hostname"].is_null(),
        "{os}"
    );
    let w = os["warnings"].to_string();
    assert!(w.contains("system") && w.contains("software"), "{w}");
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
    let w = os["warnings"].to_string();
    assert!(
        w.contains("initrd.img-9.9.9-bad") && w.contains("past the end"),
        "{w}"
    );
    assert_eq!(os["warnings"].as_array().unwrap().len(), 1, "{w}");
}
