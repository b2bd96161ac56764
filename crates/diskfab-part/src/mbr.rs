//! MBR: pure parsing of a sector, and reading of primary + extended/logical partitions.

use crate::types::mbr_type_name;
use crate::Partition;
use diskfab_storage::bytes::{le_u16, le_u32};
use diskfab_storage::{DevRef, Error, Result};

/// One of the four entries of an MBR or EBR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MbrEntry {
    /// Boot indicator (0x00 or 0x80).
    pub boot: u8,
    /// Partition type byte.
    pub ty: u8,
    /// First sector (relative to the table's reference point).
    pub lba_start: u32,
    /// Length in sectors.
    pub lba_len: u32,
}

impl MbrEntry {
    /// Whether the slot is used.
    pub fn used(&self) -> bool {
        self.ty != 0 && self.lba_len != 0
    }
    /// Whether this is an extended container.
    pub fn is_extended(&self) -> bool {
        matches!(self.ty, 0x05 | 0x0f | 0x85)
    }
}

/// A parsed MBR (or EBR) sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrInfo {
    /// Disk signature at offset 440.
    pub signature: u32,
    /// The four entries.
    pub entries: [MbrEntry; 4],
}

/// Parses sector 0 (or an EBR). Errors when the 0x55AA signature is missing.
pub fn parse_mbr(s: &[u8]) -> Result<MbrInfo> {
    if s.len() < 512 || s[510] != 0x55 || s[511] != 0xaa {
        return Err(Error::bad("no MBR boot signature (0x55AA)"));
    }
    let mut entries = [MbrEntry::default(); 4];
    for (i, e) in entries.iter_mut().enumerate() {
        let o = 446 + 16 * i;
        *e = MbrEntry {
            boot: s[o],
            ty: s[o + 4],
            lba_start: le_u32(s, o + 8)?,
            lba_len: le_u32(s, o + 12)?,
        };
    }
    Ok(MbrInfo {
        signature: le_u32(s, 440)?,
        entries,
    })
}

/// Whether the entries look like a partition table (boot flags valid, used entries non-empty).
pub fn entries_plausible(m: &MbrInfo) -> bool {
    m.entries
        .iter()
        .all(|e| (e.boot == 0 || e.boot == 0x80) && (!e.used() || e.lba_start != 0))
}

/// Whether sector 0 is a FAT or NTFS boot sector (a filesystem on the whole disk).
pub fn is_fs_boot_sector(s: &[u8]) -> bool {
    if s.len() < 512 {
        return false;
    }
    let jump = s[0] == 0xeb && s[2] == 0x90 || s[0] == 0xe9;
    let bps = le_u16(s, 11).unwrap_or(0);
    let bps_ok = bps.is_power_of_two() && (512..=4096).contains(&bps);
    let fat = &s[54..59] == b"FAT12"
        || &s[54..59] == b"FAT16"
        || &s[82..87] == b"FAT32"
        || &s[54..57] == b"FAT";
    let ntfs = &s[3..11] == b"NTFS    " || &s[3..11] == b"EXFAT   ";
    jump && bps_ok && (fat || ntfs || (s[13].is_power_of_two() && s[16] >= 1 && s[16] <= 2))
}

fn part(number: u32, sig: u32, e: &MbrEntry, abs_start: u64) -> Partition {
    Partition {
        number,
        start: abs_start * 512,
        size: u64::from(e.lba_len) * 512,
        type_id: format!("{:#04x}", e.ty),
        type_name: mbr_type_name(e.ty).to_string(),
        part_uuid: Some(format!("{sig:08x}-{number:02x}")),
        name: None,
        bootable: e.boot == 0x80,
    }
}

/// Most logical partitions followed in an extended chain.
const MAX_LOGICAL: usize = 128;

/// Reads primary and logical partitions given the parsed sector 0.
pub fn read_mbr(dev: &DevRef, m: &MbrInfo) -> Result<Vec<Partition>> {
    let sectors = dev.size() / 512;
    let mut out = Vec::new();
    let mut extended = None;
    for (i, e) in m.entries.iter().enumerate() {
        if !e.used() {
            continue;
        }
        let p = part(i as u32 + 1, m.signature, e, u64::from(e.lba_start));
        if u64::from(e.lba_start) + u64::from(e.lba_len) > sectors {
            return Err(Error::bad(format!(
                "MBR partition {} ends beyond the end of the disk",
                i + 1
            )));
        }
        if e.is_extended() {
            if extended.is_some() {
                return Err(Error::bad("MBR has more than one extended partition"));
            }
            extended = Some((u64::from(e.lba_start), u64::from(e.lba_len)));
        }
        out.push(p);
    }
    if let Some((ext_start, ext_len)) = extended {
        read_logical(dev, m.signature, ext_start, ext_len, &mut out)?;
    }
    Ok(out)
}

fn read_logical(
    dev: &DevRef,
    sig: u32,
    ext_start: u64,
    ext_len: u64,
    out: &mut Vec<Partition>,
) -> Result<()> {
    let ext_end = ext_start + ext_len;
    let mut ebr = ext_start;
    let mut seen = Vec::new();
    let mut sector = vec![0u8; 512];
    let mut number = 5;
    loop {
        if seen.contains(&ebr) {
            return Err(Error::bad("MBR extended partition chain loops"));
        }
        if seen.len() >= MAX_LOGICAL {
            return Err(Error::bad(format!(
                "more than {MAX_LOGICAL} logical partitions"
            )));
        }
        if ebr < ext_start || ebr >= ext_end {
            return Err(Error::bad("EBR lies outside the extended partition"));
        }
        seen.push(ebr);
        dev.read_at(&mut sector, ebr * 512)?;
        let Ok(m) = parse_mbr(&sector) else {
            // An empty extended partition has no valid EBR.
            return if seen.len() == 1 {
                Ok(())
            } else {
                Err(Error::bad("EBR without boot signature"))
            };
        };
        let l = m.entries[0];
        if l.used() {
            let start = ebr + u64::from(l.lba_start);
            if start + u64::from(l.lba_len) > ext_end || l.lba_start == 0 {
                return Err(Error::bad(format!(
                    "logical partition {number} lies outside the extended partition"
                )));
            }
            out.push(part(number, sig, &l, start));
            number += 1;
        }
        let next = m.entries[1];
        if !next.used() || !next.is_extended() {
            return Ok(());
        }
        ebr = ext_start + u64::from(next.lba_start);
    }
}
