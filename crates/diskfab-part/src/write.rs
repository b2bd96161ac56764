//! Writing partition tables: fresh MBR or GPT (protective MBR, both headers, CRCs), and adding
//! partitions at 1 MiB alignment.

use crate::gpt::read_gpt;
use crate::types::{gpt_type_for, mbr_type_for, random16, random_guid};
use crate::{read_table, Partition, TableKind};
use diskfab_storage::{DevRef, Error, Result};

/// Alignment of new partitions, in sectors (1 MiB).
const ALIGN: u64 = 2048;
const ENTRIES: u32 = 128;
const ENTRY_SIZE: u32 = 128;

/// What partition to add.
#[derive(Debug, Clone, Default)]
pub struct PartSpec {
    /// Size in bytes; `None` = the rest of the free space.
    pub size: Option<u64>,
    /// Start in bytes; `None` = the first free 1 MiB-aligned place.
    pub start: Option<u64>,
    /// Type alias (`linux`, `esp`, ...), GUID, or `0xNN`.
    pub type_alias: String,
    /// GPT partition name.
    pub name: Option<String>,
    /// Bootable flag (MBR 0x80; GPT legacy BIOS bootable).
    pub bootable: bool,
    /// MBR: make a logical partition inside the extended partition (automatic when all four
    /// primary slots are used and an extended partition exists).
    pub logical: bool,
}

fn sectors(dev: &DevRef) -> Result<u64> {
    let n = dev.size() / 512;
    if n < 2 * ALIGN + 68 {
        return Err(Error::Invalid(format!(
            "disk of {} bytes is too small for a partition table",
            dev.size()
        )));
    }
    Ok(n)
}

/// Writes a fresh, empty partition table of `kind`, replacing whatever was there.
pub fn create_table(dev: &DevRef, kind: TableKind) -> Result<()> {
    let n = sectors(dev)?;
    dev.write_at(&vec![0u8; 34 * 512], 0)?;
    dev.write_at(&vec![0u8; 33 * 512], (n - 33) * 512)?;
    let mut mbr = vec![0u8; 512];
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    match kind {
        TableKind::Mbr => {
            let r = random16()?;
            let sig = u32::from_le_bytes([r[0], r[1], r[2], r[3]]).max(1);
            mbr[440..444].copy_from_slice(&sig.to_le_bytes());
            dev.write_at(&mbr, 0)
        }
        TableKind::Gpt => {
            let e = &mut mbr[446..462];
            e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
            e[4] = 0xee;
            e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
            e[8..12].copy_from_slice(&1u32.to_le_bytes());
            e[12..16].copy_from_slice(&((n - 1).min(0xffff_ffff) as u32).to_le_bytes());
            dev.write_at(&mbr, 0)?;
            let entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
            write_gpt(dev, n, &random_guid()?, &entries)
        }
    }
}

fn gpt_header(n: u64, my: u64, alt: u64, entries_lba: u64, guid: &[u8; 16], crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my.to_le_bytes());
    h[32..40].copy_from_slice(&alt.to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&(n - 34).to_le_bytes());
    h[56..72].copy_from_slice(guid);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&crc.to_le_bytes());
    let c = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// Writes both entry arrays and both headers (backup first, primary last).
fn write_gpt(dev: &DevRef, n: u64, guid: &[u8; 16], entries: &[u8]) -> Result<()> {
    let crc = crc32fast::hash(entries);
    dev.write_at(entries, (n - 33) * 512)?;
    dev.write_at(&gpt_header(n, n - 1, 1, n - 33, guid, crc), (n - 1) * 512)?;
    dev.write_at(entries, 2 * 512)?;
    dev.write_at(&gpt_header(n, 1, n - 1, 2, guid, crc), 512)
}

/// Picks [start, end) in sectors for a new partition inside [lo, hi] avoiding `used`.
fn place(spec: &PartSpec, used: &[(u64, u64)], lo: u64, hi: u64) -> Result<(u64, u64)> {
    let to_sectors = |b: u64, what: &str| -> Result<u64> {
        if !b.is_multiple_of(512) {
            return Err(Error::Invalid(format!(
                "partition {what} {b} is not a multiple of 512 bytes"
            )));
        }
        Ok(b / 512)
    };
    let free_at = |s: u64| used.iter().all(|&(a, b)| s < a || s >= b);
    let start = match spec.start {
        Some(b) => to_sectors(b, "start")?,
        None => {
            let mut s = lo.div_ceil(ALIGN) * ALIGN;
            loop {
                if s > hi {
                    return Err(Error::NoSpace(
                        "no free space left for a new partition".into(),
                    ));
                }
                match used.iter().find(|&&(a, b)| s >= a && s < b) {
                    Some(&(_, b)) => s = b.div_ceil(ALIGN) * ALIGN,
                    None => break s,
                }
            }
        }
    };
    if start < lo || start > hi || !free_at(start) {
        return Err(Error::Invalid(format!(
            "partition start sector {start} is not in free space"
        )));
    }
    let limit = used
        .iter()
        .filter(|&&(a, _)| a > start)
        .map(|&(a, _)| a)
        .min()
        .unwrap_or(hi + 1);
    let end = match spec.size {
        Some(b) => start + to_sectors(b, "size")?,
        None => limit,
    };
    if end <= start {
        return Err(Error::Invalid("partition size must be positive".into()));
    }
    if end > limit {
        return Err(Error::NoSpace(format!(
            "a partition of {} bytes at sector {start} does not fit (free up to sector {limit})",
            (end - start) * 512
        )));
    }
    Ok((start, end))
}

/// Adds a partition to the existing table; returns it as it will read back.
pub fn add_partition(dev: &DevRef, spec: &PartSpec) -> Result<Partition> {
    let table = read_table(dev)?.ok_or_else(|| {
        Error::Invalid("the disk has no partition table: create one with --gpt or --mbr".into())
    })?;
    let n = dev.size() / 512;
    let old_starts: Vec<u64> = table.partitions.iter().map(|p| p.start).collect();
    let used: Vec<(u64, u64)> = table
        .partitions
        .iter()
        .filter(|p| p.number <= 4 || table.kind == TableKind::Gpt)
        .map(|p| (p.start / 512, (p.start + p.size) / 512))
        .collect();
    match table.kind {
        TableKind::Gpt => {
            let ty = gpt_type_for(&spec.type_alias)?;
            let (h, _) = read_gpt(dev)?;
            if h.last_usable != n - 34 || h.entry_size != ENTRY_SIZE || h.num_entries != ENTRIES {
                return Err(Error::Unsupported(
                    "adding to a GPT with a non-standard layout (recreate it with --gpt)".into(),
                ));
            }
            let (start, end) = place(spec, &used, h.first_usable, h.last_usable)?;
            let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
            dev.read_at(&mut entries, h.entries_lba * 512)?;
            let slot = (0..ENTRIES as usize)
                .find(|&i| entries[i * 128..i * 128 + 16] == [0u8; 16])
                .ok_or_else(|| Error::NoSpace("all 128 GPT entries are used".into()))?;
            let e = &mut entries[slot * 128..slot * 128 + 128];
            e[..16].copy_from_slice(&ty);
            e[16..32].copy_from_slice(&random_guid()?);
            e[32..40].copy_from_slice(&start.to_le_bytes());
            e[40..48].copy_from_slice(&(end - 1).to_le_bytes());
            e[48..56].copy_from_slice(&(if spec.bootable { 4u64 } else { 0 }).to_le_bytes());
            let name: Vec<u16> = spec.name.as_deref().unwrap_or("").encode_utf16().collect();
            if name.len() > 36 {
                return Err(Error::Invalid(
                    "GPT partition names are at most 36 UTF-16 units".into(),
                ));
            }
            for (i, c) in name.iter().enumerate() {
                e[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
            }
            write_gpt(dev, n, &h.disk_guid, &entries)?;
        }
        TableKind::Mbr => {
            let ty = mbr_type_for(&spec.type_alias)?;
            if spec.name.is_some() {
                return Err(Error::Invalid(
                    "MBR partitions have no names (use GPT)".into(),
                ));
            }
            let mut s0 = vec![0u8; 512];
            dev.read_at(&mut s0, 0)?;
            let ext = table.partitions.iter().find(|p| p.type_name == "extended");
            let free_slot = (0..4).find(|&i| s0[446 + 16 * i + 4] == 0);
            if let Some(e) = ext {
                if spec.logical || free_slot.is_none() {
                    crate::logical::add_logical(dev, e, ty, spec)?;
                    let t = read_table(dev)?
                        .ok_or_else(|| Error::Failed("partition table vanished".into()))?;
                    return t
                        .partitions
                        .into_iter()
                        .rfind(|p| p.number >= 5)
                        .ok_or_else(|| Error::Failed("new logical partition not found".into()));
                }
            } else if spec.logical {
                return Err(Error::Invalid(
                    "no extended partition: add one first with type=extended".into(),
                ));
            }
            let slot = free_slot
                .ok_or_else(|| Error::Failed("all 4 primary MBR slots are used: add an extended partition or use GPT (--gpt)".into()))?;
            let (start, end) = place(spec, &used, 1, n.min(1 << 32) - 1)?;
            let e = &mut s0[446 + 16 * slot..462 + 16 * slot];
            e[0] = if spec.bootable { 0x80 } else { 0 };
            e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
            e[4] = ty;
            e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
            e[8..12].copy_from_slice(&(start as u32).to_le_bytes());
            e[12..16].copy_from_slice(&((end - start) as u32).to_le_bytes());
            dev.write_at(&s0, 0)?;
        }
    }
    let t = read_table(dev)?.ok_or_else(|| Error::Failed("partition table vanished".into()))?;
    t.partitions
        .into_iter()
        .find(|p| !old_starts.contains(&p.start))
        .ok_or_else(|| Error::Failed("new partition not found after writing".into()))
}
