//! GPT: pure parsing of headers and entry arrays (with CRC32 checks), and reading with fallback
//! to the backup header.

use crate::types::{gpt_type_name, guid_to_string};
use crate::Partition;
use diskfab_storage::bytes::{array, le_u16, le_u32, le_u64, slice};
use diskfab_storage::{DevRef, Error, Result};

/// Largest entry array accepted (bytes).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// A validated GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First usable LBA.
    pub first_usable: u64,
    /// Last usable LBA (inclusive).
    pub last_usable: u64,
    /// Disk GUID (on-disk bytes).
    pub disk_guid: [u8; 16],
    /// LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries.
    pub num_entries: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc: u32,
}

impl GptHeader {
    /// Bytes of the entry array.
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.num_entries) * u64::from(self.entry_size)
    }
}

/// Parses and validates the GPT header in `s` (one sector) expected at `lba`.
pub fn parse_gpt_header(s: &[u8], lba: u64) -> Result<GptHeader> {
    if s.len() < 512 || &s[..8] != b"EFI PART" {
        return Err(Error::bad(format!("no GPT header signature at LBA {lba}")));
    }
    let hsize = le_u32(s, 12)? as usize;
    if !(92..=s.len().min(512)).contains(&hsize) {
        return Err(Error::bad(format!("GPT header size {hsize} is invalid")));
    }
    let mut h = s[..hsize].to_vec();
    h[16..20].fill(0);
    if crc32fast::hash(&h) != le_u32(s, 16)? {
        return Err(Error::bad(format!("GPT header CRC mismatch at LBA {lba}")));
    }
    let g = GptHeader {
        my_lba: le_u64(s, 24)?,
        alternate_lba: le_u64(s, 32)?,
        first_usable: le_u64(s, 40)?,
        last_usable: le_u64(s, 48)?,
        disk_guid: array(s, 56)?,
        entries_lba: le_u64(s, 72)?,
        num_entries: le_u32(s, 80)?,
        entry_size: le_u32(s, 84)?,
        entries_crc: le_u32(s, 88)?,
    };
    if g.my_lba != lba {
        return Err(Error::bad(format!(
            "GPT header at LBA {lba} claims to be at LBA {}",
            g.my_lba
        )));
    }
    if g.entry_size < 128 || !g.entry_size.is_power_of_two() || g.entries_bytes() > MAX_ENTRY_BYTES
    {
        return Err(Error::bad(format!(
            "GPT entry array ({} × {} bytes) is invalid",
            g.num_entries, g.entry_size
        )));
    }
    if g.first_usable > g.last_usable {
        return Err(Error::bad("GPT usable range is empty or inverted"));
    }
    Ok(g)
}

/// Parses the entry array (checking its CRC); returns the used entries as partitions.
pub fn parse_gpt_entries(h: &GptHeader, bytes: &[u8]) -> Result<Vec<Partition>> {
    let n = h.entries_bytes() as usize;
    if bytes.len() < n {
        return Err(Error::bad("GPT entry array is truncated"));
    }
    if crc32fast::hash(&bytes[..n]) != h.entries_crc {
        return Err(Error::bad("GPT partition entries CRC mismatch"));
    }
    let mut out: Vec<Partition> = Vec::new();
    for i in 0..h.num_entries as usize {
        let e = slice(bytes, i * h.entry_size as usize, 128)?;
        let ty: [u8; 16] = array(e, 0)?;
        if ty == [0u8; 16] {
            continue;
        }
        let uid: [u8; 16] = array(e, 16)?;
        let (first, last) = (le_u64(e, 32)?, le_u64(e, 40)?);
        if first > last || first < h.first_usable || last > h.last_usable {
            return Err(Error::bad(format!(
                "GPT partition {} (LBA {first}..{last}) lies outside the usable area",
                i + 1
            )));
        }
        let name: Vec<u16> = (56..128)
            .step_by(2)
            .map(|o| le_u16(e, o))
            .collect::<Result<Vec<u16>>>()?
            .into_iter()
            .take_while(|&c| c != 0)
            .collect();
        let name = String::from_utf16_lossy(&name);
        let type_id = guid_to_string(&ty);
        out.push(Partition {
            number: i as u32 + 1,
            start: first * 512,
            size: (last - first + 1) * 512,
            type_name: gpt_type_name(&type_id).to_string(),
            type_id,
            part_uuid: Some(guid_to_string(&uid)),
            name: (!name.is_empty()).then_some(name),
            bootable: le_u64(e, 48)? & 4 != 0,
        });
    }
    Ok(out)
}

fn try_header(dev: &DevRef, lba: u64) -> Result<(GptHeader, Vec<Partition>)> {
    let sectors = dev.size() / 512;
    if lba >= sectors {
        return Err(Error::bad(format!(
            "GPT header LBA {lba} is beyond the disk"
        )));
    }
    let mut s = vec![0u8; 512];
    dev.read_at(&mut s, lba * 512)?;
    let h = parse_gpt_header(&s, lba)?;
    if h.last_usable >= sectors {
        return Err(Error::bad(
            "GPT usable area extends beyond the end of the disk",
        ));
    }
    let n = h.entries_bytes();
    if h.entries_lba.saturating_mul(512).saturating_add(n) > dev.size() {
        return Err(Error::bad(
            "GPT entry array lies beyond the end of the disk",
        ));
    }
    let mut e = vec![0u8; n as usize];
    dev.read_at(&mut e, h.entries_lba * 512)?;
    let parts = parse_gpt_entries(&h, &e)?;
    Ok((h, parts))
}

/// Reads the GPT: the primary header at LBA 1, else the backup at the last LBA.
pub fn read_gpt(dev: &DevRef) -> Result<(GptHeader, Vec<Partition>)> {
    match try_header(dev, 1) {
        Ok(v) => Ok(v),
        Err(primary) => {
            let last = (dev.size() / 512).saturating_sub(1);
            try_header(dev, last).map_err(|backup| {
                Error::bad(format!(
                    "GPT is corrupt: primary: {primary}; backup: {backup}"
                ))
            })
        }
    }
}
