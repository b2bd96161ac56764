//! A Linux guest's identity — distro, product name, version, libosinfo id, package format and
//! manager — derived the way libguestfs' inspection (virt-inspector) derives it, so that the two
//! tools agree field by field: release files are tried in libguestfs' order (`/etc/os-release`,
//! `/etc/lsb-release`, the Red Hat family's release files, `/etc/debian_version`, …), each either
//! settling the answer or leaving what it read for the next one. One consequence kept on purpose:
//! Debian's os-release has no minor version, so the product name and version come from
//! `/etc/debian_version` (`12.15`), as virt-inspector reports them. Pure functions over the text
//! of the release files; the caller reads them.

use crate::read::key_values;

/// What the release files say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// libguestfs' distro name (`debian`, `rocky`, `archlinux`, `opensuse`, `redhat-based`, …).
    pub distro: Option<String>,
    /// Product name (os-release `PRETTY_NAME`, else the first line of a release file).
    pub product_name: Option<String>,
    /// (major, minor) version.
    pub version: Option<(u32, u32)>,
}

/// Longest release-file line kept (libguestfs reads "small files" only).
const MAX_LINE: usize = 256;

/// libguestfs' distro name for an os-release `ID`; `None` for IDs it does not know.
pub fn distro_of_os_release_id(id: &str) -> Option<&'static str> {
    Some(match id {
        "alpine" => "alpinelinux",
        "altlinux" => "altlinux",
        "arch" => "archlinux",
        "centos" => "centos",
        "coreos" => "coreos",
        "debian" => "debian",
        "fedora" => "fedora",
        "frugalware" => "frugalware",
        "gentoo" => "gentoo",
        "kali" => "kalilinux",
        "kylin" => "kylin",
        "mageia" => "mageia",
        "neokylin" => "neokylin",
        "openmandriva" => "openmandriva",
        "pardus" => "pardus",
        "pld" => "pldlinux",
        "rhel" => "rhel",
        "rocky" => "rocky",
        "sles" | "sled" => "sles",
        "ubuntu" => "ubuntu",
        "void" => "voidlinux",
        s if s == "opensuse" || s.starts_with("opensuse-") => "opensuse",
        _ => return None,
    })
}

/// The first `N.M` in `s` (leftmost, as an unanchored regex search finds it), else the first
/// `N` as `(N, 0)`.
pub fn version_of(s: &str) -> Option<(u32, u32)> {
    let b = s.as_bytes();
    let run = |i: usize| {
        let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        (i + n, s[i..i + n].parse::<u32>().ok())
    };
    let mut first = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let (end, major) = run(i);
        if first.is_none() {
            first = major;
        }
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
            if let (Some(ma), (_, Some(mi))) = (major, run(end + 1)) {
                return Some((ma, mi));
            }
        }
        i = end;
    }
    first.map(|m| (m, 0))
}

/// `PREFIX….release N[.M]` (the greedy `.*` of libguestfs' patterns: the last `release N`).
fn release_version(line: &str, prefix: &str, need_minor: bool) -> Option<(u32, u32)> {
    let at = line.find(prefix)?;
    let rest = &line[at + prefix.len()..];
    let v = rest.rmatch_indices("release ").find_map(|(i, m)| {
        let t = &rest[i + m.len()..];
        t.starts_with(|c: char| c.is_ascii_digit()).then_some(t)
    })?;
    let major: String = v.chars().take_while(char::is_ascii_digit).collect();
    let after = &v[major.len()..];
    let minor: String = after
        .strip_prefix('.')
        .map(|m| m.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    let major = major.parse().ok()?;
    match (minor.parse().ok(), need_minor) {
        (Some(mi), true) => Some((major, mi)),
        (None, true) => None,
        (_, false) => Some((major, 0)),
    }
}

/// How a release file is read: libguestfs' parse functions.
#[derive(Clone, Copy)]
enum Parse {
    OsRelease,
    LsbRelease,
    /// First line is the product; the distro is set; `(prefix, need_minor)` must match.
    Rex(&'static str, &'static str, bool),
    /// First line is the product; a version is parsed if one is there.
    Generic(&'static str),
    /// Only the distro.
    Distro(&'static str),
    Suse,
}

/// libguestfs' release-file tests for a Linux root, in its order.
const TESTS: &[(&str, Parse)] = &[
    ("/etc/os-release", Parse::OsRelease),
    ("/etc/lsb-release", Parse::LsbRelease),
    (
        "/etc/oracle-release",
        Parse::Rex("oraclelinux", "Oracle Linux", true),
    ),
    (
        "/etc/oracle-release",
        Parse::Rex("oraclelinux", "Oracle Linux", false),
    ),
    ("/etc/centos-release", Parse::Rex("centos", "CentOS", true)),
    ("/etc/centos-release", Parse::Rex("centos", "CentOS", false)),
    (
        "/etc/rocky-release",
        Parse::Rex("rocky", "Rocky Linux", true),
    ),
    (
        "/etc/rocky-release",
        Parse::Rex("rocky", "Rocky Linux", false),
    ),
    ("/etc/altlinux-release", Parse::Generic("altlinux")),
    (
        "/etc/redhat-release",
        Parse::Rex("fedora", "Fedora release", false),
    ),
    ("/etc/redhat-release", Parse::Rex("rhel", "Red Hat", true)),
    ("/etc/redhat-release", Parse::Rex("rhel", "Red Hat", false)),
    ("/etc/redhat-release", Parse::Rex("centos", "CentOS", true)),
    ("/etc/redhat-release", Parse::Rex("centos", "CentOS", false)),
    (
        "/etc/redhat-release",
        Parse::Rex("rocky", "Rocky Linux", true),
    ),
    (
        "/etc/redhat-release",
        Parse::Rex("rocky", "Rocky Linux", false),
    ),
    (
        "/etc/redhat-release",
        Parse::Rex("scientificlinux", "Scientific Linux", true),
    ),
    (
        "/etc/redhat-release",
        Parse::Rex("scientificlinux", "Scientific Linux", false),
    ),
    ("/etc/redhat-release", Parse::Generic("redhat-based")),
    ("/etc/redhat-release", Parse::Distro("redhat-based")),
    ("/etc/debian_version", Parse::Generic("debian")),
    ("/etc/pardus-release", Parse::Generic("pardus")),
    ("/etc/arch-release", Parse::Distro("archlinux")),
    ("/etc/gentoo-release", Parse::Generic("gentoo")),
    ("/etc/meego-release", Parse::Generic("meego")),
    ("/etc/slackware-version", Parse::Generic("slackware")),
    ("/etc/ttylinux-target", Parse::Generic("ttylinux")),
    ("/etc/SuSE-release", Parse::Suse),
    ("/etc/SuSE-release", Parse::Distro("suse-based")),
    ("/etc/alpine-release", Parse::Generic("alpinelinux")),
];

/// Distros without versions (os-release without `VERSION_ID` is complete for them).
const ROLLING: &[&str] = &["archlinux", "gentoo", "voidlinux"];

fn first_line(t: &str) -> Option<String> {
    let l = t.lines().next()?;
    (!l.is_empty() && l.len() <= MAX_LINE).then(|| l.to_string())
}

fn os_release(t: &str, id: &mut Identity) -> bool {
    for (k, v) in key_values(t) {
        if v.len() > MAX_LINE {
            continue;
        }
        match k.as_str() {
            "ID" => {
                if let Some(d) = distro_of_os_release_id(&v) {
                    id.distro = Some(d.into());
                }
            }
            "PRETTY_NAME" => id.product_name = Some(v),
            "VERSION_ID" => {
                if let Some(ver) = version_of(&v) {
                    id.version = Some(ver);
                }
            }
            _ => {}
        }
    }
    let (Some(d), Some(_)) = (id.distro.as_deref(), &id.product_name) else {
        return false;
    };
    match id.version {
        Some((_, 0)) if ["debian", "centos", "rocky"].contains(&d) => false,
        None if ROLLING.contains(&d) => {
            id.version = Some((0, 0));
            true
        }
        None => false,
        Some(_) => true,
    }
}

fn lsb_release(t: &str, id: &mut Identity) -> bool {
    let mut ok = false;
    for (k, v) in key_values(t) {
        if v.len() > MAX_LINE {
            continue;
        }
        match k.as_str() {
            "DISTRIB_ID" => {
                let d = match v.as_str() {
                    "CoreOS" => "coreos",
                    "LinuxMint" => "linuxmint",
                    "Mageia" => "mageia",
                    "Ubuntu" => "ubuntu",
                    _ => continue,
                };
                id.distro = Some(d.into());
                ok = true;
            }
            "DISTRIB_RELEASE" => {
                if let Some(ver) = version_of(&v) {
                    id.version = Some(ver);
                }
            }
            "DISTRIB_DESCRIPTION" => {
                id.product_name = Some(v);
                ok = true;
            }
            _ => {}
        }
    }
    ok
}

fn suse_release(t: &str, id: &mut Identity) -> bool {
    let lines: Vec<&str> = t.lines().take(3).collect();
    let Some(product) = lines.first().filter(|l| l.len() <= MAX_LINE) else {
        return false;
    };
    id.product_name = Some(product.to_string());
    let num = |i: usize, key: &str| {
        lines
            .get(i)
            .and_then(|l| l.strip_prefix(key))
            .and_then(version_of)
            .map(|v| v.0)
    };
    let sles = [
        "SUSE Linux Enterprise ",
        "SUSE LINUX Enterprise ",
        "Novell Linux Desktop ",
    ];
    if sles.iter().any(|p| product.starts_with(p)) {
        id.distro = Some("sles".into());
        id.version = num(1, "VERSION = ").map(|ma| (ma, num(2, "PATCHLEVEL = ").unwrap_or(0)));
    } else if ["openSUSE ", "SuSE Linux ", "SUSE LINUX "]
        .iter()
        .any(|p| product.starts_with(p))
    {
        if let Some(v) = lines.get(1).and_then(|l| version_of(l)) {
            id.version = Some(v);
        }
        id.distro = Some("opensuse".into());
    }
    true
}

fn parse(p: Parse, text: &str, id: &mut Identity) -> bool {
    match p {
        Parse::OsRelease => os_release(text, id),
        Parse::LsbRelease => lsb_release(text, id),
        Parse::Suse => suse_release(text, id),
        Parse::Distro(d) => {
            id.distro = Some(d.into());
            true
        }
        Parse::Generic(d) | Parse::Rex(d, _, _) => {
            let Some(product) = first_line(text) else {
                return false;
            };
            id.distro = Some(d.into());
            let matched = match p {
                Parse::Rex(_, prefix, need_minor) => release_version(&product, prefix, need_minor),
                _ => version_of(&product),
            };
            id.product_name = Some(product);
            match (p, matched) {
                (_, Some(v)) => {
                    id.version = Some(v);
                    true
                }
                (Parse::Rex(..), None) => false,
                _ => true,
            }
        }
    }
}

/// The identity from the release files, read through `file` (the text of a regular file, symlinks
/// followed; `None` if absent).
pub fn identify(file: &mut dyn FnMut(&str) -> Option<String>) -> Identity {
    let mut id = Identity::default();
    let mut last: Option<(&str, Option<String>)> = None;
    for &(path, p) in TESTS {
        let text = match &last {
            Some((lp, t)) if *lp == path => t.clone(),
            _ => file(path),
        };
        last = Some((path, text.clone()));
        if let Some(t) = text {
            if parse(p, &t, &mut id) {
                break;
            }
        }
    }
    id
}

/// libosinfo short id as libguestfs derives it for a Linux guest (`None` where it says
/// "unknown").
pub fn osinfo(distro: &str, major: u32, minor: u32) -> Option<String> {
    match distro {
        "centos" if major >= 8 => Some(format!("centos{major}")),
        "centos" if major == 7 => Some("centos7.0".into()),
        "centos" if major == 6 => Some(format!("centos6.{minor}")),
        "circle" | "rocky" if major >= 8 => Some(format!("{distro}{major}")),
        "debian" if major >= 4 => Some(format!("debian{major}")),
        "fedora" | "mageia" => Some(format!("{distro}{major}")),
        "sles" if minor == 0 => Some(format!("sles{major}")),
        "sles" => Some(format!("sles{major}sp{minor}")),
        "ubuntu" => Some(format!("ubuntu{major}.{minor:02}")),
        "archlinux" | "gentoo" | "voidlinux" => Some(distro.into()),
        "altlinux" if major >= 8 => Some(format!("alt{major}.{minor}")),
        "altlinux" => Some(format!("altlinux{major}.{minor}")),
        _ if major > 0 || minor > 0 => Some(format!("{distro}{major}.{minor}")),
        _ => None,
    }
}

/// Package format libguestfs associates with a distro.
pub fn package_format(distro: &str) -> Option<&'static str> {
    Some(match distro {
        "altlinux" | "centos" | "rocky" | "fedora" | "mageia" | "mandriva" | "meego"
        | "neokylin" | "openmandriva" | "opensuse" | "oraclelinux" | "redhat-based" | "rhel"
        | "scientificlinux" | "sles" | "suse-based" => "rpm",
        "debian" | "kalilinux" | "kylin" | "linuxmint" | "ubuntu" => "deb",
        "archlinux" => "pacman",
        "gentoo" => "ebuild",
        "pardus" => "pisi",
        "alpinelinux" => "apk",
        "voidlinux" => "xbps",
        _ => return None,
    })
}

/// Package manager libguestfs associates with a distro and major version (`has_dnf`: the guest
/// has `/usr/bin/dnf`, which only Fedora's answer depends on).
pub fn package_management(distro: &str, major: u32, has_dnf: bool) -> Option<&'static str> {
    Some(match distro {
        "meego" => "yum",
        "fedora" if major >= 22 && has_dnf => "dnf",
        "fedora" if major >= 1 => "yum",
        "neokylin" | "openmandriva" => "dnf",
        "centos" | "rocky" | "oraclelinux" | "redhat-based" | "rhel" | "scientificlinux" => {
            match major {
                8.. => "dnf",
                5..=7 => "yum",
                2..=4 => "up2date",
                _ => return None,
            }
        }
        "altlinux" | "debian" | "kalilinux" | "kylin" | "linuxmint" | "ubuntu" => "apt",
        "archlinux" => "pacman",
        "gentoo" => "portage",
        "pardus" => "pisi",
        "mageia" | "mandriva" => "urpmi",
        "opensuse" | "sles" | "suse-based" => "zypper",
        "alpinelinux" => "apk",
        "voidlinux" => "xbps",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(files: &[(&str, &str)]) -> Identity {
        identify(&mut |p| {
            files
                .iter()
                .find(|(f, _)| *f == p)
                .map(|(_, t)| t.to_string())
        })
    }

    #[test]
    fn debian_takes_product_and_minor_version_from_debian_version_as_libguestfs() {
        let id = ident(&[
            (
                "/etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n",
            ),
            ("/etc/debian_version", "12.15\n"),
        ]);
        assert_eq!(id.distro.as_deref(), Some("debian"));
        assert_eq!(id.product_name.as_deref(), Some("12.15"));
        assert_eq!(id.version, Some((12, 15)));
    }

    #[test]
    fn rocky_os_release_with_a_minor_version_settles_it() {
        let id = ident(&[
            (
                "/etc/os-release",
                "ID=\"rocky\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n",
            ),
            (
                "/etc/rocky-release",
                "Rocky Linux release 9.4 (Blue Onyx)\n",
            ),
        ]);
        assert_eq!(
            id,
            Identity {
                distro: Some("rocky".into()),
                product_name: Some("Rocky Linux 9.4 (Blue Onyx)".into()),
                version: Some((9, 4)),
            }
        );
    }

    #[test]
    fn unknown_os_release_id_falls_back_to_redhat_release() {
        let id = ident(&[
            (
                "/etc/os-release",
                "ID=\"almalinux\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"AlmaLinux 9.4\"\n",
            ),
            (
                "/etc/redhat-release",
                "AlmaLinux release 9.4 (Seafoam Ocelot)\n",
            ),
        ]);
        assert_eq!(id.distro.as_deref(), Some("redhat-based"));
        assert_eq!(
            id.product_name.as_deref(),
            Some("AlmaLinux release 9.4 (Seafoam Ocelot)")
        );
        assert_eq!(id.version, Some((9, 4)));
    }

    #[test]
    fn versions_are_the_leftmost_major_minor_else_the_first_number() {
        assert_eq!(version_of("12.15"), Some((12, 15)));
        assert_eq!(version_of("a1b12.3"), Some((12, 3)));
        assert_eq!(version_of("bookworm/sid"), None);
        assert_eq!(version_of("9"), Some((9, 0)));
        assert_eq!(
            release_version("CentOS Linux release 7.9.2009 (Core)", "CentOS", true),
            Some((7, 9))
        );
    }

    #[test]
    fn osinfo_and_package_tools_follow_libguestfs_tables() {
        assert_eq!(osinfo("debian", 12, 15).as_deref(), Some("debian12"));
        assert_eq!(osinfo("rocky", 9, 4).as_deref(), Some("rocky9"));
        assert_eq!(osinfo("rhel", 9, 4).as_deref(), Some("rhel9.4"));
        assert_eq!(osinfo("ubuntu", 24, 4).as_deref(), Some("ubuntu24.04"));
        assert_eq!(osinfo("redhat-based", 0, 0), None);
        assert_eq!(package_management("rocky", 9, false), Some("dnf"));
        assert_eq!(package_management("fedora", 40, false), Some("yum"));
        assert_eq!(package_format("archlinux"), Some("pacman"));
    }
}
