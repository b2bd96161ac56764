//! diskfab FAT12/16/32 driver: the `fatfs` crate behind the [`Filesystem`] trait, with long
//! names, synthetic inode numbers (FAT has no inodes) and mkfs.
#![deny(missing_docs)]

mod devio;
mod dotfix;
mod fs;
mod time;

pub use fs::FatFs;

use diskfab_fs::{Filesystem, FsDriver, MkfsDriver, MkfsOptions};
use diskfab_storage::{DevRef, Error, Result};

/// The FAT driver.
pub struct FatDriver;

/// Whether a boot sector is a FAT boot sector (never claims NTFS/exFAT).
pub fn probe_bytes(s: &[u8]) -> bool {
    if s.len() < 512 || s[510] != 0x55 || s[511] != 0xaa {
        return false;
    }
    if !matches!(s[0], 0xeb | 0xe9) {
        return false;
    }
    if &s[3..11] == b"NTFS    " || &s[3..11] == b"EXFAT   " {
        return false;
    }
    let bps = u16::from_le_bytes([s[11], s[12]]);
    let spc = s[13];
    let reserved = u16::from_le_bytes([s[14], s[15]]);
    let fats = s[16];
    let bpb_ok = bps.is_power_of_two()
        && (512..=4096).contains(&bps)
        && spc.is_power_of_two()
        && reserved >= 1
        && (1..=2).contains(&fats);
    let label = &s[54..62] == b"FAT12   "
        || &s[54..62] == b"FAT16   "
        || &s[82..90] == b"FAT32   "
        || &s[54..59] == b"FAT  ";
    bpb_ok && (label || s[21] >= 0xf0 || s[21] == 0xf8)
}

/// Fuzzing entry point for the directory repair that follows every mkdir (`dotfix`): the first
/// byte picks the FAT width (12, 16, 32), the rest is the volume; the repair looks up `/DIR`
/// and `/DIR/SUB` by their short names and rewrites their first slots in place. Must never
/// panic. Returns how many of the two lookups reached a directory.
#[doc(hidden)]
pub fn fuzz_dotfix(data: &[u8]) -> usize {
    let Some((sel, vol)) = data.split_first() else {
        return 0;
    };
    let _ = probe_bytes(vol);
    let bits = [12, 16, 32][usize::from(*sel % 3)];
    let dev: DevRef = std::sync::Arc::new(diskfab_storage::MemDev::from_vec(vol.to_vec(), true));
    let paths: [&[Vec<u8>]; 2] = [&[b"DIR".to_vec()], &[b"DIR".to_vec(), b"SUB".to_vec()]];
    paths
        .iter()
        .filter(|p| dotfix::fix_new_dir(&dev, bits, p).is_ok())
        .count()
}

impl FsDriver for FatDriver {
    fn name(&self) -> &'static str {
        "fat"
    }

    fn probe(&self, dev: &DevRef) -> Result<Option<String>> {
        if dev.size() < 512 {
            return Ok(None);
        }
        let mut s = vec![0u8; 512];
        dev.read_at(&mut s, 0)?;
        Ok(probe_bytes(&s).then(|| "vfat".to_string()))
    }

    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>> {
        Ok(Box::new(FatFs::open(dev, writable)?))
    }
}

impl MkfsDriver for FatDriver {
    fn mkfs(&self, dev: DevRef, opts: &MkfsOptions) -> Result<()> {
        let ty = match opts.fs_type.as_str() {
            "fat12" => Some(fatfs::FatType::Fat12),
            "fat16" => Some(fatfs::FatType::Fat16),
            "fat32" => Some(fatfs::FatType::Fat32),
            "vfat" | "fat" | "" => None,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown FAT type {other:?}: use vfat, fat12, fat16 or fat32"
                )))
            }
        };
        let mut o = fatfs::FormatVolumeOptions::new();
        if let Some(t) = ty {
            o = o.fat_type(t);
        }
        if let Some(l) = &opts.label {
            let up = l.to_uppercase();
            if up.len() > 11 || !up.is_ascii() {
                return Err(Error::Invalid(format!(
                    "FAT labels are at most 11 ASCII characters; {l:?} is not"
                )));
            }
            let mut b = [b' '; 11];
            b[..up.len()].copy_from_slice(up.as_bytes());
            o = o.volume_label(b);
        }
        let id = match opts.uuid {
            Some(u) => u32::from_le_bytes([u[0], u[1], u[2], u[3]]),
            None => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
            }
        };
        o = o.volume_id(id);
        let sectors = u32::try_from(dev.size() / 512)
            .map_err(|_| Error::Invalid("FAT volumes are limited to 2 TiB".into()))?;
        o = o.total_sectors(sectors);
        fs::guard(|| {
            let io = devio::DevIo::new(dev.clone(), true);
            fatfs::format_volume(io, o).map_err(|e| fs::io_err(e, "formatting FAT"))
        })?;
        dev.flush()
    }
}
