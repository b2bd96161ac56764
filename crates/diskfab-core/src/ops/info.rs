//! `info`: image format and chain, partitions, filesystems.

use crate::open::Disk;
use crate::volumes::VgReport;
use diskfab_fs::FsInfo;
use diskfab_image::ImageInfo;
use diskfab_lvm::luks::LuksInfo;
use diskfab_part::{Partition, TableKind};
use diskfab_storage::Result;
use serde::Serialize;

/// Everything `diskfab info` reports.
#[derive(Debug, Serialize)]
pub struct InfoReport {
    /// The image: format, sizes, backing chain.
    pub image: ImageInfo,
    /// The partition table kind, if any.
    pub partition_table: Option<TableKind>,
    /// Disk identifier (MBR signature or GPT disk GUID).
    pub disk_id: Option<String>,
    /// One entry per partition (or the whole disk), then one per readable LVM logical volume.
    pub volumes: Vec<VolumeInfo>,
    /// LVM volume groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_groups: Vec<VgReport>,
    /// LVM labels that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lvm_warnings: Vec<String>,
}

/// One volume in [`InfoReport`].
#[derive(Debug, Serialize)]
pub struct VolumeInfo {
    /// The partition, `None` for a filesystem on the whole disk.
    pub partition: Option<Partition>,
    /// The LVM logical volume (`vg/lv`) when the volume is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_volume: Option<String>,
    /// The LUKS header found on the volume (nothing is decrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub luks: Option<LuksInfo>,
    /// The Linux swap area found on the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<crate::swap::SwapInfo>,
    /// The filesystem found there.
    pub filesystem: Option<FsInfo>,
    /// Why the filesystem could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Builds the report for an open disk.
pub fn info(disk: &Disk) -> Result<InfoReport> {
    let mut volumes = Vec::new();
    for v in &disk.volumes {
        let (filesystem, error) = match &v.fs {
            None => (None, None),
            Some((driver, _)) => match driver
                .open(v.dev.clone(), false)
                .and_then(|mut fs| fs.info())
            {
                Ok(i) => (Some(i), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        volumes.push(VolumeInfo {
            partition: v.partition.clone(),
            logical_volume: v.lv.as_ref().map(|l| format!("{}/{}", l.vg, l.name)),
            luks: v.luks.clone(),
            swap: v.swap.clone(),
            filesystem,
            error,
        });
    }
    Ok(InfoReport {
        image: disk.image.info()?,
        partition_table: disk.table.as_ref().map(|t| t.kind),
        disk_id: disk.table.as_ref().and_then(|t| t.disk_id.clone()),
        volumes,
        volume_groups: disk.volume_groups.clone(),
        lvm_warnings: disk.lvm_warnings.clone(),
    })
}
