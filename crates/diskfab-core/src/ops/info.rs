//! `info`: image format and chain, partitions, filesystems.

use crate::open::Disk;
use diskfab_fs::FsInfo;
use diskfab_image::ImageInfo;
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
    /// One entry per partition (or the whole disk).
    pub volumes: Vec<VolumeInfo>,
}

/// One volume in [`InfoReport`].
#[derive(Debug, Serialize)]
pub struct VolumeInfo {
    /// The partition, `None` for a filesystem on the whole disk.
    pub partition: Option<Partition>,
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
            filesystem,
            error,
        });
    }
    Ok(InfoReport {
        image: disk.image.info()?,
        partition_table: disk.table.as_ref().map(|t| t.kind),
        disk_id: disk.table.as_ref().and_then(|t| t.disk_id.clone()),
        volumes,
    })
}
