//! Device names as virt-inspector prints them: the inspected image is libguestfs' first disk,
//! `/dev/sda`, its partitions `/dev/sdaN` (N as the kernel numbers them: GPT entry index + 1, MBR
//! logical partitions from 5). fstab entries are resolved the way libguestfs resolves them:
//! `UUID=` and `LABEL=` to the volume carrying them (ignored when none does), `/dev/root` to the
//! root, `/dev/[hsv]d<letter>[N]` and `/dev/xvd<letter>[N]` of the first disk to `/dev/sdaN` when
//! that partition exists, any other `/dev/…` kept as written; `PARTUUID=`, pseudo filesystems,
//! floppies, CD-ROMs and mounts under /dev, /media, /proc, /selinux and /sys are ignored.

use super::inspect::{MountPoint, OsFilesystem, Vol};
use diskfab_inspect::Mount;

/// virt-inspector's name for partition `n` of the image (0 = the whole disk).
pub fn dev(n: u32) -> String {
    if n == 0 {
        "/dev/sda".into()
    } else {
        format!("/dev/sda{n}")
    }
}

/// virt-inspector's name for a volume: `/dev/VG/LV` for a logical volume, else [`dev`].
pub fn vol_dev(v: &Vol) -> String {
    match &v.3 {
        Some((g, l)) => format!("/dev/{g}/{l}"),
        None => dev(v.0),
    }
}

/// The device name of an OS root: partition `n`, or the LV `vg/lv` when it is in one.
pub fn root_vol(n: u32, root_volume: Option<&str>, _vols: &[Vol]) -> String {
    match root_volume {
        Some(v) => format!("/dev/{v}"),
        None => dev(n),
    }
}

/// `/dev/hda1`, `/dev/vda1` → `/dev/sda1` (virt-inspector's canonical names); others unchanged.
fn canonical(d: &str) -> String {
    let b = d.as_bytes();
    if d.starts_with("/dev/")
        && b.len() >= 8
        && (b[5] == b'h' || b[5] == b'v')
        && b[6] == b'd'
        && b[7].is_ascii_alphabetic()
        && (b.len() == 8 || b[8].is_ascii_digit())
    {
        format!("/dev/s{}", &d[6..])
    } else {
        d.to_string()
    }
}

/// `///usr//local/` → `/usr/local`.
fn canonical_path(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if p.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        parts.join("/")
    }
}

fn ignored_mountpoint(mp: &str) -> bool {
    ["/dev", "/proc", "/selinux", "/sys"]
        .iter()
        .any(|d| mp == *d || mp.starts_with(&format!("{d}/")))
        || mp.starts_with("/media/")
}

fn ignored_spec(spec: &str) -> bool {
    let numbered = |p: &str| {
        spec.strip_prefix(p)
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    numbered("/dev/fd")
        || numbered("/dev/cd")
        || spec == "/dev/floppy"
        || spec == "/dev/cdrom"
        || spec.starts_with("/dev/iso9660/")
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"').trim_matches('\'')
}

/// A guest block device name of the first disk (`/dev/sdb2` is another disk: kept as written).
fn xdev(spec: &str, vols: &[Vol]) -> String {
    let name = spec.strip_prefix("/dev/").unwrap_or(spec);
    let rest = ["xvd", "hd", "sd", "vd"]
        .iter()
        .find_map(|p| name.strip_prefix(p));
    let Some(rest) = rest else {
        return spec.to_string();
    };
    let letters: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
    let part = &rest[letters.len()..];
    if letters != "a" || !part.chars().all(|c| c.is_ascii_digit()) {
        return spec.to_string();
    }
    match part.parse::<u32>() {
        Ok(n) if n > 0 && vols.iter().any(|v| v.3.is_none() && v.0 == n) => dev(n),
        _ => spec.to_string(),
    }
}

/// The device virt-inspector names for fstab entry `m` of the OS whose root is the device
/// `root`; `None` for entries it ignores.
pub fn fstab_device(m: &Mount, root: &str, vols: &[Vol]) -> Option<String> {
    let spec = m.spec.as_str();
    let mp = canonical_path(&m.mountpoint);
    if ignored_spec(spec) || ignored_mountpoint(&mp) {
        return None;
    }
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(b));
    if let Some(u) = spec.strip_prefix("UUID=") {
        let u = unquote(u);
        return vols.iter().find(|v| eq(&v.2.uuid, u)).map(vol_dev);
    }
    if let Some(l) = spec.strip_prefix("LABEL=") {
        let l = unquote(l);
        return vols
            .iter()
            .find(|v| v.2.label.as_deref() == Some(l))
            .map(vol_dev);
    }
    if spec == "/dev/root" {
        return Some(root.to_string());
    }
    // /dev/mapper/VG-LV and /dev/VG/LV of a volume group on this disk: /dev/VG/LV.
    if let Some(v) = super::inspect::resolve(spec, vols).filter(|v| v.3.is_some()) {
        return Some(vol_dev(v));
    }
    spec.starts_with("/dev/")
        .then(|| canonical(&xdev(spec, vols)))
}

/// (mountpoint, device) pairs as virt-inspector prints them: the fstab entries libguestfs keeps
/// (or `/` on the root when there are none), shortest mountpoint first, then by name. Entries
/// whose mountpoint is not a path (swap's `none`/`swap`) stay out, as in libguestfs; their
/// devices are still listed by [`filesystems`].
pub fn mountpoints(root: &str, mps: &[MountPoint]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = mps
        .iter()
        .filter(|m| m.mountpoint.starts_with('/'))
        .filter_map(|m| {
            m.device
                .as_ref()
                .map(|d| (canonical_path(&m.mountpoint), d.clone()))
        })
        .collect();
    if v.is_empty() {
        v.push(("/".into(), root.to_string()));
    }
    v.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The root filesystem and every device the fstab mounts, sorted by device name.
pub fn filesystems(root: &str, mps: &[MountPoint], vols: &[Vol]) -> Vec<OsFilesystem> {
    let mut devs: Vec<String> = mps.iter().filter_map(|m| m.device.clone()).collect();
    devs.push(root.to_string());
    devs.sort();
    devs.dedup();
    devs.into_iter()
        .map(|d| {
            let v = vols.iter().find(|v| vol_dev(v) == d);
            OsFilesystem {
                fs_type: v.map(|v| v.2.fs_type.clone()),
                label: v.and_then(|v| v.2.label.clone()).filter(|l| !l.is_empty()),
                uuid: v.and_then(|v| v.2.uuid.clone()).filter(|u| !u.is_empty()),
                device: d,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_device_names_map_to_the_first_disk_as_libguestfs_does() {
        assert_eq!(canonical("/dev/vda1"), "/dev/sda1");
        assert_eq!(canonical("/dev/hdb"), "/dev/sdb");
        assert_eq!(canonical("/dev/nvme0n1p1"), "/dev/nvme0n1p1");
        assert_eq!(canonical_path("///usr//local/"), "/usr/local");
        assert!(ignored_spec("/dev/fd0") && ignored_spec("/dev/cdrom"));
        assert!(!ignored_spec("/dev/fdisk"));
        assert!(ignored_mountpoint("/proc") && ignored_mountpoint("/media/usb"));
        assert!(!ignored_mountpoint("/media") && !ignored_mountpoint("/devices"));
    }
}
