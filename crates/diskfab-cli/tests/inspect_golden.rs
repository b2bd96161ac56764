//! Golden snapshots of `inspect --json` and `--xml` for a fixed phony guest (mke2fs -d with a
//! fixed UUID): any change to the report's shape or values shows up as a diff here. Regenerate
//! deliberately with `UPDATE_GOLDEN=1 cargo nextest run -p diskfab-cli --test inspect_golden`.

mod common;
use common::*;
use std::path::Path;

fn write(root: &Path, p: &str, s: &str) {
    let f = root.join(p);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, s).unwrap();
}

fn guest(work: &Path) -> std::path::PathBuf {
    let t = work.join("tree");
    write(&t, "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n");
    write(&t, "etc/debian_version", "12.5\n");
    write(&t, "etc/hostname", "golden\n");
    write(&t, "etc/timezone", "Europe/Paris\n");
    write(&t, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    write(
        &t,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
    );
    write(
        &t,
        "etc/shadow",
        "root:*:19000:0:99999:7:::\nalice:$6$salt$hash:19000:0:99999:7:::\n",
    );
    write(
        &t,
        "etc/group",
        "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n",
    );
    write(
        &t,
        "etc/fstab",
        "UUID=11111111-2222-3333-4444-555555555555 / ext4 defaults 0 1\n",
    );
    write(&t, "etc/network/interfaces", "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.168.1.5/24\n    gateway 192.168.1.1\n    dns-nameservers 1.1.1.1\n");
    write(&t, "var/lib/dpkg/status", "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\nDescription: GNU Bourne Again SHell\n\nPackage: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u3\nArchitecture: amd64\nDescription: secure shell (SSH) server\n\n");
    write(
        &t,
        "lib/modules/6.1.0-18-amd64/modules.dep",
        "kernel/drivers/block/virtio_blk.ko:\nkernel/drivers/net/virtio_net.ko:\n",
    );
    write(&t, "boot/vmlinuz-6.1.0-18-amd64", "kernel");
    write(&t, "usr/bin/.keep", "");
    let img = work.join("golden.raw");
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-L",
            "root",
            "-U",
            "11111111-2222-3333-4444-555555555555",
            "-E",
            "hash_seed=11111111-2222-3333-4444-555555555555",
            "-d",
            t.to_str().unwrap(),
            img.to_str().unwrap(),
            "32M",
        ],
    );
    img
}

fn check(name: &str, got: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", p.display()));
    assert_eq!(
        got, want,
        "inspect output changed ({name}); if intended, regenerate with UPDATE_GOLDEN=1"
    );
}

#[test]
fn inspect_json_and_xml_match_their_golden_snapshots() {
    let work = tempfile::tempdir().unwrap();
    let img = guest(work.path());
    let p = img.to_str().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&ok(&["inspect", "--json", p])).unwrap();
    v["elapsed_ms"] = serde_json::json!(0);
    v["image"] = serde_json::json!("golden.raw");
    check(
        "inspect.json",
        &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
    );
    let xml = ok(&["inspect", "--xml", p]).replace(p, "golden.raw");
    check("inspect.xml", &xml);
}
