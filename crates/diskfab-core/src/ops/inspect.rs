//! `inspect`: every OS root on a disk, with fstab entries resolved to the disk's volumes.

use crate::open::Disk;
use diskfab_fs::FsInfo;
use diskfab_inspect::windows::DriveLetter;
pub use diskfab_inspect::Options;
use diskfab_inspect::{is_os_root, OsInfo};
use diskfab_part::{PartitionTable, TableKind};
use diskfab_storage::Result;
use serde::Serialize;
use std::time::Instant;

/// One fstab entry resolved to a volume of the disk.
#[derive(Debug, Clone, Serialize)]
pub struct MountPoint {
    /// Mount point.
    pub mountpoint: String,
    /// The fstab spec.
    pub spec: String,
    /// Partition number it resolves to (0 = whole disk), if found on this disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The LVM logical volume (`vg/lv`) it resolves to, if it names one found on this disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The device virt-inspector names for this entry (`/dev/sdaN`; an unresolvable `/dev/…`
    /// spec as written); absent for entries libguestfs ignores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A filesystem of one OS, as virt-inspector lists them: the root and every device the fstab
/// mounts.
#[derive(Debug, Clone, Serialize)]
pub struct OsFilesystem {
    /// Device name (`/dev/sda`, `/dev/sdaN`).
    pub device: String,
    /// Type (blkid's name), if the device is a filesystem of this disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// One operating system found on the disk.
#[derive(Debug, Clone, Serialize)]
pub struct OsEntry {
    /// Partition holding the root filesystem (0 = whole disk or an LV).
    pub root_partition: u32,
    /// The LVM logical volume (`vg/lv`) holding the root filesystem, if it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_volume: Option<String>,
    /// The root filesystem.
    pub root_filesystem: FsInfo,
    /// fstab resolved to volumes.
    pub mountpoints: Vec<MountPoint>,
    /// The root and the filesystems the fstab mounts, sorted by device.
    pub filesystems: Vec<OsFilesystem>,
    /// Everything read from the root.
    #[serde(flatten)]
    pub os: OsInfo,
}

/// The `inspect` report.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The image.
    pub image: String,
    /// Operating systems found.
    pub operating_systems: Vec<OsEntry>,
    /// Milliseconds spent.
    pub elapsed_ms: u64,
}

/// Inspects every volume holding an OS root.
pub fn inspect(disk: &Disk, opts: Options) -> Result<InspectReport> {
    let t0 = Instant::now();
    // (partition number, PARTUUID, fs info, LV) of every readable volume, for fstab resolution.
    let mut vols: Vec<Vol> = Vec::new();
    let mut found = Vec::new();
    for v in &disk.volumes {
        if let Some(s) = &v.swap {
            vols.push(swap_vol(v, s));
        }
        let Some((driver, _)) = &v.fs else { continue };
        let Ok(mut fs) = driver.open(v.dev.clone(), false) else {
            continue;
        };
        let Ok(info) = fs.info() else { continue };
        let n = v.partition.as_ref().map(|p| p.number).unwrap_or(0);
        let lv = v.lv.as_ref().map(|l| (l.vg.clone(), l.name.clone()));
        vols.push((
            n,
            v.partition.as_ref().and_then(|p| p.part_uuid.clone()),
            info.clone(),
            lv.clone(),
        ));
        if is_os_root(fs.as_mut()) {
            let os = diskfab_inspect::inspect(fs.as_mut(), opts);
            found.push(((n, lv.map(|(g, l)| format!("{g}/{l}"))), info, os));
        }
    }
    let operating_systems = found
        .into_iter()
        .map(|(n, info, mut os)| {
            if let Some(w) = os.windows.as_mut() {
                match_drive_letters(&mut w.drive_letters, disk.table.as_ref(), &vols);
            }
            (n, info, os)
        })
        .map(|((n, root_volume), info, os)| {
            let root = super::inspect_dev::root_vol(n, root_volume.as_deref(), &vols);
            let mountpoints: Vec<MountPoint> = os
                .fstab
                .iter()
                .map(|m| {
                    let (partition, volume) = match resolve(&m.spec, &vols) {
                        Some((_, _, _, Some((g, l)))) => (None, Some(format!("{g}/{l}"))),
                        Some(v) => (Some(v.0), None),
                        None => (None, None),
                    };
                    MountPoint {
                        mountpoint: m.mountpoint.clone(),
                        spec: m.spec.clone(),
                        partition,
                        volume,
                        device: super::inspect_dev::fstab_device(m, &root, &vols),
                    }
                })
                .collect();
            OsEntry {
                root_partition: n,
                root_volume,
                root_filesystem: info,
                filesystems: super::inspect_dev::filesystems(&root, &mountpoints, &vols),
                mountpoints,
                os,
            }
        })
        .collect();
    Ok(InspectReport {
        image: disk.image.path().display().to_string(),
        operating_systems,
        elapsed_ms: t0.elapsed().as_millis() as u64,
    })
}

/// A swap area as a volume fstab lines can name (`UUID=`, `LABEL=`, `/dev/mapper/VG-LV`).
fn swap_vol(v: &crate::open::Volume, s: &crate::swap::SwapInfo) -> Vol {
    let info = FsInfo {
        fs_type: "swap".into(),
        label: s.label.clone(),
        uuid: s.uuid.clone(),
        block_size: s.page_size,
        total_bytes: v.dev.size(),
        used_bytes: 0,
        needs_recovery: false,
        features: Vec::new(),
    };
    (
        v.partition.as_ref().map_or(0, |p| p.number),
        v.partition.as_ref().and_then(|p| p.part_uuid.clone()),
        info,
        v.lv.as_ref().map(|l| (l.vg.clone(), l.name.clone())),
    )
}

/// A readable volume: partition number (0 = whole disk or LV), PARTUUID, filesystem, LV.
pub(super) type Vol = (u32, Option<String>, FsInfo, Option<(String, String)>);

/// Resolves an fstab spec (UUID=, LABEL=, PARTUUID=, /dev/xxxN, /dev/VG/LV,
/// /dev/mapper/VG-LV) to a volume.
pub(super) fn resolve<'a>(spec: &str, vols: &'a [Vol]) -> Option<&'a Vol> {
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(b));
    if let Some(u) = spec.strip_prefix("UUID=") {
        return vols.iter().find(|v| eq(&v.2.uuid, u));
    }
    if let Some(l) = spec.strip_prefix("LABEL=") {
        return vols.iter().find(|v| v.2.label.as_deref() == Some(l));
    }
    if let Some(p) = spec.strip_prefix("PARTUUID=") {
        return vols.iter().find(|v| v.3.is_none() && eq(&v.1, p));
    }
    let dev = spec.strip_prefix("/dev/")?;
    let lv = match dev.strip_prefix("mapper/") {
        Some(m) => Some(crate::select::split_mapper_name(m)?),
        None => dev
            .split_once('/')
            .map(|(g, l)| (g.to_string(), l.to_string())),
    };
    // /dev/VG/LV when VG is a volume group of this disk (else e.g. /dev/disk/by-id/...-part2).
    if let Some(lv) =
        lv.filter(|(g, _)| vols.iter().any(|v| v.3.as_ref().is_some_and(|x| &x.0 == g)))
    {
        return vols.iter().find(|v| v.3.as_ref() == Some(&lv));
    }
    let digits: String = dev
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let n: u32 = digits.parse().ok()?;
    vols.iter().find(|v| v.3.is_none() && v.0 == n)
}

/// Resolves Windows drive letters to partitions of this disk: an MBR entry when the disk
/// signature (MBR offset 440) matches and a partition starts at its byte offset, a GPT entry by
/// unique partition GUID. Entries that match nothing keep only their raw identity.
fn match_drive_letters(letters: &mut [DriveLetter], table: Option<&PartitionTable>, vols: &[Vol]) {
    let Some(t) = table else { return };
    for d in letters.iter_mut() {
        let part = match (&t.kind, &d.mbr_disk_signature, d.partition_offset) {
            (TableKind::Mbr, Some(sig), Some(off)) => {
                let disk_sig = t.disk_id.as_deref().and_then(|s| s.strip_prefix("0x"));
                if disk_sig.is_some_and(|s| s.eq_ignore_ascii_case(sig)) {
                    t.partitions
                        .iter()
                        .find(|p| p.start == off && p.type_name != "extended")
                } else {
                    None
                }
            }
            (TableKind::Gpt, _, _) => d.gpt_partition_guid.as_deref().and_then(|g| {
                t.partitions.iter().find(|p| {
                    p.part_uuid
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(g))
                })
            }),
            _ => None,
        };
        if let Some(p) = part {
            d.partition = Some(p.number);
            d.fs_type = vols
                .iter()
                .find(|v| v.3.is_none() && v.0 == p.number)
                .map(|v| v.2.fs_type.clone());
        }
    }
}
