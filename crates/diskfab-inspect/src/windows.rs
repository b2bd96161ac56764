//! Windows guests, from the SYSTEM and SOFTWARE registry hives (read with [`crate::hive`]):
//! product, edition, version and build, system root, hostname, installed applications, services
//! and drivers with their start type, and drive letters.

use crate::hive::{Hive, Key, Value, MAX_HIVE_BYTES};
use crate::packages::Application;
use crate::{read, OsInfo};
use diskfab_fs::Filesystem;
use diskfab_storage::bytes::{le_u16, le_u32, le_u64, slice};
use serde::Serialize;

/// Where the hives live, relative to the system root.
const CONFIG: &str = "System32/config";
/// Paravirtual drivers that matter when moving a Windows guest to KVM (virtio-win).
pub const VIRTIO_DRIVERS: &[&str] = &[
    "viostor", "vioscsi", "netkvm", "balloon", "vioser", "viorng", "pvpanic", "fwcfg",
];

/// A Windows service or driver.
#[derive(Debug, Clone, Serialize)]
pub struct WindowsService {
    /// Key name under Services.
    pub name: String,
    /// `boot`, `system`, `automatic`, `manual`, `disabled` (absent when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<&'static str>,
    /// `kernel-driver`, `filesystem-driver`, `service` (absent when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// ImagePath.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A drive letter from SYSTEM\MountedDevices.
#[derive(Debug, Clone, Serialize)]
pub struct DriveLetter {
    /// `C:` …
    pub letter: String,
    /// MBR disk signature (hex) of the disk holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbr_disk_signature: Option<String>,
    /// Byte offset of the partition on that MBR disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_offset: Option<u64>,
    /// GPT partition GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt_partition_guid: Option<String>,
    /// Any other identity (removable media, CD-ROM): the UTF-16 device path, or the bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The partition of the inspected disk it is (left empty here: matching against the
    /// partition table is done where the disk is known, by the inspect operation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Filesystem type of that partition (filled with `partition`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

/// What only Windows has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowsInfo {
    /// The system root as found in the filesystem (e.g. `/Windows`).
    pub system_root: String,
    /// EditionID (`Professional`, `ServerStandard`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    /// InstallationType (`Client`, `Server`, `Server Core`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_type: Option<String>,
    /// CurrentBuild (≥ 22000 is Windows 11 / Server 2022+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<u32>,
    /// DisplayVersion (`23H2`) or ReleaseId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_version: Option<String>,
    /// The control set in use (`ControlSet001`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_set: Option<String>,
    /// Drive letters.
    pub drive_letters: Vec<DriveLetter>,
    /// Every service and driver.
    pub services: Vec<WindowsService>,
    /// The virtio-win drivers installed as services.
    pub virtio_drivers: Vec<String>,
}

/// The system root (`/Windows`, any case) if `fs` holds Windows/System32/config/SYSTEM.
pub fn system_root(fs: &mut dyn Filesystem) -> Option<String> {
    for root in ["/Windows", "/WINNT"] {
        if let Some(r) = read::find_ci(fs, root) {
            if read::find_ci(fs, &format!("{r}/{CONFIG}/SYSTEM")).is_some() {
                return Some(r);
            }
        }
    }
    None
}

fn open_hive(fs: &mut dyn Filesystem, root: &str, name: &str, w: &mut Vec<String>) -> Option<Hive> {
    let p = read::find_ci(fs, &format!("{root}/{CONFIG}/{name}"))?;
    let bytes = match read::file(fs, &p, MAX_HIVE_BYTES) {
        Ok(b) => b?,
        Err(e) => {
            w.push(e);
            return None;
        }
    };
    let logs: Vec<(String, Vec<u8>)> = ["LOG1", "LOG2"]
        .iter()
        .filter_map(|ext| {
            let lp = read::find_ci(fs, &format!("{p}.{ext}"))?;
            match read::file(fs, &lp, MAX_HIVE_BYTES) {
                Ok(b) => Some((lp, b?)),
                Err(e) => {
                    w.push(e);
                    None
                }
            }
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = logs.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let (bytes, log_warnings) = crate::hivelog::recover(bytes, &refs);
    w.extend(log_warnings.into_iter().map(|m| format!("{p}: {m}")));
    match Hive::new(bytes) {
        Ok(h) => Some(h),
        Err(e) => {
            w.push(format!("{p}: {e}"));
            None
        }
    }
}

fn text(k: &Key, name: &str) -> Option<String> {
    k.value(name)
        .and_then(|v| v.as_str().map(str::to_string))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() < 1024)
}

fn start_type(n: u64) -> Option<&'static str> {
    Some(match n {
        0 => "boot",
        1 => "system",
        2 => "automatic",
        3 => "manual",
        4 => "disabled",
        _ => return None,
    })
}

fn service_kind(n: u64) -> Option<&'static str> {
    match n {
        1 => Some("kernel-driver"),
        2 => Some("filesystem-driver"),
        n if n & 0x30 != 0 => Some("service"),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A GUID in its registry spelling from its 16 mixed-endian bytes.
fn guid(b: &[u8]) -> Option<String> {
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        le_u32(b, 0).ok()?,
        le_u16(b, 4).ok()?,
        le_u16(b, 6).ok()?,
        hex(slice(b, 8, 2).ok()?),
        hex(slice(b, 10, 6).ok()?)
    ))
}

/// Longest device path kept from a MountedDevices value.
const MAX_DEVICE_PATH: usize = 512;

/// Decodes one MountedDevices value: 12 bytes (MBR disk signature + partition byte offset),
/// `DMIO:ID:` + GPT partition GUID, or a device path in UTF-16 (anything else in hex).
pub fn drive_letter(letter: String, b: &[u8]) -> DriveLetter {
    let mut d = DriveLetter {
        letter,
        mbr_disk_signature: None,
        partition_offset: None,
        gpt_partition_guid: None,
        device: None,
        partition: None,
        fs_type: None,
    };
    if b.len() == 12 {
        d.mbr_disk_signature = le_u32(b, 0).ok().map(|s| format!("{s:08x}"));
        d.partition_offset = le_u64(b, 4).ok();
    } else if b.len() == 24 && b.starts_with(b"DMIO:ID:") {
        d.gpt_partition_guid = guid(&b[8..]);
    } else {
        let b = &b[..b.len().min(MAX_DEVICE_PATH * 2)];
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        d.device = match String::from_utf16(&units) {
            Ok(s)
                if b.len().is_multiple_of(2)
                    && !s.is_empty()
                    && s.chars().all(|c| !c.is_control()) =>
            {
                Some(s)
            }
            _ => Some(hex(b)),
        };
    }
    d
}

pub(crate) fn drive_letters(system: &Hive) -> Vec<DriveLetter> {
    let Some(k) = system.key("MountedDevices") else {
        return Vec::new();
    };
    let mut out: Vec<DriveLetter> = k
        .values()
        .into_iter()
        .filter_map(|(n, v)| {
            let letter = n.strip_prefix("\\DosDevices\\")?.to_string();
            let Value::Bytes(b) = v else { return None };
            Some(drive_letter(letter, &b))
        })
        .collect();
    out.sort_by(|a, b| a.letter.cmp(&b.letter));
    out
}

pub(crate) fn applications(software: &Hive) -> Vec<Application> {
    let mut out = Vec::new();
    for (path, arch) in [
        ("Microsoft\\Windows\\CurrentVersion\\Uninstall", ""),
        (
            "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
            "x86",
        ),
    ] {
        let Some(k) = software.key(path) else {
            continue;
        };
        for app in k.subkeys() {
            let Some(name) = text(&app, "DisplayName") else {
                continue;
            };
            out.push(Application {
                name,
                epoch: 0,
                version: text(&app, "DisplayVersion").unwrap_or_default(),
                release: String::new(),
                arch: arch.into(),
                summary: text(&app, "Comments").unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.arch.cmp(&b.arch)));
    out
}

/// The libosinfo id for a Windows product.
fn osinfo(product: &str, client: bool, major: u32, minor: u32, build: u32) -> Option<String> {
    if !client {
        for (y, id) in [
            ("2025", "win2k25"),
            ("2022", "win2k22"),
            ("2019", "win2k19"),
            ("2016", "win2k16"),
            ("2012 R2", "win2k12r2"),
            ("2012", "win2k12"),
            ("2008 R2", "win2k8r2"),
        ] {
            if product.contains(y) {
                return Some(id.into());
            }
        }
        return None;
    }
    Some(
        match (major, minor) {
            (10, 0) if build >= 22000 => "win11",
            (10, 0) => "win10",
            (6, 3) => "win8.1",
            (6, 2) => "win8",
            (6, 1) => "win7",
            _ => return None,
        }
        .into(),
    )
}

/// Fills `o` from the Windows installation at system root `root`.
pub fn inspect(fs: &mut dyn Filesystem, root: &str, o: &mut OsInfo, no_applications: bool) {
    o.os_type = "windows".into();
    o.distro = Some("windows".into());
    let mut win = WindowsInfo {
        system_root: root.to_string(),
        ..Default::default()
    };
    let system = open_hive(fs, root, "SYSTEM", &mut o.warnings);
    let software = open_hive(fs, root, "SOFTWARE", &mut o.warnings);
    if let Some(sw) = &software {
        if let Some(cv) = sw.key("Microsoft\\Windows NT\\CurrentVersion") {
            let build: Option<u32> = text(&cv, "CurrentBuild")
                .or_else(|| text(&cv, "CurrentBuildNumber"))
                .and_then(|b| b.parse().ok());
            win.build = build;
            win.edition = text(&cv, "EditionID");
            win.installation_type = text(&cv, "InstallationType");
            win.display_version = text(&cv, "DisplayVersion").or_else(|| text(&cv, "ReleaseId"));
            let (major, minor) = match (
                cv.value("CurrentMajorVersionNumber")
                    .and_then(|v| v.as_int()),
                cv.value("CurrentMinorVersionNumber")
                    .and_then(|v| v.as_int()),
            ) {
                (Some(a), Some(b)) => (u32::try_from(a).ok(), u32::try_from(b).ok()),
                _ => {
                    let v = text(&cv, "CurrentVersion").unwrap_or_default();
                    let mut it = v.split('.').map(|x| x.parse().ok());
                    (it.next().flatten(), it.next().flatten())
                }
            };
            o.major_version = major;
            o.minor_version = minor;
            // InstallationType appeared with Windows 8 / 2012; before, the product name tells.
            let client = match win.installation_type.as_deref() {
                Some(t) => t == "Client",
                None => text(&cv, "ProductName").is_some_and(|p| !p.contains("Server")),
            };
            // Windows 11 still says "Windows 10" in ProductName: the build tells.
            o.product_name =
                text(&cv, "ProductName").map(|p| match (build, p.strip_prefix("Windows 10")) {
                    (Some(b), Some(rest)) if b >= 22000 && client => format!("Windows 11{rest}"),
                    _ => p,
                });
            if let (Some(p), Some(ma), Some(mi)) = (&o.product_name, major, minor) {
                o.osinfo = osinfo(p, client, ma, mi, build.unwrap_or(0));
            }
        }
        if !no_applications {
            o.applications = applications(sw);
        }
        if sw.exhausted() {
            o.warnings
                .push("SOFTWARE hive: work limit reached; the listing is incomplete".into());
        }
    }
    if let Some(sys) = &system {
        let current = sys
            .key("Select")
            .and_then(|k| k.value("Current"))
            .and_then(|v| v.as_int())
            .filter(|n| (1..=999).contains(n));
        if let Some(n) = current {
            let cs = format!("ControlSet{n:03}");
            if let Some(set) = sys.key(&cs) {
                o.hostname = set
                    .subkey("Services")
                    .and_then(|s| s.subkey("Tcpip"))
                    .and_then(|t| t.subkey("Parameters"))
                    .and_then(|p| text(&p, "Hostname"))
                    .or_else(|| {
                        sys.key(&format!("{cs}\\Control\\ComputerName\\ComputerName"))
                            .and_then(|k| text(&k, "ComputerName"))
                    })
                    .filter(|h| h.len() <= 253);
                o.arch = sys
                    .key(&format!("{cs}\\Control\\Session Manager\\Environment"))
                    .and_then(|k| text(&k, "PROCESSOR_ARCHITECTURE"))
                    .and_then(|a| match a.to_ascii_uppercase().as_str() {
                        "AMD64" => Some("x86_64".to_string()),
                        "X86" => Some("i386".to_string()),
                        "ARM64" => Some("aarch64".to_string()),
                        _ => None,
                    });
                win.services = set
                    .subkey("Services")
                    .map(|s| s.subkeys())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| WindowsService {
                        name: k.name(),
                        start: k
                            .value("Start")
                            .and_then(|v| v.as_int())
                            .and_then(start_type),
                        kind: k
                            .value("Type")
                            .and_then(|v| v.as_int())
                            .and_then(service_kind),
                        image: text(&k, "ImagePath"),
                    })
                    .collect();
                win.services.sort_by_key(|s| s.name.to_lowercase());
                win.control_set = Some(cs);
            } else {
                o.warnings
                    .push(format!("SYSTEM hive: {cs} (Select\\Current) is missing"));
            }
        } else {
            o.warnings
                .push("SYSTEM hive: no valid Select\\Current".into());
        }
        win.drive_letters = drive_letters(sys);
        if sys.exhausted() {
            o.warnings
                .push("SYSTEM hive: work limit reached; the listing is incomplete".into());
        }
    }
    win.virtio_drivers = VIRTIO_DRIVERS
        .iter()
        .filter(|d| win.services.iter().any(|s| s.name.eq_ignore_ascii_case(d)))
        .map(|d| d.to_string())
        .collect();
    o.services = win
        .services
        .iter()
        .filter(|s| matches!(s.start, Some("boot" | "system" | "automatic")))
        .map(|s| s.name.clone())
        .collect();
    o.windows = Some(win);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osinfo_ids_follow_the_build_for_windows_11_and_the_year_for_servers() {
        assert_eq!(
            osinfo("Windows 11 Pro", true, 10, 0, 22631).as_deref(),
            Some("win11")
        );
        assert_eq!(
            osinfo("Windows 10 Pro", true, 10, 0, 19045).as_deref(),
            Some("win10")
        );
        assert_eq!(
            osinfo("Windows 7 Ultimate", true, 6, 1, 7601).as_deref(),
            Some("win7")
        );
        assert_eq!(
            osinfo("Windows Server 2012 R2 Standard", false, 6, 3, 9600).as_deref(),
            Some("win2k12r2")
        );
        assert_eq!(
            osinfo("Windows Server 2022 Datacenter", false, 10, 0, 20348).as_deref(),
            Some("win2k22")
        );
        assert_eq!(
            osinfo("Something", false, 10, 0, 1),
            None,
            "unknown server: not guessed"
        );
        assert_eq!(
            guid(&[
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ])
            .as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
    }
}
