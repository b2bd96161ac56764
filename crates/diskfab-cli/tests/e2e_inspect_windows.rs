//! `inspect` on Windows guests whose SYSTEM and SOFTWARE hives are built by hivex
//! (hivexregedit --merge) from .reg text, checked against hivexsh; and hostile hives.

mod common;
use common::*;
use std::fs;
use std::path::Path;

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
    assert_documented(&os);
    // The XML has virt-inspector's Windows elements.
    let raw = t.path().join("win.img");
    let xml = t.path().join("win.xml");
    fs::write(&xml, ok(&["inspect", "--xml", raw.to_str().unwrap()])).unwrap();
    let script = "import sys,xml.etree.ElementTree as E\no=E.parse(sys.argv[1]).getroot().find('operatingsystem')\nprint(o.find('name').text, o.find('windows_systemroot').text, o.find('windows_current_control_set').text, o.find('product_variant').text, [(d.get('name'), d.text) for d in o.findall('drive_mappings/drive_mapping')])";
    assert_eq!(
        tool("python3", &["-c", script, xml.to_str().unwrap()]).trim(),
        "windows /Windows ControlSet002 Client []",
        "a disk without a partition table resolves no drive letter"
    );
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

/// `.reg` hex of a GUID in its on-disk (mixed-endian) byte order, after `DMIO:ID:`.
fn dmio(guid: &str) -> String {
    let h: String = guid.chars().filter(|c| *c != '-').collect();
    let b: Vec<String> = (0..16).map(|i| h[i * 2..i * 2 + 2].to_string()).collect();
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut out: Vec<String> = b"DMIO:ID:".iter().map(|c| format!("{c:02x}")).collect();
    out.extend(order.iter().map(|&i| b[i].clone()));
    out.join(",")
}

/// `.reg` hex of an MBR MountedDevices value: disk signature and partition byte offset.
fn mbr_id(sig: u32, offset: u64) -> String {
    let mut v = sig.to_le_bytes().to_vec();
    v.extend(offset.to_le_bytes());
    v.iter()
        .map(|c| format!("{c:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A FAT volume image (mkfs.fat + mtools) of `mib` MiB holding `files` (guest path, host file).
fn fat_volume(path: &Path, mib: u64, files: &[(&str, &Path)]) {
    let p = path.to_str().unwrap();
    tool("mkfs.fat", &["-C", p, &(mib * 1024).to_string()]);
    for (dest, src) in files {
        let mut dir = String::from("::");
        for c in dest
            .split('/')
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            dir = format!("{}/{c}", dir.trim_end_matches('/'));
            let _ = std::process::Command::new("mmd")
                .args(["-i", p, &dir])
                .output();
        }
        tool(
            "mcopy",
            &["-i", p, src.to_str().unwrap(), &format!("::{dest}")],
        );
    }
}

#[test]
fn drive_letters_resolve_to_partitions_of_mbr_and_gpt_disks_and_unmatched_keep_raw_identity() {
    let t = tempfile::tempdir().unwrap();
    let (gpt_win, gpt_other) = (
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "00112233-4455-6677-8899-aabbccddeeff",
    );
    let device: String = "\\??\\SCSI#CdRom&Ven_QEMU#1"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .map(|c| format!("{c:02x}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut d = Vec::new();
    let mut sys = reg_key("\\Select", "\"Current\"=dword:00000001\n", &mut d);
    sys += &reg_key(
        "\\MountedDevices",
        &format!(
            "\"\\\\DosDevices\\\\C:\"=hex:{}\n\"\\\\DosDevices\\\\E:\"=hex:{}\n\
             \"\\\\DosDevices\\\\F:\"=hex:{}\n\"\\\\DosDevices\\\\G:\"=hex:{device}\n\
             \"\\\\DosDevices\\\\H:\"=hex:{}\n\"\\\\DosDevices\\\\I:\"=hex:{}\n",
            mbr_id(0x1234_abcd, 9 << 20),
            mbr_id(0x1234_abcd, 1 << 20),
            mbr_id(0xdead_beef, 1 << 20),
            dmio(gpt_win),
            dmio(gpt_other),
        ),
        &mut d,
    );
    let system = hive(t.path(), "SYSTEM", &sys);
    let mut d = Vec::new();
    let sw = reg_key(
        "\\Microsoft\\Windows NT\\CurrentVersion",
        "\"ProductName\"=\"Windows 10 Pro\"\n\"CurrentBuild\"=\"19045\"\n",
        &mut d,
    );
    let software = hive(t.path(), "SOFTWARE", &sw);
    let win = t.path().join("win.fat");
    fat_volume(
        &win,
        16,
        &[
            ("Windows/System32/config/SYSTEM", &system),
            ("Windows/System32/config/SOFTWARE", &software),
        ],
    );
    let data = t.path().join("data.fat");
    fat_volume(&data, 8, &[]);
    let (mbr, gpt) = (t.path().join("mbr.raw"), t.path().join("gpt.raw"));
    for disk in [&mbr, &gpt] {
        tool("truncate", &["-s", "32M", disk.to_str().unwrap()]);
    }
    let sfdisk = format!(
        "printf 'label: dos\\nlabel-id: 0x1234abcd\\nstart=2048, size=16384, type=c\\n\
         start=18432, size=32768, type=7\\n' | sfdisk -q '{}'",
        mbr.display()
    );
    tool("bash", &["-c", &sfdisk]);
    tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+8M",
            "-t",
            "1:0700",
            "-u",
            "1:8a5ab0a7-0c9e-4e0f-9a51-1f6f0e9c7c11",
            "-n",
            "2:18432:+16M",
            "-t",
            "2:0700",
            "-u",
            &format!("2:{gpt_win}"),
            gpt.to_str().unwrap(),
        ],
    );
    for disk in [&mbr, &gpt] {
        for (vol, mib) in [(&data, 1), (&win, 9)] {
            tool(
                "dd",
                &[
                    &format!("if={}", vol.display()),
                    &format!("of={}", disk.display()),
                    "bs=1M",
                    &format!("seek={mib}"),
                    "conv=notrunc",
                    "status=none",
                ],
            );
        }
    }
    // (letter, partition, fs_type, raw identity) as reported.
    let letters = |disk: &Path| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["inspect", "--json", disk.to_str().unwrap()])).unwrap();
        let os = &v["operating_systems"][0];
        assert_eq!(os["type"], "windows", "{v}");
        assert_documented(os);
        os["windows"]["drive_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let raw = l["gpt_partition_guid"]
                    .as_str()
                    .or(l["mbr_disk_signature"].as_str())
                    .or(l["device"].as_str())
                    .unwrap();
                format!(
                    "{} {} {} {raw}",
                    l["letter"].as_str().unwrap(),
                    l["partition"],
                    l["fs_type"]
                )
            })
            .collect()
    };
    let gpt_raw = |l: &str, g: &str| format!("{l} null null {g}");
    let cdrom = "G: null null \\??\\SCSI#CdRom&Ven_QEMU#1".to_string();
    assert_eq!(
        letters(&mbr),
        vec![
            "C: 2 \"vfat\" 1234abcd".to_string(),
            "E: 1 \"vfat\" 1234abcd".into(),
            "F: null null deadbeef".into(),
            cdrom.clone(),
            gpt_raw("H:", gpt_win),
            gpt_raw("I:", gpt_other),
        ]
    );
    assert_eq!(
        letters(&gpt),
        vec![
            "C: null null 1234abcd".to_string(),
            "E: null null 1234abcd".into(),
            "F: null null deadbeef".into(),
            cdrom,
            format!("H: 2 \"vfat\" {gpt_win}"),
            gpt_raw("I:", gpt_other),
        ]
    );
    // XML: virt-inspector's drive_mappings name only the letters found on this disk.
    let xml = t.path().join("mbr.xml");
    fs::write(&xml, ok(&["inspect", "--xml", mbr.to_str().unwrap()])).unwrap();
    let script = "import sys,xml.etree.ElementTree as E\no=E.parse(sys.argv[1]).getroot().find('operatingsystem')\nprint([(d.get('name'), d.text) for d in o.find('drive_mappings')])";
    assert_eq!(
        tool("python3", &["-c", script, xml.to_str().unwrap()]).trim(),
        "[('C', '/dev/sda2'), ('E', '/dev/sda1')]"
    );
}

/// A dirty hive `name` (+ `name.LOG1`/`.LOG2`) in `cfg`: `before` merged by hivexregedit, then
/// a transaction log (tests/hive_log.py, `flags`) carrying the pages `after` changes.
fn dirty_hive(cfg: &Path, name: &str, before: &str, after: &str, log: &str, flags: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    let b = hive(t.path(), "before", before);
    let a = t.path().join("after");
    fs::copy(&b, &a).unwrap();
    let r = t.path().join("after.reg");
    fs::write(&r, after).unwrap();
    tool(
        "hivexregedit",
        &["--merge", a.to_str().unwrap(), r.to_str().unwrap()],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hive_log.py");
    let (out, out_log) = (cfg.join(name), cfg.join(format!("{name}.{log}")));
    let mut args = vec![
        script.to_str().unwrap(),
        b.to_str().unwrap(),
        a.to_str().unwrap(),
    ];
    args.extend([out.to_str().unwrap(), out_log.to_str().unwrap()]);
    args.extend(flags);
    tool("python3", &args);
}

/// What regipy (an independent implementation) reads at `key`/`value` after applying `log`.
fn regipy_recovered(hive: &Path, log: &Path, key: &str, value: &str) -> String {
    let script = "import sys\nfrom regipy.recovery import apply_transaction_logs\nfrom regipy.registry import RegistryHive\n\
                  p,_=apply_transaction_logs(sys.argv[1],sys.argv[2],restored_hive_path=sys.argv[1]+'.regipy')\n\
                  print(RegistryHive(p).get_key(sys.argv[3]).get_value(sys.argv[4]))";
    let args = [
        script,
        hive.to_str().unwrap(),
        log.to_str().unwrap(),
        key,
        value,
    ];
    let out = tool(
        "python3",
        &std::iter::once("-c").chain(args).collect::<Vec<_>>(),
    );
    fs::remove_file(format!("{}.regipy", hive.display())).unwrap();
    out.trim().to_string()
}

#[test]
fn dirty_hives_are_recovered_from_their_transaction_logs_like_regipy_does() {
    let sys = |host: &str| {
        let mut d = Vec::new();
        let mut s = reg_key("\\Select", "\"Current\"=dword:00000001\n", &mut d);
        s += &reg_key(
            "\\ControlSet001\\Services\\Tcpip\\Parameters",
            &format!("\"Hostname\"=\"{host}\"\n"),
            &mut d,
        );
        s
    };
    let sw_before = reg_key(
        "\\Microsoft\\Windows NT\\CurrentVersion",
        "\"ProductName\"=\"Windows 10 Pro\"\n\"CurrentBuild\"=\"19045\"\n",
        &mut Vec::new(),
    );
    let sw_after =
        "[\\Microsoft\\Windows NT\\CurrentVersion]\n\"ProductName\"=\"Windows 10 Enterprise\"\n";
    let host_after =
        "[\\ControlSet001\\Services\\Tcpip\\Parameters]\n\"Hostname\"=\"WIN-AFTER1\"\n";
    let tcpip = "\\ControlSet001\\Services\\Tcpip\\Parameters";
    let t = tempfile::tempdir().unwrap();
    // (guest, SYSTEM log flags, product and hostname inspect must report, warning expected)
    let cases = [
        (
            "good",
            vec![],
            "Windows 10 Enterprise",
            "WIN-AFTER1",
            "recovered in memory",
        ),
        (
            "badhash",
            vec!["--bad-hash"],
            "Windows 10 Enterprise",
            "WIN-BEFORE",
            "wrong hash",
        ),
        (
            "old",
            vec!["--old"],
            "Windows 10 Enterprise",
            "WIN-BEFORE",
            "older than the hive",
        ),
    ];
    for (guest, flags, product, host, warning) in cases {
        let g = t.path().join(guest);
        let cfg = g.join("Windows/System32/config");
        fs::create_dir_all(&cfg).unwrap();
        dirty_hive(
            &cfg,
            "SYSTEM",
            &sys("WIN-BEFORE"),
            host_after,
            "LOG1",
            &flags,
        );
        // SOFTWARE's changes are in LOG2, LOG1 left empty (as Windows leaves an unused log).
        dirty_hive(&cfg, "SOFTWARE", &sw_before, sw_after, "LOG2", &[]);
        fs::write(cfg.join("SOFTWARE.LOG1"), b"").unwrap();
        if guest == "good" {
            assert_eq!(
                regipy_recovered(
                    &cfg.join("SYSTEM"),
                    &cfg.join("SYSTEM.LOG1"),
                    tcpip,
                    "Hostname"
                ),
                host
            );
            assert_eq!(
                regipy_recovered(
                    &cfg.join("SOFTWARE"),
                    &cfg.join("SOFTWARE.LOG2"),
                    "\\Microsoft\\Windows NT\\CurrentVersion",
                    "ProductName"
                ),
                product
            );
        }
        let os = inspect_tree(t.path(), &g);
        assert_eq!(
            (os["product_name"].as_str(), os["hostname"].as_str()),
            (Some(product), Some(host)),
            "{guest}: {os}"
        );
        let w = os["warnings"].to_string();
        assert!(w.contains("SYSTEM") && w.contains(warning), "{guest}: {w}");
    }
}
