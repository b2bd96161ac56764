//! Microsoft VHDX (Hyper-V): pure parsing and building of the on-disk structures (no I/O).
//! Every field is validated before anything trusts it.
//!
//! Layout facts (VHDX format specification 1.0, all little-endian): the first 1 MiB holds the
//! file type identifier (`vhdxfile`) at 0, two 4 KiB headers at 64 KiB and 128 KiB (signature
//! `head`, CRC-32C, sequence number: the valid one with the larger number is current) and two
//! copies of the region table at 192 KiB and 256 KiB (signature `regi`, CRC-32C over 64 KiB).
//! The region table locates the block allocation table (BAT) and the metadata region; the
//! metadata region's table (`metadata`) locates the file parameters (block size, has-parent),
//! virtual disk size, logical and physical sector sizes and page 83 id. The BAT interleaves
//! `chunk_ratio` payload-block entries with one sector-bitmap entry; each entry is a 3-bit
//! state and a file offset in MiB (bits 20..64). Structures are 1 MiB aligned.

use diskfab_storage::bytes::{array, le_u16, le_u32, le_u64};
use diskfab_storage::{Error, Result};

/// The file type identifier at offset 0.
pub const FILE_SIGNATURE: [u8; 8] = *b"vhdxfile";
const HEAD_SIG: &[u8; 4] = b"head";
const REGI_SIG: &[u8; 4] = b"regi";
const META_SIG: &[u8; 8] = b"metadata";
/// Offsets of the two headers.
pub const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
/// Offsets of the two region tables.
pub const REGION_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
/// Size of a region table and of the metadata table.
pub const TABLE_BYTES: usize = 64 << 10;
/// Alignment of regions and payload blocks.
pub const MIB: u64 = 1 << 20;
/// Largest virtual size (64 TiB, the format's limit).
pub const MAX_SIZE: u64 = 64 << 40;
/// Block size diskfab creates by default (32 MiB, as Hyper-V does).
pub const DEFAULT_BLOCK: u32 = 32 << 20;

/// GUID of the BAT region (2DC27766-F623-4200-9D64-115E9BFD4A08, mixed-endian bytes).
pub const BAT_GUID: [u8; 16] = guid(0x2DC2_7766, 0xF623, 0x4200, 0x9D64_115E_9BFD_4A08);
/// GUID of the metadata region (8B7CA206-4790-4B9A-B8FE-575F050F886E).
pub const METADATA_GUID: [u8; 16] = guid(0x8B7C_A206, 0x4790, 0x4B9A, 0xB8FE_575F_050F_886E);
const FILE_PARAMS: [u8; 16] = guid(0xCAA1_6737, 0xFA36, 0x4D43, 0xB3B6_33F0_AA44_E76B);
const DISK_SIZE: [u8; 16] = guid(0x2FA5_4224, 0xCD1B, 0x4876, 0xB211_5DBE_D83B_F4B8);
const PAGE83: [u8; 16] = guid(0xBECA_12AB, 0xB2E6, 0x4523, 0x93EF_C309_E000_C746);
const LOGICAL_SECTOR: [u8; 16] = guid(0x8141_BF1D, 0xA96F, 0x4709, 0xBA47_F233_A8FA_AB5F);
const PHYSICAL_SECTOR: [u8; 16] = guid(0xCDA3_48C7, 0x445D, 0x4471, 0x9CC9_E988_5251_C556);
const PARENT_LOCATOR: [u8; 16] = guid(0xA8D3_5F2D, 0xB30B, 0x454D, 0xABF7_D3D8_4834_AB0C);

/// BAT state: payload block not present (reads as zeroes without a parent).
pub const PAYLOAD_NOT_PRESENT: u64 = 0;
/// BAT state: payload block fully present at its offset.
pub const PAYLOAD_FULLY_PRESENT: u64 = 6;
/// BAT state: payload block partially present (differencing disks only).
pub const PAYLOAD_PARTIALLY_PRESENT: u64 = 7;
/// BAT state: sector bitmap block present.
pub const SB_PRESENT: u64 = 6;

/// Builds the on-disk bytes of a GUID written as `d1-d2-d3-d4` (first three fields
/// little-endian, the last eight bytes as written).
const fn guid(d1: u32, d2: u16, d3: u16, d4: u64) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    let d = d4.to_be_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// CRC-32C of `b` with its four checksum bytes at `at` taken as zero.
fn crc_with_hole(b: &[u8], at: usize) -> u32 {
    let mut v = b.to_vec();
    v[at..at + 4].fill(0);
    crc32c(&v)
}

/// A validated VHDX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdxHeader {
    /// Sequence number: the valid header with the larger one is current.
    pub sequence: u64,
    /// Changed on every open for writing.
    pub file_write_guid: [u8; 16],
    /// Changed when guest-visible data first changes after an open.
    pub data_write_guid: [u8; 16],
    /// Non-zero when the log holds entries that must be replayed.
    pub log_guid: [u8; 16],
    /// Log length (multiple of 1 MiB).
    pub log_length: u32,
    /// Log offset (multiple of 1 MiB).
    pub log_offset: u64,
}

/// Parses and validates a 4 KiB header. Never panics.
pub fn parse_header(b: &[u8]) -> Result<VhdxHeader> {
    if b.len() < 4096 || &b[..4] != HEAD_SIG {
        return Err(Error::bad("VHDX header has no 'head' signature"));
    }
    let b = &b[..4096];
    let (stored, want) = (le_u32(b, 4)?, crc_with_hole(b, 4));
    if stored != want {
        return Err(Error::bad(format!(
            "VHDX header checksum is {stored:#010x}, expected {want:#010x}"
        )));
    }
    if le_u16(b, 66)? != 1 || le_u16(b, 64)? != 0 {
        return Err(Error::Unsupported(format!(
            "VHDX version {} with log version {} (only 1 with log version 0 is known)",
            le_u16(b, 66)?,
            le_u16(b, 64)?
        )));
    }
    let h = VhdxHeader {
        sequence: le_u64(b, 8)?,
        file_write_guid: array(b, 16)?,
        data_write_guid: array(b, 32)?,
        log_guid: array(b, 48)?,
        log_length: le_u32(b, 68)?,
        log_offset: le_u64(b, 72)?,
    };
    if !u64::from(h.log_length).is_multiple_of(MIB)
        || !h.log_offset.is_multiple_of(MIB)
        || (h.log_length != 0 && h.log_offset < MIB)
    {
        return Err(Error::bad(format!(
            "VHDX log at {:#x} ({} bytes) is not 1 MiB aligned",
            h.log_offset, h.log_length
        )));
    }
    Ok(h)
}

/// Serialises a header (with its checksum).
pub fn header_bytes(h: &VhdxHeader) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..4].copy_from_slice(HEAD_SIG);
    b[8..16].copy_from_slice(&h.sequence.to_le_bytes());
    b[16..32].copy_from_slice(&h.file_write_guid);
    b[32..48].copy_from_slice(&h.data_write_guid);
    b[48..64].copy_from_slice(&h.log_guid);
    b[66..68].copy_from_slice(&1u16.to_le_bytes());
    b[68..72].copy_from_slice(&h.log_length.to_le_bytes());
    b[72..80].copy_from_slice(&h.log_offset.to_le_bytes());
    let c = crc32c(&b);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

/// One region table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Region type.
    pub guid: [u8; 16],
    /// File offset (multiple of 1 MiB).
    pub offset: u64,
    /// Length (multiple of 1 MiB).
    pub length: u32,
    /// Whether a reader must understand the region.
    pub required: bool,
}

/// The two regions a VHDX needs: (BAT, metadata). Parses and validates a 64 KiB region table;
/// unknown required regions are unsupported. Never panics.
pub fn parse_region_table(b: &[u8]) -> Result<(Region, Region)> {
    if b.len() < TABLE_BYTES || &b[..4] != REGI_SIG {
        return Err(Error::bad("VHDX region table has no 'regi' signature"));
    }
    let b = &b[..TABLE_BYTES];
    let (stored, want) = (le_u32(b, 4)?, crc_with_hole(b, 4));
    if stored != want {
        return Err(Error::bad(format!(
            "VHDX region table checksum is {stored:#010x}, expected {want:#010x}"
        )));
    }
    let count = le_u32(b, 8)? as usize;
    if count > 2047 {
        return Err(Error::bad(format!("VHDX region table has {count} entries")));
    }
    let (mut bat, mut meta) = (None, None);
    for i in 0..count {
        let e = &b[16 + 32 * i..48 + 32 * i];
        let r = Region {
            guid: array(e, 0)?,
            offset: le_u64(e, 16)?,
            length: le_u32(e, 24)?,
            required: le_u32(e, 28)? & 1 != 0,
        };
        if !r.offset.is_multiple_of(MIB)
            || r.offset < MIB
            || !u64::from(r.length).is_multiple_of(MIB)
            || r.length == 0
        {
            return Err(Error::bad(format!(
                "VHDX region at {:#x} ({} bytes) is not 1 MiB aligned",
                r.offset, r.length
            )));
        }
        let slot = match r.guid {
            BAT_GUID => &mut bat,
            METADATA_GUID => &mut meta,
            _ if r.required => {
                return Err(Error::Unsupported(
                    "VHDX has a required region diskfab does not know".into(),
                ))
            }
            _ => continue,
        };
        if slot.replace(r).is_some() {
            return Err(Error::bad("VHDX region table lists a region twice"));
        }
    }
    match (bat, meta) {
        (Some(b), Some(m)) => Ok((b, m)),
        _ => Err(Error::bad(
            "VHDX region table lacks the BAT or the metadata region",
        )),
    }
}

/// Serialises a region table holding `regions` (with its checksum).
pub fn region_table_bytes(regions: &[Region]) -> Vec<u8> {
    let mut b = vec![0u8; TABLE_BYTES];
    b[..4].copy_from_slice(REGI_SIG);
    b[8..12].copy_from_slice(&(regions.len() as u32).to_le_bytes());
    for (i, r) in regions.iter().enumerate() {
        let e = &mut b[16 + 32 * i..48 + 32 * i];
        e[..16].copy_from_slice(&r.guid);
        e[16..24].copy_from_slice(&r.offset.to_le_bytes());
        e[24..28].copy_from_slice(&r.length.to_le_bytes());
        e[28..32].copy_from_slice(&u32::from(r.required).to_le_bytes());
    }
    let c = crc32c(&b);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

/// The validated metadata of a (non-differencing) VHDX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdxMeta {
    /// Payload block size (power of two, 1 to 256 MiB).
    pub block_size: u32,
    /// Fixed disk: blocks stay allocated.
    pub leave_allocated: bool,
    /// Guest-visible size.
    pub virtual_size: u64,
    /// 512 or 4096.
    pub logical_sector: u32,
    /// 512 or 4096.
    pub physical_sector: u32,
    /// Page 83 (virtual disk) id.
    pub page83: [u8; 16],
}

impl VhdxMeta {
    /// Payload blocks per sector-bitmap block.
    pub fn chunk_ratio(&self) -> u64 {
        ((1u64 << 23) * u64::from(self.logical_sector)) / u64::from(self.block_size)
    }
    /// Payload blocks of the disk.
    pub fn data_blocks(&self) -> u64 {
        self.virtual_size.div_ceil(u64::from(self.block_size))
    }
    /// BAT entries the disk needs (payload entries plus interleaved sector-bitmap entries).
    pub fn bat_entries(&self) -> u64 {
        let n = self.data_blocks();
        n + n.saturating_sub(1) / self.chunk_ratio()
    }
    /// BAT index of payload block `block`.
    pub fn bat_index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio()
    }
}

/// Parses the metadata region (`b` holds at least its 64 KiB table; items beyond `b.len()` are
/// refused). Differencing disks and unknown required items are unsupported. Never panics.
pub fn parse_metadata(b: &[u8]) -> Result<VhdxMeta> {
    if b.len() < TABLE_BYTES || &b[..8] != META_SIG {
        return Err(Error::bad(
            "VHDX metadata table has no 'metadata' signature",
        ));
    }
    let count = le_u16(b, 10)? as usize;
    if count > 2047 {
        return Err(Error::bad(format!(
            "VHDX metadata table has {count} entries"
        )));
    }
    let mut items: [Option<&[u8]>; 5] = [None; 5];
    for i in 0..count {
        let e = &b[32 + 32 * i..64 + 32 * i];
        let (id, off, len, flags) = (
            array(e, 0)?,
            le_u32(e, 16)? as usize,
            le_u32(e, 20)? as usize,
            le_u32(e, 24)?,
        );
        if id == PARENT_LOCATOR {
            return Err(differencing());
        }
        let slot = match id {
            FILE_PARAMS => 0,
            DISK_SIZE => 1,
            PAGE83 => 2,
            LOGICAL_SECTOR => 3,
            PHYSICAL_SECTOR => 4,
            _ if flags & 4 != 0 => {
                return Err(Error::Unsupported(
                    "VHDX has a required metadata item diskfab does not know".into(),
                ))
            }
            _ => continue,
        };
        let need = [8, 8, 16, 4, 4][slot];
        if len < need || off < TABLE_BYTES || off.saturating_add(len) > b.len() {
            return Err(Error::bad(format!(
                "VHDX metadata item {i} at {off:#x} ({len} bytes) is out of bounds"
            )));
        }
        if items[slot].replace(&b[off..off + len]).is_some() {
            return Err(Error::bad("VHDX metadata lists an item twice"));
        }
    }
    let [Some(fp), Some(ds), Some(p83), Some(ls), Some(ps)] = items else {
        return Err(Error::bad("VHDX metadata lacks a required item"));
    };
    if le_u32(fp, 4)? & 2 != 0 {
        return Err(differencing());
    }
    let m = VhdxMeta {
        block_size: le_u32(fp, 0)?,
        leave_allocated: le_u32(fp, 4)? & 1 != 0,
        virtual_size: le_u64(ds, 0)?,
        logical_sector: le_u32(ls, 0)?,
        physical_sector: le_u32(ps, 0)?,
        page83: array(p83, 0)?,
    };
    if !m.block_size.is_power_of_two() || !(1 << 20..=256 << 20).contains(&m.block_size) {
        return Err(Error::bad(format!(
            "VHDX block size {} is not a power of two from 1 MiB to 256 MiB",
            m.block_size
        )));
    }
    if !matches!(m.logical_sector, 512 | 4096) || !matches!(m.physical_sector, 512 | 4096) {
        return Err(Error::bad(format!(
            "VHDX sector sizes {}/{} are not 512 or 4096",
            m.logical_sector, m.physical_sector
        )));
    }
    if m.virtual_size == 0
        || m.virtual_size > MAX_SIZE
        || !m.virtual_size.is_multiple_of(u64::from(m.logical_sector))
    {
        return Err(Error::bad(format!(
            "VHDX virtual size {} is out of range (whole sectors up to 64 TiB)",
            m.virtual_size
        )));
    }
    Ok(m)
}

fn differencing() -> Error {
    Error::Unsupported(
        "differencing VHDX (it needs its parent disk; merge or convert it with Hyper-V or qemu-img first)"
            .into(),
    )
}

/// Serialises a metadata region's first 64 KiB table and its items (`TABLE_BYTES + 40` bytes).
pub fn metadata_bytes(m: &VhdxMeta) -> Vec<u8> {
    let mut b = vec![0u8; TABLE_BYTES + 40];
    b[..8].copy_from_slice(META_SIG);
    b[10..12].copy_from_slice(&5u16.to_le_bytes());
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (
            FILE_PARAMS,
            [
                m.block_size.to_le_bytes(),
                u32::from(m.leave_allocated).to_le_bytes(),
            ]
            .concat(),
            4,
        ),
        (DISK_SIZE, m.virtual_size.to_le_bytes().to_vec(), 6),
        (PAGE83, m.page83.to_vec(), 6),
        (LOGICAL_SECTOR, m.logical_sector.to_le_bytes().to_vec(), 6),
        (PHYSICAL_SECTOR, m.physical_sector.to_le_bytes().to_vec(), 6),
    ];
    let mut off = TABLE_BYTES;
    for (i, (id, data, flags)) in items.iter().enumerate() {
        let e = &mut b[32 + 32 * i..64 + 32 * i];
        e[..16].copy_from_slice(id);
        e[16..20].copy_from_slice(&(off as u32).to_le_bytes());
        e[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        e[24..28].copy_from_slice(&flags.to_le_bytes());
        b[off..off + data.len()].copy_from_slice(data);
        off += data.len();
    }
    b
}

/// A BAT entry for a block at `offset` (a multiple of 1 MiB) in `state`.
pub fn bat_entry(state: u64, offset: u64) -> u64 {
    (offset & !(MIB - 1)) | state
}

/// A new, empty VHDX as (offset, bytes) segments and the file length.
#[derive(Debug, Clone)]
pub struct NewVhdx {
    /// What to write where.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// File length.
    pub len: u64,
}

/// The GUIDs a new image needs: file write, data write, page 83.
pub type NewGuids = [[u8; 16]; 3];

/// Builds a new empty VHDX of `size` bytes (a multiple of 512): log at 1 MiB, metadata at
/// 2 MiB, BAT at 3 MiB, payload blocks after it. Fixed disks have every block allocated, in
/// order. `block_size` defaults to [`DEFAULT_BLOCK`].
pub fn build(size: u64, fixed: bool, block_size: Option<u32>, guids: NewGuids) -> Result<NewVhdx> {
    let bs = block_size.unwrap_or(DEFAULT_BLOCK);
    if !bs.is_power_of_two() || !(1 << 20..=256 << 20).contains(&bs) {
        return Err(Error::Invalid(format!(
            "VHDX block size {bs} must be a power of two from 1M to 256M"
        )));
    }
    if size == 0 || size > MAX_SIZE || !size.is_multiple_of(512) {
        return Err(Error::Invalid(format!(
            "VHDX size {size} must be a multiple of 512 from 512 B to 64 TiB"
        )));
    }
    let meta = VhdxMeta {
        block_size: bs,
        leave_allocated: fixed,
        virtual_size: size,
        logical_sector: 512,
        physical_sector: 4096,
        page83: guids[2],
    };
    let entries = meta.bat_entries();
    let bat_len = (entries * 8).div_ceil(MIB) * MIB;
    let bat_at = 3 * MIB;
    let data_at = bat_at + bat_len;
    let mut bat = vec![0u8; (entries * 8) as usize];
    let mut len = data_at;
    if fixed {
        for blk in 0..meta.data_blocks() {
            let i = meta.bat_index(blk) as usize;
            let e = bat_entry(PAYLOAD_FULLY_PRESENT, len);
            bat[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
            len += u64::from(bs);
        }
    }
    let hdr = |sequence| VhdxHeader {
        sequence,
        file_write_guid: guids[0],
        data_write_guid: guids[1],
        log_guid: [0; 16],
        log_length: MIB as u32,
        log_offset: MIB,
    };
    let regions = region_table_bytes(&[
        Region {
            guid: BAT_GUID,
            offset: bat_at,
            length: u32::try_from(bat_len)
                .map_err(|_| Error::Invalid("VHDX block table too large".into()))?,
            required: true,
        },
        Region {
            guid: METADATA_GUID,
            offset: 2 * MIB,
            length: MIB as u32,
            required: true,
        },
    ]);
    let mut ident = FILE_SIGNATURE.to_vec();
    ident.extend("diskfab".encode_utf16().flat_map(u16::to_le_bytes));
    Ok(NewVhdx {
        segments: vec![
            (0, ident),
            (HEADER_OFFSETS[0], header_bytes(&hdr(1))),
            (HEADER_OFFSETS[1], header_bytes(&hdr(2))),
            (REGION_OFFSETS[0], regions.clone()),
            (REGION_OFFSETS[1], regions),
            (2 * MIB, metadata_bytes(&meta)),
            (bat_at, bat),
        ],
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_known_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn guids_are_stored_mixed_endian() {
        assert_eq!(
            BAT_GUID,
            [
                0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd,
                0x4a, 0x08
            ]
        );
    }

    #[test]
    fn built_structures_parse_back_and_checksums_catch_flips() {
        let n = build(100 << 20, false, Some(1 << 20), [[1; 16], [2; 16], [3; 16]]).unwrap();
        let seg = |o: u64| &n.segments.iter().find(|s| s.0 == o).unwrap().1;
        let h = parse_header(seg(HEADER_OFFSETS[1])).unwrap();
        assert_eq!((h.sequence, h.log_guid), (2, [0; 16]));
        let (bat, meta) = parse_region_table(seg(REGION_OFFSETS[0])).unwrap();
        assert_eq!((bat.offset, meta.offset), (3 * MIB, 2 * MIB));
        let m = parse_metadata(seg(2 * MIB)).unwrap();
        assert_eq!(
            (m.virtual_size, m.block_size, m.chunk_ratio()),
            (100 << 20, 1 << 20, 4096)
        );
        let mut bad = seg(HEADER_OFFSETS[0]).clone();
        bad[100] ^= 1;
        assert!(matches!(parse_header(&bad), Err(Error::BadImage(_))));
        let mut bad = seg(REGION_OFFSETS[0]).clone();
        bad[20] ^= 1;
        assert!(matches!(parse_region_table(&bad), Err(Error::BadImage(_))));
    }

    #[test]
    fn bat_interleaves_sector_bitmap_entries_every_chunk() {
        let m = VhdxMeta {
            block_size: 32 << 20,
            leave_allocated: false,
            virtual_size: 10 << 30,
            logical_sector: 512,
            physical_sector: 512,
            page83: [0; 16],
        };
        assert_eq!(m.chunk_ratio(), 128);
        assert_eq!(m.data_blocks(), 320);
        assert_eq!(m.bat_index(127), 127);
        assert_eq!(m.bat_index(128), 129);
        assert_eq!(m.bat_entries(), 322);
    }
}
