//! diskfab partition tables: MBR (primary + extended/logical) and GPT (protective MBR, primary
//! and backup headers, CRC32s), read and written on any [`diskfab_storage::BlockDev`].
//!
//! The parsers are our own pure functions over byte slices (no I/O, never panic, strict about
//! sizes and CRCs) so they can be fuzzed directly; the `gpt`/`mbrman` crates do their own I/O on
//! `std::io` handles and are lenient about corrupt tables, which is the wrong default here.
#![deny(missing_docs)]

mod gpt;
mod logical;
mod mbr;
mod types;
mod write;

pub use gpt::{parse_gpt_entries, parse_gpt_header, GptHeader};
pub use mbr::{parse_mbr, MbrEntry, MbrInfo};
pub use types::{guid_to_string, parse_guid, parse_size};
pub use write::{add_partition, create_table, PartSpec};

use diskfab_storage::{DevRef, Error, MemDev, Result};
use serde::Serialize;
use std::sync::Arc;

/// The kind of partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// DOS/MBR.
    Mbr,
    /// GUID partition table.
    Gpt,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// 1-based number as in /dev/sdaN (MBR logical partitions from 5).
    pub number: u32,
    /// Start in bytes.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// MBR `0x83` or GPT type GUID.
    pub type_id: String,
    /// `linux`, `esp`, `swap`, `fat32`, `extended`, ... or `unknown`.
    pub type_name: String,
    /// GPT unique GUID, or Linux-style `SIGNATURE-NN` for MBR.
    pub part_uuid: Option<String>,
    /// GPT partition name.
    pub name: Option<String>,
    /// Bootable flag.
    pub bootable: bool,
}

/// A partition table.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionTable {
    /// MBR or GPT.
    pub kind: TableKind,
    /// MBR signature `0x1234abcd` or GPT disk GUID.
    pub disk_id: Option<String>,
    /// The partitions (an MBR extended container is listed with type `extended`).
    pub partitions: Vec<Partition>,
    /// Logical sector size (512).
    pub sector_size: u32,
}

/// Reads the partition table; `None` when the disk has none (e.g. a filesystem on the whole disk).
pub fn read_table(dev: &DevRef) -> Result<Option<PartitionTable>> {
    if dev.size() < 512 {
        return Ok(None);
    }
    let mut s0 = vec![0u8; 512];
    dev.read_at(&mut s0, 0)?;
    let Ok(m) = parse_mbr(&s0) else {
        return Ok(None);
    };
    if m.entries.iter().any(|e| e.ty == 0xee) {
        let (h, parts) = gpt::read_gpt(dev)?;
        check_overlaps(&parts)?;
        return Ok(Some(PartitionTable {
            kind: TableKind::Gpt,
            disk_id: Some(guid_to_string(&h.disk_guid)),
            partitions: parts,
            sector_size: 512,
        }));
    }
    if !mbr::entries_plausible(&m)
        || (mbr::is_fs_boot_sector(&s0) && !m.entries.iter().any(|e| e.used()))
    {
        return Ok(None);
    }
    let parts = mbr::read_mbr(dev, &m)?;
    check_overlaps(&parts)?;
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        disk_id: Some(format!("{:#010x}", m.signature)),
        partitions: parts,
        sector_size: 512,
    }))
}

fn check_overlaps(parts: &[Partition]) -> Result<()> {
    let ext = parts.iter().find(|p| p.type_name == "extended");
    let mut v: Vec<&Partition> = parts
        .iter()
        .filter(|p| p.type_name != "extended" && p.number <= 4)
        .chain(ext)
        .collect();
    let logical: Vec<&Partition> = parts
        .iter()
        .filter(|p| p.number > 4 && p.type_id.starts_with("0x"))
        .collect();
    for chunk in [&mut v, &mut logical.clone()] {
        chunk.sort_by_key(|p| p.start);
        for w in chunk.windows(2) {
            if w[0].start + w[0].size > w[1].start {
                return Err(Error::bad(format!(
                    "partitions {} and {} overlap",
                    w[0].number, w[1].number
                )));
            }
        }
    }
    Ok(())
}

/// Fuzz entry point: feeds `data` to every parser and to `read_table` over an in-memory disk.
/// Must never panic. Returns the number of partitions `read_table` found.
pub fn fuzz_parse(data: &[u8]) -> usize {
    let _ = parse_mbr(data);
    for lba in [0u64, 1, (data.len() as u64 / 512).saturating_sub(1)] {
        let off = (lba * 512) as usize;
        if let Some(s) = data.get(off..) {
            if let Ok(h) = parse_gpt_header(s, lba) {
                let e = (h.entries_lba.saturating_mul(512)) as usize;
                if let Some(b) = data.get(e.min(data.len())..) {
                    let _ = parse_gpt_entries(&h, b);
                }
            }
        }
    }
    let size = (data.len() as u64).div_ceil(512) * 512;
    let mem = MemDev::new(size.max(512) as usize);
    let dev: DevRef = Arc::new(mem);
    if dev.write_at(data, 0).is_err() {
        return 0;
    }
    read_table(&dev).map_or(0, |t| t.map_or(0, |t| t.partitions.len()))
}
