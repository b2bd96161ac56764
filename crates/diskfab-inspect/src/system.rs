//! Architecture, users, kernels and their hypervisor drivers, services, security settings.

use crate::read;
use diskfab_fs::Filesystem;
use diskfab_storage::bytes::{be_u16, le_u16};
use serde::Serialize;

/// Architecture of an ELF binary from its header.
pub fn elf_arch(h: &[u8]) -> Option<&'static str> {
    if h.len() < 20 || &h[..4] != b"\x7fELF" {
        return None;
    }
    let le = h[5] == 1;
    let m = if le { le_u16(h, 18) } else { be_u16(h, 18) }.ok()?;
    Some(match (m, h[4]) {
        (0x3e, _) => "x86_64",
        (0x03, _) => "i386",
        (0xb7, _) => "aarch64",
        (0x28, _) => "armv7l",
        (0xf3, 2) => "riscv64",
        (0x15, _) if le => "ppc64le",
        (0x15, _) => "ppc64",
        (0x16, _) => "s390x",
        _ => return None,
    })
}

/// The guest's architecture, from the ELF header of a system binary.
pub fn arch(fs: &mut dyn Filesystem) -> Option<String> {
    // libguestfs' binaries first, in its order.
    for p in [
        "/bin/bash",
        "/bin/ls",
        "/bin/echo",
        "/bin/rm",
        "/bin/sh",
        "/usr/bin/ls",
        "/sbin/init",
        "/usr/lib/systemd/systemd",
    ] {
        if let Ok(Some(b)) = read::file(fs, p, 64 << 20) {
            if let Some(a) = elf_arch(&b[..b.len().min(64)]) {
                return Some(a.to_string());
            }
        }
    }
    None
}

/// A user account (the password hash itself is never reported).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// `set`, `locked`, `empty` or `unknown` (no shadow entry).
    pub password: &'static str,
    /// Has administrator rights: member (also by primary group) of sudo, wheel, admin or of a
    /// group sudoers names, or named by a sudoers rule.
    pub admin: bool,
}

/// Users from /etc/passwd with password state from /etc/shadow and admin groups from /etc/group.
pub fn users(passwd: &str, shadow: &str, group: &str) -> Vec<User> {
    let admins: Vec<&str> = group
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let members = f.nth(2)?;
            ["sudo", "wheel", "admin"]
                .contains(&name)
                .then_some(members)
        })
        .flat_map(|m| m.split(','))
        .collect();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            let hash = shadow.lines().find_map(|s| {
                s.split_once(':')
                    .filter(|(n, _)| *n == f[0])
                    .map(|(_, r)| r.split(':').next().unwrap_or(""))
            });
            let password = match hash {
                None => "unknown",
                Some("") => "empty",
                Some(h) if h.starts_with('!') || h.starts_with('*') => "locked",
                Some(_) => "set",
            };
            Some(User {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
                password,
                admin: admins.contains(&f[0]),
            })
        })
        .collect()
}

/// Drivers that matter when moving a guest between hypervisors.
pub const HYPERVISOR_DRIVERS: &[&str] = &[
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "virtio_pci",
    "nvme",
    "ahci",
    "e1000",
    "e1000e",
    "vmxnet3",
    "vmw_pvscsi",
    "hv_storvsc",
    "hv_netvsc",
    "hv_vmbus",
    "xen_blkfront",
    "xen_netfront",
];

/// An installed kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    /// Version (from /lib/modules or the vmlinuz name).
    pub version: String,
    /// Kernel image path, if present in /boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Hypervisor drivers available: built in or as modules.
    pub drivers: Vec<String>,
    /// The initramfs of this kernel and the drivers it carries (what the guest can boot with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<crate::initramfs::Initramfs>,
}

/// Kernels from /boot and the module trees, with the hypervisor drivers each one has.
pub fn kernels(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Vec<Kernel> {
    let mut versions: Vec<String> = read::list(fs, "/lib/modules");
    for f in read::list(fs, "/boot") {
        if let Some(v) = f.strip_prefix("vmlinuz-") {
            if !versions.iter().any(|x| x == v) {
                versions.push(v.to_string());
            }
        }
    }
    versions.sort();
    versions
        .into_iter()
        .map(|v| {
            let mut names = String::new();
            for f in ["modules.builtin", "modules.dep"] {
                if let Some(t) = read::text(fs, &format!("/lib/modules/{v}/{f}"), warnings) {
                    names.push_str(&t);
                    names.push('\n');
                }
            }
            let drivers = HYPERVISOR_DRIVERS
                .iter()
                .filter(|d| {
                    let dash = d.replace('_', "-");
                    names.lines().any(|l| {
                        let file = l
                            .split(':')
                            .next()
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or("");
                        let stem = file.split(".ko").next().unwrap_or("");
                        stem == **d || stem == dash
                    })
                })
                .map(|d| d.to_string())
                .collect();
            let image = read::exists(fs, &format!("/boot/vmlinuz-{v}"))
                .then(|| format!("/boot/vmlinuz-{v}"));
            let initramfs = [
                format!("/boot/initrd.img-{v}"),
                format!("/boot/initramfs-{v}.img"),
                format!("/boot/initrd-{v}"),
            ]
            .into_iter()
            .find(|p| read::exists(fs, p))
            .and_then(|p| {
                match read::file(fs, &p, crate::initramfs::MAX_INITRAMFS_BYTES) {
                    Ok(Some(b)) => Some(crate::initramfs::inspect(&p, &b, warnings)),
                    Ok(None) => None,
                    Err(w) => {
                        warnings.push(w);
                        None
                    }
                }
            });
            Kernel {
                version: v,
                image,
                drivers,
                initramfs,
            }
        })
        .collect()
}

/// Units enabled through systemd `*.wants` links under /etc/systemd/system.
pub fn enabled_services(fs: &mut dyn Filesystem) -> Vec<String> {
    let mut out = Vec::new();
    for d in read::list(fs, "/etc/systemd/system") {
        if d.ends_with(".wants") {
            out.extend(read::list(fs, &format!("/etc/systemd/system/{d}")));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Timezone from /etc/timezone or the /etc/localtime link.
pub fn timezone(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Option<String> {
    if let Some(t) = read::text(fs, "/etc/timezone", warnings) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    read::link(fs, "/etc/localtime")
        .and_then(|l| l.split_once("zoneinfo/").map(|(_, z)| z.to_string()))
}
