//! The superblock (primary at 64 KiB, mirrors at 64 MiB and 256 GiB): pure parsing and the
//! choice of the valid copy with the highest generation.

use crate::chunk::{parse_chunk, Chunk};
use crate::csum::CsumType;
use crate::key::{Key, CHUNK_ITEM, KEY_SIZE};
use diskfab_storage::bytes::{array, le_u16, le_u32, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Size of a superblock copy.
pub const SB_SIZE: usize = 4096;
/// Where the superblock copies live.
pub const SB_OFFSETS: [u64; 3] = [64 << 10, 64 << 20, 256 << 30];
/// The magic at offset 0x40.
pub const MAGIC: &[u8; 8] = b"_BHRfS_M";
const SYS_ARRAY_OFF: usize = 0x32b;
const SYS_ARRAY_MAX: usize = 2048;

/// Incompatible features this reader understands.
const INCOMPAT_KNOWN: &[(u64, &str)] = &[
    (0x1, "mixed_backref"),
    (0x2, "default_subvol"),
    (0x4, "mixed_groups"),
    (0x8, "compress_lzo"),
    (0x10, "compress_zstd"),
    (0x20, "big_metadata"),
    (0x40, "extended_iref"),
    (0x80, "raid56"),
    (0x100, "skinny_metadata"),
    (0x200, "no_holes"),
    (0x400, "metadata_uuid"),
    (0x800, "raid1c34"),
    (0x10000, "simple_quota"),
];
/// Incompatible features refused by name.
const INCOMPAT_REFUSED: &[(u64, &str)] = &[
    (0x1000, "zoned"),
    (0x2000, "extent_tree_v2"),
    (0x4000, "raid_stripe_tree"),
];

/// The fields of a superblock this driver uses.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Filesystem UUID.
    pub fsid: [u8; 16],
    /// The UUID tree nodes carry (`metadata_uuid` when that feature is on, else `fsid`).
    pub meta_uuid: [u8; 16],
    /// Transaction generation.
    pub generation: u64,
    /// Logical address of the root tree.
    pub root: u64,
    /// Logical address of the chunk tree.
    pub chunk_root: u64,
    /// Logical address of the log tree (0 = none to replay).
    pub log_root: u64,
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Bytes in use.
    pub bytes_used: u64,
    /// Devices in the filesystem.
    pub num_devices: u64,
    /// Data block size.
    pub sectorsize: u32,
    /// Tree node size.
    pub nodesize: u32,
    /// Incompatible feature bits.
    pub incompat: u64,
    /// Checksum algorithm.
    pub csum: CsumType,
    /// Level of the root tree's root node.
    pub root_level: u8,
    /// Level of the chunk tree's root node.
    pub chunk_root_level: u8,
    /// This device's id.
    pub devid: u64,
    /// Volume label.
    pub label: String,
    /// Chunks of the system array (enough to read the chunk tree).
    pub sys_chunks: Vec<Chunk>,
}

impl Superblock {
    /// Names of the incompatible features set.
    pub fn feature_names(&self) -> Vec<String> {
        INCOMPAT_KNOWN
            .iter()
            .filter(|(b, _)| self.incompat & b != 0)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

/// Whether `block` (at least 0x48 bytes from a superblock position) carries the magic.
pub fn has_magic(block: &[u8]) -> bool {
    block.get(0x40..0x48) == Some(&MAGIC[..])
}

/// Parses and verifies one superblock copy read from physical offset `at`.
pub fn parse(block: &[u8], at: u64) -> Result<Superblock> {
    let b = slice(block, 0, SB_SIZE)?;
    if !has_magic(b) {
        return Err(Error::bad("no btrfs superblock magic"));
    }
    let csum = CsumType::from_raw(le_u16(b, 0xc4)?)?;
    if !csum.matches(&b[0x20..], &b[..0x20]) {
        return Err(Error::bad(format!(
            "btrfs superblock at {at}: {} checksum mismatch",
            csum.name()
        )));
    }
    let bytenr = le_u64(b, 0x30)?;
    if bytenr != at {
        return Err(Error::bad(format!(
            "btrfs superblock at {at} says it lives at {bytenr}"
        )));
    }
    let incompat = le_u64(b, 0xbc)?;
    check_features(incompat)?;
    let sectorsize = le_u32(b, 0x90)?;
    let nodesize = le_u32(b, 0x94)?;
    if !(sectorsize.is_power_of_two() && (4096..=65536).contains(&sectorsize)) {
        return Err(Error::bad(format!(
            "btrfs sector size {sectorsize} is invalid"
        )));
    }
    if !(nodesize.is_power_of_two() && (sectorsize..=65536).contains(&nodesize)) {
        return Err(Error::bad(format!("btrfs node size {nodesize} is invalid")));
    }
    let fsid = array::<16>(b, 0x20)?;
    let meta_uuid = if incompat & 0x400 != 0 {
        array::<16>(b, 0x23b)?
    } else {
        fsid
    };
    let label_raw = slice(b, 0x12b, 256)?;
    let label_len = label_raw.iter().position(|&c| c == 0).unwrap_or(256);
    let sys_len = le_u32(b, 0xa0)? as usize;
    if sys_len > SYS_ARRAY_MAX {
        return Err(Error::bad(format!(
            "btrfs sys_chunk_array of {sys_len} bytes"
        )));
    }
    Ok(Superblock {
        fsid,
        meta_uuid,
        generation: le_u64(b, 0x48)?,
        root: le_u64(b, 0x50)?,
        chunk_root: le_u64(b, 0x58)?,
        log_root: le_u64(b, 0x60)?,
        total_bytes: le_u64(b, 0x70)?,
        bytes_used: le_u64(b, 0x78)?,
        num_devices: le_u64(b, 0x88)?,
        sectorsize,
        nodesize,
        incompat,
        csum,
        root_level: u8_at(b, 0xc6)?,
        chunk_root_level: u8_at(b, 0xc7)?,
        devid: le_u64(b, 0xc9)?,
        label: String::from_utf8_lossy(&label_raw[..label_len]).into_owned(),
        sys_chunks: parse_sys_array(slice(b, SYS_ARRAY_OFF, sys_len)?)?,
    })
}

fn check_features(incompat: u64) -> Result<()> {
    for (bit, name) in INCOMPAT_REFUSED {
        if incompat & bit != 0 {
            return Err(Error::Unsupported(format!(
                "btrfs feature {name} is not supported"
            )));
        }
    }
    let known = INCOMPAT_KNOWN.iter().fold(0, |a, (b, _)| a | b);
    let unknown = incompat & !known & !INCOMPAT_REFUSED.iter().fold(0, |a, (b, _)| a | b);
    if unknown != 0 {
        return Err(Error::Unsupported(format!(
            "btrfs incompatible feature bits {unknown:#x} are not supported"
        )));
    }
    Ok(())
}

/// Parses the system chunk array: (key, chunk item) pairs.
pub fn parse_sys_array(a: &[u8]) -> Result<Vec<Chunk>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < a.len() {
        let key = Key::parse(a, off)?;
        if key.ty != CHUNK_ITEM {
            return Err(Error::bad(format!(
                "btrfs sys_chunk_array holds an item of type {}",
                key.ty
            )));
        }
        off += KEY_SIZE;
        let (chunk, len) = parse_chunk(key.offset, &a[off..])?;
        out.push(chunk);
        off += len;
    }
    if out.is_empty() {
        return Err(Error::bad("btrfs sys_chunk_array is empty"));
    }
    Ok(out)
}

/// Chooses among superblock copies (each `(offset, block)`): the valid one with the highest
/// generation whose fsid matches the primary's. The error explains why none is usable.
pub fn choose(copies: &[(u64, Vec<u8>)]) -> Result<Superblock> {
    let mut best: Option<Superblock> = None;
    let mut first_err = None;
    for (at, block) in copies {
        match parse(block, *at) {
            Ok(sb) => {
                let same_fs = best.as_ref().is_none_or(|b| b.fsid == sb.fsid);
                if same_fs && best.as_ref().is_none_or(|b| sb.generation > b.generation) {
                    best = Some(sb);
                }
            }
            Err(e) => {
                if has_magic(block) && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    match (best, first_err) {
        (Some(sb), _) => Ok(sb),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::bad("no btrfs superblock found")),
    }
}
