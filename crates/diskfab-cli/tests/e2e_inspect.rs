//! `inspect` checked against the guest tree itself: the debootstrap Debian image (packages via
//! dpkg-query on the same tree) and a phony guest built with mke2fs -d carrying the files of the
//! other formats inspection reads.

mod common;
use common::*;
use std::fs;

#[test]
fn debian_image_inspection_matches_the_tree_and_dpkg_query() {
    let fix = fixtures();
    let tree = fix.join("debian-minbase");
    let img = fix.join("debian-mbr.qcow2");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", img.to_str().unwrap()])).unwrap();
    let os = &v["operating_systems"][0];
    assert_eq!(os["root_partition"], 1);
    assert_eq!(os["distro"], "debian");
    assert_eq!(os["major_version"], 12);
    assert_eq!(os["osinfo"], "debian12");
    assert_eq!(os["codename"], "bookworm");
    assert_eq!(
        os["hostname"],
        fs::read_to_string(tree.join("etc/hostname"))
            .unwrap()
            .trim()
    );
    let arch = tool("dpkg", &["--print-architecture"]);
    let want_arch = match arch.trim() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        a => a,
    }
    .to_string();
    assert_eq!(os["arch"], want_arch);
    assert_eq!(os["package_format"], "deb");
    let admindir = tree.join("var/lib/dpkg");
    let q = tool(
        "dpkg-query",
        &[
            &format!("--admindir={}", admindir.display()),
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version}\n",
        ],
    );
    let mut want: Vec<String> = q
        .lines()
        .filter(|l| l.starts_with("installed "))
        .map(|l| l["installed ".len()..].to_string())
        .collect();
    want.sort();
    let mut ours: Vec<String> = os["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let epoch = a["epoch"].as_u64().unwrap();
            let e = if epoch > 0 {
                format!("{epoch}:")
            } else {
                String::new()
            };
            let r = a["release"]
                .as_str()
                .map(|r| format!("-{r}"))
                .unwrap_or_default();
            format!(
                "{} {e}{}{r}",
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap()
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, want);
    let users: Vec<&str> = os["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert_eq!(
        users,
        passwd
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(os["timezone"], "Etc/UTC");
    assert!(v["elapsed_ms"].as_u64().unwrap() < 2000);
}

#[test]
fn phony_guest_reports_network_formats_kernels_drivers_users_and_resolves_fstab() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("guest");
    write(&g, "/etc/os-release", "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n");
    write(&g, "/etc/hostname", "web-01\n");
    write(&g, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nops:x:1000:1000::/home/ops:/bin/bash\nsvc:x:990:990::/:/sbin/nologin\n");
    write(
        &g,
        "/etc/shadow",
        "root:$6$salt$hash:19000::::::\nops:!:19000::::::\nsvc::19000::::::\n",
    );
    write(&g, "/etc/group", "root:x:0:\nwheel:x:10:ops\n");
    write(&g, "/etc/fstab", "UUID=0f0e0d0c-0b0a-4908-8706-050403020100 / ext4 defaults 0 1\nLABEL=EFI /boot/efi vfat umask=077 0 2\n");
    write(&g, "/etc/login.defs", "ENCRYPT_METHOD SHA512\n");
    write(&g, "/etc/selinux/config", "SELINUX=enforcing\n");
    write(&g, "/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nBOOTPROTO=none\nIPADDR=10.0.0.5\nPREFIX=24\nGATEWAY=10.0.0.1\nDNS1=10.0.0.2\nHWADDR=52:54:00:12:34:56\n");
    write(
        &g,
        "/etc/NetworkManager/system-connections/ens4.nmconnection",
        "[connection]\ninterface-name=ens4\n[ipv4]\nmethod=auto\n",
    );
    write(&g, "/etc/systemd/network/10-lan.network", "[Match]\nMACAddress=52:54:00:ab:cd:ef\n[Network]\nAddress=192.168.7.2/24\nGateway=192.168.7.1\n");
    write(
        &g,
        "/lib/modules/5.14.0-362.el9.x86_64/modules.dep",
        "kernel/drivers/block/virtio_blk.ko.xz: \nkernel/drivers/net/vmxnet3/vmxnet3.ko.xz:\n",
    );
    write(
        &g,
        "/lib/modules/5.14.0-362.el9.x86_64/modules.builtin",
        "kernel/drivers/ata/ahci.ko\n",
    );
    write(
        &g,
        "/boot/vmlinuz-5.14.0-362.el9.x86_64",
        "not really a kernel",
    );
    write(&g, "/etc/ssh/ssh_host_ed25519_key", "key");
    write(&g, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    fs::create_dir_all(g.join("var/lib/rpm")).unwrap();
    fs::create_dir_all(g.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/sshd.service",
        g.join("etc/systemd/system/multi-user.target.wants/sshd.service"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../usr/share/zoneinfo/Europe/Paris",
        g.join("etc/localtime"),
    )
    .unwrap();
    // GPT disk: ESP labelled EFI + root with a known UUID.
    let img = t.path().join("g.qcow2");
    let i = img.to_str().unwrap();
    ok(&["create", i, "256M"]);
    ok(&[
        "part",
        i,
        "--gpt",
        "--add",
        "size=64M,type=esp",
        "--add",
        "type=linux",
    ]);
    ok(&["mkfs", i, "-p", "1", "-t", "vfat", "-L", "EFI"]);
    let raw = t.path().join("root.img");
    tool(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-U",
            "0f0e0d0c-0b0a-4908-8706-050403020100",
            "-d",
            g.to_str().unwrap(),
            raw.to_str().unwrap(),
            "150M",
        ],
    );
    // Put the root filesystem into partition 2 with qemu-io-free plumbing: write it via dd on a raw copy.
    let disk = t.path().join("g.raw");
    to_raw(&img, &disk);
    let (start, _) = sfdisk_part(&disk, 2);
    tool(
        "dd",
        [
            "if=".to_string() + raw.to_str().unwrap(),
            format!("of={}", disk.display()),
            "bs=1M".into(),
            format!("seek={}", start / (1 << 20)),
            "conv=notrunc".into(),
        ]
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice(),
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", disk.to_str().unwrap()])).unwrap();
    assert_documented(&v);
    let os = &v["operating_systems"][0];
    assert_eq!(os["root_partition"], 2);
    assert_eq!(
        (
            os["distro"].as_str(),
            os["major_version"].as_u64(),
            os["minor_version"].as_u64(),
            os["osinfo"].as_str()
        ),
        (Some("rocky"), Some(9), Some(3), Some("rocky9"))
    );
    assert_eq!(os["package_format"], "rpm");
    assert_eq!(os["hostname"], "web-01");
    assert_eq!(os["selinux"], "enforcing");
    assert_eq!(os["password_hash"], "SHA512");
    assert_eq!(os["timezone"], "Europe/Paris");
    assert_eq!(
        (
            os["ssh_host_keys"].as_bool(),
            os["machine_id_present"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let users = os["users"].as_array().unwrap();
    let state: Vec<(&str, &str, bool)> = users
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap(),
                u["password"].as_str().unwrap(),
                u["admin"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        state,
        vec![
            ("root", "set", false),
            ("ops", "locked", true),
            ("svc", "empty", false)
        ]
    );
    let k = &os["kernels"][0];
    assert_eq!(k["version"], "5.14.0-362.el9.x86_64");
    assert_eq!(
        k["drivers"],
        serde_json::json!(["virtio_blk", "ahci", "vmxnet3"])
    );
    let net = os["network"].as_array().unwrap();
    let ifcfg = net.iter().find(|n| n["source"] == "ifcfg").unwrap();
    assert_eq!(
        (
            ifcfg["addresses"][0].as_str(),
            ifcfg["gateway"].as_str(),
            ifcfg["mac"].as_str()
        ),
        (
            Some("10.0.0.5/24"),
            Some("10.0.0.1"),
            Some("52:54:00:12:34:56")
        )
    );
    assert!(net
        .iter()
        .any(|n| n["source"] == "networkmanager" && n["name"] == "ens4" && n["method"] == "dhcp"));
    assert!(net.iter().any(|n| n["source"] == "systemd-networkd"
        && n["mac"] == "52:54:00:ab:cd:ef"
        && n["gateway"] == "192.168.7.1"));
    assert_eq!(os["services"], serde_json::json!(["sshd.service"]));
    let mounts = os["mountpoints"].as_array().unwrap();
    assert_eq!(
        mounts[0]["partition"], 2,
        "UUID= resolves to the root partition"
    );
    assert_eq!(mounts[1]["partition"], 1, "LABEL=EFI resolves to the ESP");
}

#[test]
fn hostile_guest_files_give_warnings_not_failures() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("guest");
    write(
        &g,
        "/etc/os-release",
        "\u{0}\u{1}\u{2}ID=\u{7f}\u{0}\nVERSION_ID=not-a-number\n",
    );
    fs::create_dir_all(g.join("var/lib/dpkg")).unwrap();
    // A sparse 100 MB dpkg status: larger than the 64 MiB database limit.
    let f = fs::File::create(g.join("var/lib/dpkg/status")).unwrap();
    f.set_len(100 << 20).unwrap();
    std::os::unix::fs::symlink("loop-b", g.join("etc/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", g.join("etc/loop-b")).unwrap();
    std::os::unix::fs::symlink("loop-a", g.join("etc/hostname")).unwrap();
    let raw = t.path().join("h.img");
    tool(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-d",
            g.to_str().unwrap(),
            raw.to_str().unwrap(),
            "256M",
        ],
    );
    let out = diskfab(&["inspect", "--json", raw.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let os = &v["operating_systems"][0];
    assert!(os["hostname"].is_null());
    assert_eq!(
        os["major_version"], 0,
        "no version reads as 0, as virt-inspector"
    );
    assert!(
        os["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("limit")),
        "{os}"
    );
}

#[test]
fn xml_output_is_well_formed_and_uses_virt_inspector_element_names() {
    let fix = fixtures();
    let img = fix.join("debian-mbr.qcow2");
    let xml = ok(&["inspect", "--xml", img.to_str().unwrap()]);
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("i.xml");
    fs::write(&f, &xml).unwrap();
    let script = "import sys,xml.etree.ElementTree as E\nr=E.parse(sys.argv[1]).getroot()\no=r.find('operatingsystem')\nprint(r.tag, o.find('distro').text, o.find('major_version').text, o.find('root').text, o.find('osinfo').text, len(o.find('applications')))";
    let out = tool("python3", &["-c", script, f.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        "operatingsystems debian 12 /dev/sda1 debian12 88"
    );
    // Hostile text is escaped, never breaks the document.
    let g = t.path().join("g");
    write(
        &g,
        "/etc/os-release",
        "ID=evil\nPRETTY_NAME=\"<x>&'\\\"</operatingsystem>\"\n",
    );
    write(&g, "/etc/hostname", "a&b<c>\n");
    let raw = t.path().join("e.img");
    tool(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-d",
            g.to_str().unwrap(),
            raw.to_str().unwrap(),
            "16M",
        ],
    );
    fs::write(&f, ok(&["inspect", "--xml", raw.to_str().unwrap()])).unwrap();
    let out = tool("python3", &["-c", "import sys,xml.etree.ElementTree as E\nr=E.parse(sys.argv[1]).getroot()\nprint(r.find('operatingsystem/hostname').text)", f.to_str().unwrap()]);
    assert_eq!(out.trim(), "a&b<c>");
}

#[test]
fn alpine_apk_and_arch_pacman_databases_list_their_packages() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("alpine");
    write(
        &a,
        "/etc/os-release",
        "ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n",
    );
    write(&a, "/lib/apk/db/installed", "C:Q1x=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nT:the musl c library\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nT:Size optimized toolbox\n\n");
    let os = inspect_tree(t.path(), &a);
    assert_eq!(
        (os["package_format"].as_str(), os["osinfo"].as_str()),
        (Some("apk"), Some("alpinelinux3.19"))
    );
    let apps: Vec<(String, String)> = os["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().into(),
                x["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        vec![
            ("busybox".into(), "1.36.1".into()),
            ("musl".into(), "1.2.4_git20230717".into())
        ]
    );
    let p = t.path().join("arch");
    write(
        &p,
        "/etc/os-release",
        "NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
    );
    write(&p, "/var/lib/pacman/local/linux-6.6.1.arch1-1/desc", "%NAME%\nlinux\n\n%VERSION%\n6.6.1.arch1-1\n\n%DESC%\nThe Linux kernel and modules\n\n%ARCH%\nx86_64\n");
    write(
        &p,
        "/var/lib/pacman/local/pacman-6.0.2-9/desc",
        "%NAME%\npacman\n\n%VERSION%\n6.0.2-9\n\n%ARCH%\nx86_64\n",
    );
    let os = inspect_tree(t.path(), &p);
    assert_eq!(os["package_format"], "pacman");
    let names: Vec<&str> = os["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linux", "pacman"]);
    assert_eq!(
        (os["distro"].as_str(), os["major_version"].as_u64()),
        (Some("archlinux"), Some(0)),
        "rolling release: libguestfs' name, version 0"
    );
}
