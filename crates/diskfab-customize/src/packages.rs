//! Package operations (`--install`, `--uninstall`, `--update`, `--install-file`), run by the
//! guest's own package manager inside the sandbox, with virt-customize's names. The package
//! manager is detected from the exported guest tree; every command is non-interactive.

use crate::ops::Op;
use diskfab_storage::{Error, Result};
use std::path::{Path, PathBuf};

/// The operations performed by running guest programs (not planned as file changes).
pub const RUNNER_OPS: [&str; 5] = [
    "run-command",
    "install",
    "uninstall",
    "update",
    "install-file",
];

/// The operations that fetch packages and need the network.
pub const NETWORK_OPS: [&str; 2] = ["install", "update"];

/// A guest package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// Debian, Ubuntu: apt-get over dpkg.
    Apt,
    /// Fedora, RHEL 8+: dnf over rpm.
    Dnf,
    /// RHEL 7, CentOS 7: yum over rpm.
    Yum,
    /// SUSE: zypper over rpm.
    Zypper,
    /// Alpine.
    Apk,
    /// Arch.
    Pacman,
}

/// apt-get options: no questions, keep existing configuration files, root as the download
/// user (in an unprivileged sandbox `_apt` has no id).
const APT: &str = "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o APT::Sandbox::User=root";

/// Runs `apt-get update` first when the guest has no package lists (debootstrap and cloud
/// images usually ship without them).
const APT_LISTS: &str =
    "if ! ls /var/lib/apt/lists 2>/dev/null | grep -q _Packages; then $APT update; fi";

fn exists(root: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(root.join(rel)).is_ok()
}

fn has_tool(root: &Path, name: &str) -> bool {
    ["usr/bin", "bin", "usr/sbin", "sbin"]
        .iter()
        .any(|d| exists(root, &format!("{d}/{name}")))
}

/// The package manager of the guest tree at `root`.
pub fn detect(root: &Path) -> Result<Manager> {
    let found = [
        ("apt-get", Manager::Apt),
        ("dnf", Manager::Dnf),
        ("yum", Manager::Yum),
        ("zypper", Manager::Zypper),
        ("apk", Manager::Apk),
        ("pacman", Manager::Pacman),
    ]
    .into_iter()
    .find(|(t, _)| has_tool(root, t));
    found.map(|(_, m)| m).ok_or_else(|| {
        Error::Unsupported(
            "the guest has no package manager diskfab knows (apt-get, dnf, yum, zypper, apk, \
             pacman); use --run-command with the guest's own tool"
                .into(),
        )
    })
}

/// Package names of an `--install`/`--uninstall` argument (comma-separated). Names are passed
/// as separate arguments, never through a shell, and may not look like options.
pub fn names(op: &str, arg: &str) -> Result<Vec<String>> {
    let v: Vec<String> = arg
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        return Err(Error::Invalid(format!(
            "--{op}: no package names given (PKG,...)"
        )));
    }
    for n in &v {
        let ok = !n.starts_with('-')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "@._+:=~/*-".contains(c));
        if !ok {
            return Err(Error::Invalid(format!(
                "--{op}: {n:?} is not a package name (letters, digits and @._+:=~/*- only, not \
                 starting with '-')"
            )));
        }
    }
    Ok(v)
}

/// The host package files of an `--install-file` argument (comma-separated, .deb or .rpm).
pub fn files(arg: &str) -> Result<Vec<PathBuf>> {
    let v: Vec<PathBuf> = arg
        .split(',')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if v.is_empty() {
        return Err(Error::Invalid("--install-file: no file given".into()));
    }
    let kind = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    };
    let first = kind(&v[0]);
    for p in &v {
        let k = kind(p);
        if !matches!(k.as_deref(), Some("deb") | Some("rpm")) || k != first {
            return Err(Error::Invalid(format!(
                "--install-file {}: expected .deb or .rpm files (all of one kind)",
                p.display()
            )));
        }
        let m = std::fs::metadata(p)
            .map_err(|e| Error::io(format!("--install-file {}", p.display()), e))?;
        if !m.is_file() || m.len() > crate::MAX_HOST_FILE {
            return Err(Error::Invalid(format!(
                "--install-file {}: not a regular file of at most 4 GiB",
                p.display()
            )));
        }
    }
    Ok(v)
}

/// Checks a runner operation's argument and the network policy before anything is written.
pub fn validate(op: &Op, no_network: bool) -> Result<()> {
    if no_network && NETWORK_OPS.contains(&op.name.as_str()) {
        return Err(Error::Invalid(format!(
            "--{} needs the network (the guest's package manager downloads packages) and \
             --no-network forbids it: drop --no-network, or download the packages on the host \
             and use --install-file PATH.deb|PATH.rpm",
            op.name
        )));
    }
    match op.name.as_str() {
        "install" | "uninstall" => names(&op.name, &op.arg).map(|_| ()),
        "install-file" => files(&op.arg).map(|_| ()),
        _ => Ok(()),
    }
}

/// A shell script and its positional arguments (`sh -c SCRIPT sh ARGS...`).
pub struct Script {
    /// The script.
    pub script: String,
    /// `$@`.
    pub args: Vec<String>,
}

/// The script performing `op` with manager `m`. `guest_files` are the guest paths of the
/// `--install-file` packages, already copied into the tree.
pub fn script(m: Manager, op: &Op, guest_files: &[String]) -> Result<Script> {
    let pkgs = || names(&op.name, &op.arg);
    let (script, args) = match (op.name.as_str(), m) {
        ("install", Manager::Apt) => (
            format!("APT='{APT}'; set -e; {APT_LISTS}; $APT install \"$@\"; $APT clean"),
            pkgs()?,
        ),
        ("uninstall", Manager::Apt) => (format!("set -e; {APT} remove \"$@\""), pkgs()?),
        ("update", Manager::Apt) => (
            format!("set -e; {APT} update; {APT} upgrade; {APT} clean"),
            vec![],
        ),
        ("install", Manager::Dnf | Manager::Yum) => {
            (format!("{} -y install \"$@\"", tool(m)), pkgs()?)
        }
        ("uninstall", Manager::Dnf | Manager::Yum) => {
            (format!("{} -y remove \"$@\"", tool(m)), pkgs()?)
        }
        ("update", Manager::Dnf | Manager::Yum) => (format!("{} -y upgrade", tool(m)), vec![]),
        ("install", Manager::Zypper) => ("zypper -n install \"$@\"".into(), pkgs()?),
        ("uninstall", Manager::Zypper) => ("zypper -n remove \"$@\"".into(), pkgs()?),
        ("update", Manager::Zypper) => ("zypper -n update".into(), vec![]),
        ("install", Manager::Apk) => ("apk add \"$@\"".into(), pkgs()?),
        ("uninstall", Manager::Apk) => ("apk del \"$@\"".into(), pkgs()?),
        ("update", Manager::Apk) => ("set -e; apk update; apk upgrade".into(), vec![]),
        ("install", Manager::Pacman) => ("pacman -S --noconfirm --needed \"$@\"".into(), pkgs()?),
        ("uninstall", Manager::Pacman) => ("pacman -R --noconfirm \"$@\"".into(), pkgs()?),
        ("update", Manager::Pacman) => ("pacman -Syu --noconfirm".into(), vec![]),
        ("install-file", _) => install_files(m, guest_files)?,
        (other, _) => {
            return Err(Error::Invalid(format!(
                "--{other} is not a package operation"
            )))
        }
    };
    Ok(Script { script, args })
}

fn tool(m: Manager) -> &'static str {
    if m == Manager::Yum {
        "yum"
    } else {
        "dnf"
    }
}

fn install_files(m: Manager, guest_files: &[String]) -> Result<(String, Vec<String>)> {
    let deb = guest_files.iter().all(|f| f.ends_with(".deb"));
    match (deb, m) {
        (true, Manager::Apt) => Ok(("dpkg -i \"$@\"".into(), guest_files.to_vec())),
        (false, Manager::Dnf | Manager::Yum | Manager::Zypper) => {
            Ok(("rpm -i \"$@\"".into(), guest_files.to_vec()))
        }
        _ => Err(Error::Invalid(format!(
            "--install-file: {} packages cannot be installed in this guest (its package manager \
             is {m:?})",
            if deb { ".deb" } else { ".rpm" }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_that_look_like_options_are_refused() {
        assert_eq!(names("install", "hello, curl").unwrap(), ["hello", "curl"]);
        assert!(names("install", "-o=APT::X").is_err());
        assert!(names("install", "a;rm -rf /").is_err());
        assert!(names("install", " , ").is_err());
    }

    #[test]
    fn no_network_refuses_install_and_update_but_not_uninstall() {
        let op = |n: &str| Op::new(n, "hello").unwrap();
        assert!(matches!(
            validate(&op("install"), true),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            validate(&op("update"), true),
            Err(Error::Invalid(_))
        ));
        assert!(validate(&op("uninstall"), true).is_ok());
        assert!(validate(&op("install"), false).is_ok());
    }
}
