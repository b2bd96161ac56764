//! What the customizations need to know about the guest: distribution family, init system,
//! network configuration style and default password hashing — read from its own files.

use crate::crypt::Crypto;
use crate::staged::{Kind, Staged};
use diskfab_storage::Result;
use serde::Serialize;

/// Distribution family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Debian, Ubuntu and derivatives.
    Debian,
    /// Fedora, RHEL, CentOS, Rocky, Alma.
    RedHat,
    /// openSUSE, SLES.
    Suse,
    /// Arch Linux.
    Arch,
    /// Alpine.
    Alpine,
    /// Anything else.
    Other,
}

/// How the guest configures its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetStyle {
    /// /etc/netplan/*.yaml (Ubuntu).
    Netplan,
    /// /etc/network/interfaces (Debian's ifupdown, Alpine).
    Ifupdown,
    /// NetworkManager keyfiles in /etc/NetworkManager/system-connections.
    NetworkManager,
    /// systemd-networkd .network files.
    Networkd,
    /// /etc/sysconfig/network-scripts/ifcfg-* (older RHEL/CentOS).
    Ifcfg,
}

impl std::str::FromStr for NetStyle {
    type Err = diskfab_storage::Error;
    fn from_str(s: &str) -> Result<NetStyle> {
        Ok(match s {
            "netplan" => NetStyle::Netplan,
            "ifupdown" => NetStyle::Ifupdown,
            "networkmanager" | "network-manager" | "nm" => NetStyle::NetworkManager,
            "networkd" | "systemd-networkd" => NetStyle::Networkd,
            "ifcfg" => NetStyle::Ifcfg,
            _ => {
                return Err(diskfab_storage::Error::Invalid(format!(
                    "network format {s:?}: use netplan, ifupdown, networkmanager, networkd or ifcfg"
                )))
            }
        })
    }
}

/// Facts about the guest.
#[derive(Debug, Clone, Serialize)]
pub struct Guest {
    /// os-release ID.
    pub id: String,
    /// Family.
    pub family: Family,
    /// systemd is the init system.
    pub systemd: bool,
    /// Network configuration style.
    pub net: NetStyle,
    /// The hashing the guest's own tools use.
    pub crypto: Crypto,
}

fn os_release(st: &mut Staged) -> Result<(String, String)> {
    let text = match st.read_text("/etc/os-release")? {
        Some(t) => Some(t),
        None => st.read_text("/usr/lib/os-release")?,
    }
    .unwrap_or_default();
    Ok(os_release_ids(&text))
}

/// `ID` and `ID_LIKE` of os-release text, lower case, quotes removed (empty when absent).
fn os_release_ids(text: &str) -> (String, String) {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    (get("ID"), get("ID_LIKE"))
}

/// Fuzzing entry point: os-release text as customization reads it to pick the guest's family.
/// Must never panic. Returns 1 when an `ID` was found.
#[doc(hidden)]
pub fn fuzz_os_release(data: &[u8]) -> usize {
    usize::from(!os_release_ids(&String::from_utf8_lossy(data)).0.is_empty())
}

fn exists(st: &mut Staged, p: &str) -> Result<bool> {
    Ok(st.lstat(p)?.is_some())
}

fn is_dir(st: &mut Staged, p: &str) -> Result<bool> {
    let p = st.canon(p, true)?;
    Ok(matches!(st.lstat(&p)?.map(|s| s.kind), Some(Kind::Dir)))
}

/// Reads the guest's facts.
pub fn detect(st: &mut Staged) -> Result<Guest> {
    let (id, like) = os_release(st)?;
    let is = |x: &str| id == x || like.split_whitespace().any(|l| l == x);
    let family = if is("debian") || is("ubuntu") {
        Family::Debian
    } else if is("fedora") || is("rhel") || is("centos") {
        Family::RedHat
    } else if is("suse") || id.starts_with("opensuse") || is("sles") {
        Family::Suse
    } else if is("arch") {
        Family::Arch
    } else if is("alpine") {
        Family::Alpine
    } else {
        Family::Other
    };
    let mut systemd = false;
    for p in ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"] {
        systemd |= exists(st, p)?;
    }
    let net = net_style(st, family, systemd)?;
    let crypto = default_crypto(st)?;
    Ok(Guest {
        id,
        family,
        systemd,
        net,
        crypto,
    })
}

fn net_style(st: &mut Staged, family: Family, systemd: bool) -> Result<NetStyle> {
    if is_dir(st, "/etc/netplan")? && !st.list("/etc/netplan")?.is_empty()
        || exists(st, "/usr/sbin/netplan")?
    {
        return Ok(NetStyle::Netplan);
    }
    if exists(st, "/usr/sbin/NetworkManager")? {
        return Ok(NetStyle::NetworkManager);
    }
    if exists(st, "/etc/network/interfaces")? || exists(st, "/sbin/ifup")? {
        return Ok(NetStyle::Ifupdown);
    }
    if is_dir(st, "/etc/sysconfig/network-scripts")? {
        return Ok(NetStyle::Ifcfg);
    }
    Ok(match family {
        Family::Debian | Family::Alpine if !systemd => NetStyle::Ifupdown,
        Family::Debian | Family::Alpine => {
            if is_dir(st, "/etc/systemd/network")? {
                NetStyle::Networkd
            } else {
                NetStyle::Ifupdown
            }
        }
        Family::RedHat => NetStyle::NetworkManager,
        _ => NetStyle::Networkd,
    })
}

/// pam_unix's hashing option in /etc/pam.d/{common-password,system-auth}, else login.defs'
/// ENCRYPT_METHOD, else SHA-512.
fn default_crypto(st: &mut Staged) -> Result<Crypto> {
    for p in [
        "/etc/pam.d/common-password",
        "/etc/pam.d/system-auth",
        "/etc/pam.d/password-auth",
    ] {
        let Some(t) = st.read_text(p)? else { continue };
        for l in t.lines().map(str::trim) {
            if l.starts_with('#') || !l.contains("pam_unix.so") || !l.starts_with("password") {
                continue;
            }
            for w in l.split_whitespace() {
                if let Ok(c) = w.parse::<Crypto>() {
                    return Ok(c);
                }
            }
        }
    }
    if let Some(t) = st.read_text("/etc/login.defs")? {
        for l in t.lines().map(str::trim) {
            if let Some(v) = l.strip_prefix("ENCRYPT_METHOD") {
                if let Ok(c) = v.trim().parse::<Crypto>() {
                    return Ok(c);
                }
            }
        }
    }
    Ok(Crypto::Sha512)
}
