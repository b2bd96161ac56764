//! Package databases in text formats: dpkg's `status` file (Debian, Ubuntu), pacman's local
//! `desc` files (Arch) and apk's `installed` (Alpine). rpm's sqlite database is in [`crate::rpm`].

use serde::Serialize;

/// One installed application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Application {
    /// Package name.
    pub name: String,
    /// Epoch (0 when absent).
    pub epoch: u32,
    /// Upstream version.
    pub version: String,
    /// Distribution revision ("release").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub release: String,
    /// Architecture.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub arch: String,
    /// First line of the description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// Splits a Debian version `[epoch:]upstream[-revision]`.
pub fn split_deb_version(v: &str) -> (u32, String, String) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u.to_string(), r.to_string()),
        None => (epoch, rest.to_string(), String::new()),
    }
}

/// Installed packages from a dpkg `status` file. Malformed paragraphs are skipped.
pub fn parse_dpkg_status(s: &str) -> Vec<Application> {
    let mut out = Vec::new();
    for para in s.split("\n\n") {
        let (mut name, mut status, mut version, mut arch, mut summary) = ("", "", "", "", "");
        for line in para.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = v,
                "Status" => status = v,
                "Version" => version = v,
                "Architecture" => arch = v,
                "Description" => summary = v,
                _ => {}
            }
        }
        if name.is_empty() || !status.ends_with(" installed") || version.is_empty() {
            continue;
        }
        let (epoch, version, release) = split_deb_version(version);
        out.push(Application {
            name: name.to_string(),
            epoch,
            version,
            release,
            arch: arch.to_string(),
            summary: summary.to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Splits an Arch/Alpine version `[epoch:]pkgver-pkgrel`.
fn split_epoch_rel(v: &str) -> (u32, String, String) {
    split_deb_version(v)
}

/// One package from a pacman local-db `desc` file (`%NAME%`, `%VERSION%`, `%ARCH%`, `%DESC%`).
pub fn parse_pacman_desc(s: &str) -> Option<Application> {
    let mut field = "";
    let (mut name, mut ver, mut arch, mut desc) = (None, None, String::new(), String::new());
    for l in s.lines() {
        if l.starts_with('%') && l.ends_with('%') && l.len() > 2 {
            field = l;
            continue;
        }
        if l.is_empty() {
            field = "";
            continue;
        }
        match field {
            "%NAME%" if name.is_none() => name = Some(l.to_string()),
            "%VERSION%" if ver.is_none() => ver = Some(l.to_string()),
            "%ARCH%" if arch.is_empty() => arch = l.to_string(),
            "%DESC%" if desc.is_empty() => desc = l.to_string(),
            _ => {}
        }
    }
    let (epoch, version, release) = split_epoch_rel(&ver?);
    Some(Application {
        name: name?,
        epoch,
        version,
        release,
        arch,
        summary: desc,
    })
}

/// Installed packages from Alpine's `/lib/apk/db/installed` (`P:` name, `V:` version, `A:` arch,
/// `T:` description; records separated by blank lines).
pub fn parse_apk_installed(s: &str) -> Vec<Application> {
    let mut out = Vec::new();
    for rec in s.split("\n\n") {
        let (mut name, mut ver, mut arch, mut desc) = ("", "", "", "");
        for l in rec.lines() {
            match l.split_at_checked(2) {
                Some(("P:", v)) => name = v,
                Some(("V:", v)) => ver = v,
                Some(("A:", v)) => arch = v,
                Some(("T:", v)) => desc = v,
                _ => {}
            }
        }
        if name.is_empty() || ver.is_empty() {
            continue;
        }
        let (epoch, version, release) = split_epoch_rel(ver);
        out.push(Application {
            name: name.into(),
            epoch,
            version,
            release,
            arch: arch.into(),
            summary: desc.into(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_only_installed_packages_and_splits_versions() {
        let s = "Package: a\nStatus: install ok installed\nVersion: 1:2.3-4+deb12u1\nArchitecture: amd64\nDescription: A thing\n long text\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: c\nStatus: install ok installed\nVersion: 5.0\n";
        let v = parse_dpkg_status(s);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].epoch, v[0].version.as_str(), v[0].release.as_str()),
            (1, "2.3", "4+deb12u1")
        );
        assert_eq!(v[0].summary, "A thing");
        assert_eq!(
            (v[1].epoch, v[1].version.as_str(), v[1].release.as_str()),
            (0, "5.0", "")
        );
        assert!(parse_dpkg_status("\u{0}\u{1}garbage\n\n:::").is_empty());
    }

    #[test]
    fn pacman_desc_and_apk_installed_records_parse_with_epochs_and_releases() {
        let p = parse_pacman_desc("%NAME%\nlinux\n\n%VERSION%\n1:6.6.1.arch1-1\n\n%DESC%\nThe Linux kernel\n\n%ARCH%\nx86_64\n").unwrap();
        assert_eq!(
            (
                p.name.as_str(),
                p.epoch,
                p.version.as_str(),
                p.release.as_str(),
                p.arch.as_str()
            ),
            ("linux", 1, "6.6.1.arch1", "1", "x86_64")
        );
        assert!(parse_pacman_desc("%NAME%\nx\n").is_none());
        let a = parse_apk_installed("C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nT:the musl c library\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\n\nP:broken\n");
        assert_eq!(a.len(), 2);
        assert_eq!(
            (
                a[0].name.as_str(),
                a[0].version.as_str(),
                a[0].release.as_str()
            ),
            ("busybox", "1.36.1", "r15")
        );
        assert_eq!(a[1].summary, "the musl c library");
    }
}
