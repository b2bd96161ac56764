//! diskfab inspection: what a guest filesystem holds — OS, version, architecture, hostname,
//! packages, users, kernels and hypervisor drivers, network configuration, services — read
//! statically through the [`Filesystem`] trait (no boot, no mount). Unknown values are omitted,
//! never guessed; problems become warnings and the rest of the report still comes out.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod fuzz;
pub mod hive;
pub mod hivelog;
pub mod identity;
pub mod initramfs;
mod netplan;
mod network;
pub mod packages;
mod read;
pub mod rpm;
mod security;
mod system;
pub mod windows;

pub use network::{Interface, MacBinding};
pub use packages::Application;
pub use security::{AppArmor, SudoRule};
pub use system::{arch, Kernel, User, HYPERVISOR_DRIVERS};
pub use windows::WindowsInfo;

use diskfab_fs::{FileType, Filesystem};
use serde::Serialize;

pub use hive::fuzz_hive;
pub use initramfs::fuzz_initramfs;

/// Fuzzing entry point for the package database parsers: the first byte selects the parser
/// (0 rpm header blob, 1 sqlite rpmdb file, 2 dpkg status, 3 apk installed, 4 pacman desc,
/// 5 netplan YAML), the rest is its input. Returns the number of packages (or interfaces) read.
pub fn fuzz_packages(data: &[u8]) -> usize {
    let Some((sel, rest)) = data.split_first() else {
        return 0;
    };
    let text = || String::from_utf8_lossy(rest);
    match sel % 6 {
        0 => usize::from(rpm::parse_header(rest).is_some()),
        1 => {
            let Ok(dir) = tempfile::tempdir() else {
                return 0;
            };
            let f = dir.path().join("rpmdb.sqlite");
            if std::fs::write(&f, rest).is_err() {
                return 0;
            }
            rpm::read_sqlite(&f, &mut Vec::new()).len()
        }
        2 => packages::parse_dpkg_status(&text()).len(),
        3 => packages::parse_apk_installed(&text()).len(),
        4 => usize::from(packages::parse_pacman_desc(&text()).is_some()),
        _ => netplan::parse("fuzz", &text()).map_or(0, |v| v.len()),
    }
}

/// Largest package database read (a hostile 2 GB `status` file is skipped with a warning).
pub const MAX_DB_BYTES: u64 = 64 << 20;

/// One fstab entry.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    /// What to mount (`UUID=…`, `LABEL=…`, `PARTUUID=…`, `/dev/…`).
    pub spec: String,
    /// Where.
    pub mountpoint: String,
    /// Filesystem type.
    pub fstype: String,
}

/// What inspection found in one OS root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OsInfo {
    /// `linux` or `windows`.
    #[serde(rename = "type")]
    pub os_type: String,
    /// Distribution id (`debian`, `ubuntu`, `fedora`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    /// Product name as virt-inspector reports it (os-release `PRETTY_NAME`, or the first line of
    /// the release file libguestfs settles on, e.g. `12.15` from Debian's `/etc/debian_version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// os-release `PRETTY_NAME` (else `NAME`): the human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// Major version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_version: Option<u32>,
    /// Minor version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor_version: Option<u32>,
    /// Release codename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// libosinfo short id (e.g. `debian12`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub osinfo: Option<String>,
    /// CPU architecture from a system binary's ELF header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `deb`, `rpm`, `pacman` or `apk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_format: Option<String>,
    /// `apt`, `dnf`/`yum`, `zypper`, `pacman`, `apk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_management: Option<String>,
    /// Timezone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// /etc/machine-id holds an id (clones should get their own).
    pub machine_id_present: bool,
    /// cloud-init is installed.
    pub cloud_init: bool,
    /// SSH host keys exist (clones should get their own).
    pub ssh_host_keys: bool,
    /// SELinux mode from /etc/selinux/config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// AppArmor profiles present.
    pub apparmor: bool,
    /// AppArmor mode and profile counts from the files (absent without /etc/apparmor.d).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apparmor_mode: Option<AppArmor>,
    /// Password hashing scheme (login.defs ENCRYPT_METHOD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// /etc/fstab.
    pub fstab: Vec<Mount>,
    /// Installed applications (omitted with `--no-applications`).
    pub applications: Vec<Application>,
    /// User accounts.
    pub users: Vec<User>,
    /// Existing groups with administrator rights (sudo, wheel, admin, and `%groups` of sudoers).
    pub admin_groups: Vec<String>,
    /// sudoers rules: who may run commands as another user.
    pub sudo: Vec<SudoRule>,
    /// Installed kernels.
    pub kernels: Vec<Kernel>,
    /// Configured network interfaces.
    pub network: Vec<Interface>,
    /// Interface names bound to MAC addresses (configuration a new NIC would not match).
    pub mac_bindings: Vec<MacBinding>,
    /// Enabled systemd units.
    pub services: Vec<String>,
    /// Windows only: what the registry says beyond the common fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsInfo>,
    /// Problems met while inspecting.
    pub warnings: Vec<String>,
}

/// Options of [`inspect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip reading package databases.
    pub no_applications: bool,
}

/// Whether `fs` looks like an OS root worth inspecting.
pub fn is_os_root(fs: &mut dyn Filesystem) -> bool {
    is_linux_root(fs) || windows::system_root(fs).is_some()
}

/// An os-release file, or libguestfs' test for a Linux root: `/etc`, `/bin` (or the link
/// `/bin -> usr/bin`) and `/etc/fstab` or `/etc/hosts`.
fn is_linux_root(fs: &mut dyn Filesystem) -> bool {
    if read::exists(fs, "/etc/os-release") || read::exists(fs, "/usr/lib/os-release") {
        return true;
    }
    let is = |fs: &mut dyn Filesystem, p: &str, t: FileType| {
        diskfab_fs::path::resolve(fs, p.as_bytes(), false)
            .ok()
            .and_then(|i| fs.getattr(i).ok())
            .is_some_and(|m| m.file_type == t)
    };
    is(fs, "/etc", FileType::Directory)
        && (is(fs, "/bin", FileType::Directory)
            || read::link(fs, "/bin").as_deref() == Some("usr/bin"))
        && (is(fs, "/etc/fstab", FileType::Regular) || is(fs, "/etc/hosts", FileType::Regular))
}

fn os_release(fs: &mut dyn Filesystem, o: &mut OsInfo) {
    let text = read::text(fs, "/etc/os-release", &mut o.warnings)
        .or_else(|| read::text(fs, "/usr/lib/os-release", &mut o.warnings))
        .unwrap_or_default();
    parse_os_release(&text, o);
    let warnings = &mut o.warnings;
    let id = identity::identify(&mut |p| read::text(fs, p, warnings));
    apply_identity(id, read::exists(fs, "/usr/bin/dnf"), o);
}

/// Pretty name and codename from os-release text (distro, product and version come from
/// [`identity::identify`], as libguestfs derives them).
fn parse_os_release(text: &str, o: &mut OsInfo) {
    let kv = read::key_values(text);
    let get = |k: &str| {
        kv.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && v.len() < 256)
    };
    o.pretty_name = get("PRETTY_NAME").or_else(|| get("NAME"));
    o.codename = get("VERSION_CODENAME");
}

/// Distro, product, version, osinfo id and package tools from the release files' identity.
fn apply_identity(id: identity::Identity, has_dnf: bool, o: &mut OsInfo) {
    o.distro = id.distro;
    o.product_name = id.product_name;
    // libguestfs reports 0.0 when no version was found.
    let (major, minor) = id.version.unwrap_or((0, 0));
    o.major_version = Some(major);
    o.minor_version = Some(minor);
    if let Some(d) = o.distro.as_deref() {
        o.osinfo = identity::osinfo(d, major, minor);
        o.package_format = identity::package_format(d).map(Into::into);
        o.package_management = identity::package_management(d, major, has_dnf).map(Into::into);
    }
}

fn packages(fs: &mut dyn Filesystem, o: &mut OsInfo, opts: Options) {
    let fmt = if read::exists(fs, "/var/lib/dpkg/status") {
        Some(("deb", "apt"))
    } else if rpm::RPMDB_DIRS.iter().any(|d| read::exists(fs, d)) {
        Some((
            "rpm",
            if read::exists(fs, "/usr/bin/zypper") {
                "zypper"
            } else if read::exists(fs, "/usr/bin/dnf") {
                "dnf"
            } else {
                "yum"
            },
        ))
    } else if read::exists(fs, "/var/lib/pacman/local") {
        Some(("pacman", "pacman"))
    } else if read::exists(fs, "/lib/apk/db/installed") {
        Some(("apk", "apk"))
    } else {
        None
    };
    // Format and manager are reported as libguestfs derives them from the distro; the files
    // decide which database is listed (also for a distro libguestfs does not know).
    if o.distro.is_none() {
        if let Some((f, m)) = fmt {
            o.package_format = Some(f.into());
            o.package_management = Some(m.into());
        }
    }
    if opts.no_applications {
        return;
    }
    match fmt.map(|x| x.0) {
        Some("deb") => match read::file(fs, "/var/lib/dpkg/status", MAX_DB_BYTES) {
            Ok(Some(b)) => {
                o.applications = packages::parse_dpkg_status(&String::from_utf8_lossy(&b))
            }
            Ok(None) => {}
            Err(w) => o.warnings.push(w),
        },
        Some("apk") => match read::file(fs, "/lib/apk/db/installed", MAX_DB_BYTES) {
            Ok(Some(b)) => {
                o.applications = packages::parse_apk_installed(&String::from_utf8_lossy(&b))
            }
            Ok(None) => {}
            Err(w) => o.warnings.push(w),
        },
        Some("pacman") => {
            for d in read::list(fs, "/var/lib/pacman/local") {
                if let Some(t) = read::text(
                    fs,
                    &format!("/var/lib/pacman/local/{d}/desc"),
                    &mut o.warnings,
                ) {
                    o.applications.extend(packages::parse_pacman_desc(&t));
                }
            }
            o.applications.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Some("rpm") => o.applications = rpm::packages(fs, &mut o.warnings),
        Some(f) => o.warnings.push(format!(
            "{f} package databases are detected but not yet listed"
        )),
        None => {}
    }
}

/// The entries of an fstab file (comments and lines of fewer than three fields skipped).
fn parse_fstab(t: &str) -> Vec<Mount> {
    t.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| Mount {
                spec: f[0].into(),
                mountpoint: f[1].into(),
                fstype: f[2].into(),
            })
        })
        .collect()
}

/// The hostname as libguestfs finds it: the first line of `/etc/HOSTNAME` or `/etc/hostname`,
/// else `HOSTNAME=` of `/etc/sysconfig/network`.
fn hostname(fs: &mut dyn Filesystem, w: &mut Vec<String>) -> Option<String> {
    let ok = |h: &str| !h.is_empty() && h.len() <= 253;
    for p in ["/etc/HOSTNAME", "/etc/hostname"] {
        if let Some(h) = read::text(fs, p, w).and_then(|t| t.lines().next().map(str::to_string)) {
            if ok(&h) {
                return Some(h);
            }
        }
    }
    let t = read::text(fs, "/etc/sysconfig/network", w)?;
    read::key_values(&t)
        .into_iter()
        .find(|(k, v)| k == "HOSTNAME" && ok(v))
        .map(|(_, v)| v)
}

/// Inspects the OS whose root filesystem is `fs`.
pub fn inspect(fs: &mut dyn Filesystem, opts: Options) -> OsInfo {
    if !is_linux_root(fs) {
        if let Some(root) = windows::system_root(fs) {
            let mut o = OsInfo::default();
            windows::inspect(fs, &root, &mut o, opts.no_applications);
            return o;
        }
    }
    let mut o = OsInfo {
        os_type: "linux".into(),
        ..Default::default()
    };
    os_release(fs, &mut o);
    o.arch = system::arch(fs);
    let w = &mut o.warnings;
    o.hostname = hostname(fs, w);
    o.timezone = system::timezone(fs, &mut o.warnings);
    o.machine_id_present =
        read::text(fs, "/etc/machine-id", &mut o.warnings).is_some_and(|m| m.trim().len() == 32);
    o.cloud_init =
        read::exists(fs, "/etc/cloud/cloud.cfg") || read::exists(fs, "/usr/bin/cloud-init");
    o.ssh_host_keys = read::list(fs, "/etc/ssh")
        .iter()
        .any(|f| f.starts_with("ssh_host_") && f.ends_with("_key"));
    o.selinux = read::text(fs, "/etc/selinux/config", &mut o.warnings).and_then(|t| {
        read::key_values(&t)
            .into_iter()
            .find(|(k, _)| k == "SELINUX")
            .map(|(_, v)| v)
    });
    o.apparmor = read::exists(fs, "/etc/apparmor.d");
    o.password_hash = read::text(fs, "/etc/login.defs", &mut o.warnings).and_then(|t| {
        t.lines().map(str::trim).find_map(|l| {
            l.strip_prefix("ENCRYPT_METHOD")
                .map(|v| v.trim().to_string())
        })
    });
    o.fstab = read::text(fs, "/etc/fstab", &mut o.warnings)
        .map(|t| parse_fstab(&t))
        .unwrap_or_default();
    packages(fs, &mut o, opts);
    let passwd = read::text(fs, "/etc/passwd", &mut o.warnings).unwrap_or_default();
    let shadow = read::text(fs, "/etc/shadow", &mut o.warnings).unwrap_or_default();
    let group = read::text(fs, "/etc/group", &mut o.warnings).unwrap_or_default();
    o.users = system::users(&passwd, &shadow, &group);
    o.sudo = security::sudoers(fs, &mut o.warnings);
    o.admin_groups = security::apply_admin_rights(&mut o.users, &group, &o.sudo);
    o.apparmor_mode = security::apparmor(fs, &mut o.warnings);
    o.kernels = system::kernels(fs, &mut o.warnings);
    o.network = network::interfaces(fs, &mut o.warnings);
    o.mac_bindings = network::mac_bindings(fs, &o.network, &mut o.warnings);
    o.services = system::enabled_services(fs);
    o
}
