//! Package databases. dpkg's `status` file (Debian, Ubuntu) is parsed here; the formats of rpm,
//! pacman and apk are detected and reported (their parsers are still to come).

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
}
