//! The registry of filesystem drivers and probing.

use diskfab_fs::{FsDriver, MkfsDriver};
use diskfab_storage::{DevRef, Error, Result};

static EXT: diskfab_ext::ExtDriver = diskfab_ext::ExtDriver;
static FAT: diskfab_fat::FatDriver = diskfab_fat::FatDriver;
static XFS: diskfab_xfs::XfsDriver = diskfab_xfs::XfsDriver;
static BTRFS: diskfab_btrfs::BtrfsDriver = diskfab_btrfs::BtrfsDriver;
static NTFS: diskfab_ntfs::NtfsDriver = diskfab_ntfs::NtfsDriver;

/// Every filesystem driver, in probe order.
pub fn fs_drivers() -> [&'static dyn FsDriver; 5] {
    [&EXT, &FAT, &XFS, &BTRFS, &NTFS]
}

/// Finds the driver that recognises the filesystem on `dev`, with the type it reports.
pub fn probe_fs(dev: &DevRef) -> Result<Option<(&'static dyn FsDriver, String)>> {
    for d in fs_drivers() {
        if let Some(t) = d.probe(dev)? {
            return Ok(Some((d, t)));
        }
    }
    Ok(None)
}

/// The mkfs driver for a type name given by the user.
pub fn mkfs_driver(fs_type: &str) -> Result<&'static dyn MkfsDriver> {
    match fs_type {
        "ext2" | "ext3" | "ext4" => Ok(&EXT),
        "vfat" | "fat" | "fat12" | "fat16" | "fat32" => Ok(&FAT),
        other => Err(Error::Invalid(format!(
            "unknown filesystem type {other:?}: use ext2, ext3, ext4, vfat, fat12, fat16 or fat32"
        ))),
    }
}
