//! The NTFS boot sector (pure parser).

use diskfab_storage::bytes::{le_u16, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Largest cluster accepted (Windows formats up to 2 MiB).
pub const MAX_CLUSTER: u32 = 2 << 20;
/// Largest MFT or index record accepted.
pub const MAX_RECORD: u32 = 64 << 10;

/// The geometry the boot sector declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// Bytes per sector.
    pub sector_size: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Volume size in sectors.
    pub total_sectors: u64,
    /// First cluster of $MFT.
    pub mft_lcn: u64,
    /// Bytes per MFT record.
    pub record_size: u32,
    /// Bytes per index record.
    pub index_size: u32,
    /// Volume serial number.
    pub serial: u64,
}

impl Boot {
    /// The volume size in bytes.
    pub fn volume_bytes(&self) -> u64 {
        self.total_sectors
            .saturating_mul(u64::from(self.sector_size))
    }
}

/// Whether `s` starts like an NTFS boot sector (OEM id only).
pub fn looks_like_ntfs(s: &[u8]) -> bool {
    s.get(3..11) == Some(b"NTFS    ")
}

/// A record size from the signed "clusters per record" byte: positive = clusters,
/// negative = 2^-n bytes.
fn record_bytes(v: u8, cluster: u32) -> Result<u32> {
    let n = v as i8;
    let bytes = if n > 0 {
        u64::from(n as u8) * u64::from(cluster)
    } else {
        let sh = u32::from(n.unsigned_abs());
        if sh >= 32 {
            return Err(Error::bad(
                "NTFS boot sector: record size shift out of range",
            ));
        }
        1u64 << sh
    };
    if !(256..=u64::from(MAX_RECORD)).contains(&bytes) || !bytes.is_power_of_two() {
        return Err(Error::bad(format!(
            "NTFS boot sector: record size {bytes} is not a power of two in 256..=65536"
        )));
    }
    Ok(bytes as u32)
}

/// Parses and validates a boot sector (at least 512 bytes).
pub fn parse(s: &[u8]) -> Result<Boot> {
    let s = slice(s, 0, 512)?;
    if !looks_like_ntfs(s) {
        return Err(Error::bad("not an NTFS boot sector"));
    }
    if le_u16(s, 510)? != 0xAA55 {
        return Err(Error::bad("NTFS boot sector: missing 0x55AA signature"));
    }
    let sector_size = u32::from(le_u16(s, 0x0B)?);
    if !(256..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(Error::bad(format!(
            "NTFS boot sector: {sector_size} bytes per sector"
        )));
    }
    let spc = u8_at(s, 0x0D)?;
    let spc = if spc <= 0x80 {
        u32::from(spc)
    } else {
        let sh = 256 - u32::from(spc);
        if sh > 20 {
            return Err(Error::bad("NTFS boot sector: cluster shift out of range"));
        }
        1 << sh
    };
    let cluster_size = sector_size.saturating_mul(spc);
    if spc == 0 || !spc.is_power_of_two() || cluster_size > MAX_CLUSTER {
        return Err(Error::bad(format!(
            "NTFS boot sector: {spc} sectors per cluster"
        )));
    }
    let b = Boot {
        sector_size,
        cluster_size,
        total_sectors: le_u64(s, 0x28)?,
        mft_lcn: le_u64(s, 0x30)?,
        record_size: record_bytes(u8_at(s, 0x40)?, cluster_size)?,
        index_size: record_bytes(u8_at(s, 0x44)?, cluster_size)?,
        serial: le_u64(s, 0x48)?,
    };
    if b.record_size < sector_size.min(512) {
        return Err(Error::bad(
            "NTFS boot sector: MFT record smaller than a sector",
        ));
    }
    let clusters = b.volume_bytes() / u64::from(cluster_size);
    if b.mft_lcn == 0 || b.mft_lcn >= clusters {
        return Err(Error::bad(format!(
            "NTFS boot sector: $MFT at cluster {} outside the volume of {clusters} clusters",
            b.mft_lcn
        )));
    }
    Ok(b)
}
