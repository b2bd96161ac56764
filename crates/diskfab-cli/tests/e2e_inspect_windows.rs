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
    let script = "import sys,xml.etree.ElementTree as E\no=E.parse(sys.argv[1]).getroot().find('operatingsystem')\nprint(o.find('name').text, o.find('windows_systemroot').text, o.find('windows_current_control_set').text, o.find('product_variant').text, [(d.get('name'), d.text) for d in o.find('drive_mappings')])";
    assert_eq!(
        tool("python3", &["-c", script, xml.to_str().unwrap()]).trim(),
        "windows /Windows ControlSet002 Client [('C', '12345678'), ('D', '00112233-4455-6677-8899-aabbccddeeff')]"
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
