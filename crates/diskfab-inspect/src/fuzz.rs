//! Fuzzing entry points for the parsers of files read from guest images (cargo-fuzz targets in
//! `fuzz/`, replayed by `crates/diskfab-core/tests/fuzz_regressions.rs`). Each takes arbitrary
//! bytes, must never panic, and returns how many items the parsers produced, so the replay test
//! can check that every committed seed reaches real parsing.

use crate::{network, security, system};

/// Splits `data` at NUL bytes into exactly `n` texts (missing ones empty, the last one keeps
/// any further NULs), decoded as the inspectors decode guest files (lossy UTF-8).
pub fn texts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n.max(1), |&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    out.resize(n.max(1), String::new());
    out
}

/// `passwd NUL shadow NUL group`: users with password state and admin groups, then admin
/// rights from the group file. Returns the number of users.
pub fn fuzz_accounts(data: &[u8]) -> usize {
    let t = texts(data, 3);
    let mut users = system::users(&t[0], &t[1], &t[2]);
    let _ = security::apply_admin_rights(&mut users, &t[2], &[]);
    users.len()
}

/// A sudoers file: its rules, applied to the users of a fixed passwd and group. Returns the
/// number of rules.
pub fn fuzz_sudoers(data: &[u8]) -> usize {
    let rules = security::parse_sudoers("/etc/sudoers", &String::from_utf8_lossy(data));
    let group = "sudo:x:27:admin\nwheel:x:10:\n";
    let mut users = system::users(
        "root:x:0:0::/root:/bin/sh\nadmin:x:1000:1000::/:/bin/sh\n",
        "",
        group,
    );
    let _ = security::apply_admin_rights(&mut users, group, &rules);
    rules.len()
}

/// The first byte picks the network configuration format (0 ifupdown, 1 NetworkManager
/// keyfile, 2 systemd-networkd, 3 ifcfg, 4 netplan YAML, 5 udev persistent-net rules); the
/// rest is the file. Returns the number of interfaces (or MAC bindings) found.
pub fn fuzz_netconf(data: &[u8]) -> usize {
    let Some((sel, rest)) = data.split_first() else {
        return 0;
    };
    let s = String::from_utf8_lossy(rest);
    match sel % 6 {
        0 => network::ifupdown(&s).len(),
        1 => configured(&network::networkmanager(&s)),
        2 => configured(&network::networkd(&s)),
        3 => configured(&network::ifcfg(&s)),
        4 => crate::netplan::parse("fuzz", &s).map_or(0, |v| v.len()),
        _ => network::udev_rules("fuzz", &s).len(),
    }
}

/// 1 when a single-interface format set anything beyond its defaults.
fn configured(i: &network::Interface) -> usize {
    usize::from(
        i.name.is_some()
            || i.mac.is_some()
            || !i.addresses.is_empty()
            || i.gateway.is_some()
            || !i.dns.is_empty(),
    )
}

/// An fstab file. Returns the number of entries.
pub fn fuzz_fstab(data: &[u8]) -> usize {
    crate::parse_fstab(&String::from_utf8_lossy(data)).len()
}

/// The start of an ELF binary. Returns 1 when an architecture is recognized.
pub fn fuzz_elf(data: &[u8]) -> usize {
    let _ = system::elf_arch(&data[..data.len().min(64)]);
    usize::from(system::elf_arch(data).is_some())
}

/// An os-release file, also read as every other release file libguestfs' order tries (so each
/// of their parsers sees it). Returns how many of distribution, product name, codename and
/// version were found.
pub fn fuzz_os_release(data: &[u8]) -> usize {
    let mut o = crate::OsInfo::default();
    let text = String::from_utf8_lossy(data);
    crate::parse_os_release(&text, &mut o);
    let id = crate::identity::identify(&mut |_| Some(text.to_string()));
    let found = id.version.is_some();
    crate::apply_identity(id, false, &mut o);
    [
        o.distro.is_some(),
        o.product_name.is_some(),
        o.codename.is_some(),
        found,
    ]
    .into_iter()
    .filter(|&b| b)
    .count()
}

/// An rpm header blob (with or without its magic). Returns 1 when a package decodes.
pub fn fuzz_rpm(data: &[u8]) -> usize {
    usize::from(crate::rpm::parse_header(data).is_some())
}
