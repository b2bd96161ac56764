//! Microsoft VHD ("vpc" in QEMU): pure parsing and building of the footer and the dynamic-disk
//! header (no I/O). Every field is validated before anything trusts it.
//!
//! Layout facts (VHD specification 1.0): a 512-byte big-endian footer with the cookie
//! `conectix` ends every image; fixed images are the guest data followed by the footer; dynamic
//! images start with a copy of the footer, then a 1024-byte `cxsparse` header pointing at the
//! block allocation table (BAT, big-endian u32 sector offsets, `0xffffffff` = unallocated).
//! Each allocated block is a sector bitmap (one bit per sector, most significant bit first,
//! padded to 512 bytes) followed by the block's data. Both structures carry a checksum: the
//! one's complement of the byte sum with the checksum field taken as zero.

use diskfab_storage::bytes::{array, be_u16, be_u32, be_u64};
use diskfab_storage::{Error, Result};

/// The footer cookie.
pub const COOKIE: [u8; 8] = *b"conectix";
/// The dynamic header cookie.
pub const DYN_COOKIE: [u8; 8] = *b"cxsparse";
/// BAT entry of an unallocated block.
pub const UNALLOCATED: u32 = 0xffff_ffff;
/// Block size diskfab creates (and every common tool uses).
pub const DEFAULT_BLOCK: u32 = 2 << 20;
/// Largest virtual size accepted or created (2040 GiB, the format's documented limit; beyond it
/// sector offsets in the BAT no longer reach).
pub const MAX_SIZE: u64 = 2040 << 30;
/// The creator application diskfab records (any creator but `qemu` and `vpc ` makes QEMU use
/// the exact current size instead of the CHS geometry).
pub const CREATOR: [u8; 4] = *b"dfab";
/// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
pub const EPOCH_OFFSET: u64 = 946_684_800;
const MAX_CHS: (u16, u8, u8) = (65535, 16, 255);

/// Disk type: fixed.
pub const TYPE_FIXED: u32 = 2;
/// Disk type: dynamic.
pub const TYPE_DYNAMIC: u32 = 3;
/// Disk type: differencing (has a parent; refused).
pub const TYPE_DIFFERENCING: u32 = 4;

/// A validated VHD footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdFooter {
    /// Offset of the dynamic header (`u64::MAX` for fixed disks).
    pub data_offset: u64,
    /// Creation time, seconds since 2000-01-01 UTC.
    pub timestamp: u32,
    /// Creator application (`qemu`, `win `, `vpc `, `dfab`, ...).
    pub creator_app: [u8; 4],
    /// Size when created.
    pub original_size: u64,
    /// Current size in bytes.
    pub current_size: u64,
    /// Cylinders of the CHS geometry.
    pub cylinders: u16,
    /// Heads of the CHS geometry.
    pub heads: u8,
    /// Sectors per track of the CHS geometry.
    pub sectors: u8,
    /// [`TYPE_FIXED`] or [`TYPE_DYNAMIC`].
    pub disk_type: u32,
    /// Unique id.
    pub uuid: [u8; 16],
}

impl VhdFooter {
    /// The guest size, as QEMU computes it: images whose creator is `qemu` or `vpc ` are sized
    /// by their CHS geometry unless it is the maximum (65535/16/255); every other creator
    /// (Hyper-V, Windows, VirtualBox, diskfab) by the current size, in whole sectors.
    pub fn virtual_size(&self) -> u64 {
        let chs = (self.cylinders, self.heads, self.sectors);
        if (&self.creator_app == b"qemu" || &self.creator_app == b"vpc ") && chs != MAX_CHS {
            u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors) * 512
        } else {
            self.current_size / 512 * 512
        }
    }

    /// The creator application as text.
    pub fn creator(&self) -> String {
        String::from_utf8_lossy(&self.creator_app)
            .trim_end()
            .to_string()
    }
}

/// A validated dynamic-disk header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdDynHeader {
    /// Absolute offset of the BAT.
    pub table_offset: u64,
    /// BAT entries.
    pub max_table_entries: u32,
    /// Bytes per block (power of two).
    pub block_size: u32,
}

impl VhdDynHeader {
    /// Bytes of the sector bitmap in front of each block (padded to whole sectors).
    pub fn bitmap_bytes(&self) -> u64 {
        (u64::from(self.block_size) / 512).div_ceil(8).div_ceil(512) * 512
    }

    /// Bytes of the BAT on disk (padded to whole sectors).
    pub fn bat_bytes(&self) -> u64 {
        (u64::from(self.max_table_entries) * 4).div_ceil(512) * 512
    }
}

/// The one's complement of the byte sum of `b`, with the four bytes at `at` taken as zero.
pub fn checksum(b: &[u8], at: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |a, (_, &x)| a.wrapping_add(u32::from(x)));
    !sum
}

/// Parses and validates a 512-byte footer. Never panics.
pub fn parse_vhd_footer(b: &[u8]) -> Result<VhdFooter> {
    if b.len() < 512 || b[..8] != COOKIE {
        return Err(Error::bad("not a VHD footer (no conectix cookie)"));
    }
    let b = &b[..512];
    if checksum(b, 64) != be_u32(b, 64)? {
        return Err(Error::bad(format!(
            "VHD footer checksum is {:#010x}, expected {:#010x}",
            be_u32(b, 64)?,
            checksum(b, 64)
        )));
    }
    if be_u32(b, 12)? >> 16 != 1 {
        return Err(Error::Unsupported(format!(
            "VHD file format version {:#x}",
            be_u32(b, 12)?
        )));
    }
    let f = VhdFooter {
        data_offset: be_u64(b, 16)?,
        timestamp: be_u32(b, 24)?,
        creator_app: [b[28], b[29], b[30], b[31]],
        original_size: be_u64(b, 40)?,
        current_size: be_u64(b, 48)?,
        cylinders: be_u16(b, 56)?,
        heads: b[58],
        sectors: b[59],
        disk_type: be_u32(b, 60)?,
        uuid: array(b, 68)?,
    };
    match f.disk_type {
        TYPE_FIXED | TYPE_DYNAMIC => {}
        TYPE_DIFFERENCING => {
            return Err(Error::Unsupported(
                "differencing VHD (it needs its parent image; convert it with its parent first)"
                    .into(),
            ))
        }
        t => {
            return Err(Error::bad(format!(
                "VHD disk type {t} is not fixed or dynamic"
            )))
        }
    }
    let size = f.virtual_size();
    if size == 0 || size > MAX_SIZE {
        return Err(Error::bad(format!(
            "VHD size {size} is out of range (1 sector to 2040 GiB)"
        )));
    }
    if f.disk_type == TYPE_DYNAMIC && (f.data_offset < 512 || f.data_offset > MAX_SIZE) {
        return Err(Error::bad(format!(
            "VHD dynamic header offset {:#x} is invalid",
            f.data_offset
        )));
    }
    Ok(f)
}

/// Parses and validates the 1024-byte dynamic header. Never panics.
pub fn parse_vhd_dyn_header(b: &[u8]) -> Result<VhdDynHeader> {
    if b.len() < 1024 || b[..8] != DYN_COOKIE {
        return Err(Error::bad("VHD dynamic header has no cxsparse cookie"));
    }
    let b = &b[..1024];
    if checksum(b, 36) != be_u32(b, 36)? {
        return Err(Error::bad(format!(
            "VHD dynamic header checksum is {:#010x}, expected {:#010x}",
            be_u32(b, 36)?,
            checksum(b, 36)
        )));
    }
    if be_u32(b, 24)? >> 16 != 1 {
        return Err(Error::Unsupported(format!(
            "VHD dynamic header version {:#x}",
            be_u32(b, 24)?
        )));
    }
    let h = VhdDynHeader {
        table_offset: be_u64(b, 16)?,
        max_table_entries: be_u32(b, 28)?,
        block_size: be_u32(b, 32)?,
    };
    if !h.block_size.is_power_of_two() || !(512..=64 << 20).contains(&h.block_size) {
        return Err(Error::bad(format!(
            "VHD block size {} is not a power of two from 512 B to 64 MiB",
            h.block_size
        )));
    }
    if u64::from(h.max_table_entries) * u64::from(h.block_size) > MAX_SIZE + u64::from(h.block_size)
    {
        return Err(Error::bad(format!(
            "VHD block table of {} entries is larger than any VHD",
            h.max_table_entries
        )));
    }
    if h.table_offset < 512 || h.table_offset > MAX_SIZE || !h.table_offset.is_multiple_of(512) {
        return Err(Error::bad(format!(
            "VHD block table offset {:#x} is invalid",
            h.table_offset
        )));
    }
    Ok(h)
}

/// CHS geometry for `total_sectors`, by the algorithm of the VHD specification (rounding down;
/// capped at 65535/16/255).
pub fn geometry(total_sectors: u64) -> (u16, u8, u8) {
    let max = 65535 * 16 * 255;
    let total = total_sectors.min(max);
    let (spt, heads, cth) = if total >= 65535 * 16 * 63 {
        (255u64, 16u64, total / 255)
    } else {
        let mut spt = 17u64;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    ((cth / heads).min(65535) as u16, heads as u8, spt as u8)
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_be_bytes());
}

/// Serialises a footer (with its checksum).
pub fn footer_bytes(f: &VhdFooter) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..8].copy_from_slice(&COOKIE);
    put32(&mut b, 8, 2); // features: the reserved bit that must always be set
    put32(&mut b, 12, 0x0001_0000);
    put64(&mut b, 16, f.data_offset);
    put32(&mut b, 24, f.timestamp);
    b[28..32].copy_from_slice(&f.creator_app);
    put32(&mut b, 32, 0x0001_0000);
    b[36..40].copy_from_slice(b"Wi2k");
    put64(&mut b, 40, f.original_size);
    put64(&mut b, 48, f.current_size);
    b[56..58].copy_from_slice(&f.cylinders.to_be_bytes());
    b[58] = f.heads;
    b[59] = f.sectors;
    put32(&mut b, 60, f.disk_type);
    b[68..84].copy_from_slice(&f.uuid);
    let c = checksum(&b, 64);
    put32(&mut b, 64, c);
    b
}

/// Serialises a dynamic header (with its checksum); no parent.
pub fn dyn_header_bytes(h: &VhdDynHeader) -> [u8; 1024] {
    let mut b = [0u8; 1024];
    b[..8].copy_from_slice(&DYN_COOKIE);
    put64(&mut b, 8, u64::MAX);
    put64(&mut b, 16, h.table_offset);
    put32(&mut b, 24, 0x0001_0000);
    put32(&mut b, 28, h.max_table_entries);
    put32(&mut b, 32, h.block_size);
    let c = checksum(&b, 36);
    put32(&mut b, 36, c);
    b
}

/// A new, empty VHD as bytes to write.
#[derive(Debug, Clone)]
pub struct NewVhd {
    /// Bytes at offset 0 (dynamic: footer copy, dynamic header, BAT; fixed: nothing).
    pub head: Vec<u8>,
    /// The footer.
    pub footer: [u8; 512],
    /// Where the footer goes; the file ends right after it.
    pub footer_at: u64,
}

/// Rounds `size` up to a whole number of MiB, as Azure requires of an uploaded VHD.
pub fn azure_size(size: u64) -> u64 {
    size.div_ceil(1 << 20) * (1 << 20)
}

/// Builds a new empty VHD of `size` bytes (a multiple of 512), fixed or dynamic (2 MiB blocks).
/// `timestamp` is seconds since 2000-01-01 UTC. The CHS geometry is rounded down from the size;
/// with `force_size` it is the maximum (65535/16/255), which tells every reader (qemu, Hyper-V,
/// Virtual PC) to take the current size field as the exact size, as qemu's `force_size` does.
pub fn build(
    size: u64,
    fixed: bool,
    force_size: bool,
    uuid: [u8; 16],
    timestamp: u32,
) -> Result<NewVhd> {
    if size == 0 || size > MAX_SIZE || !size.is_multiple_of(512) {
        return Err(Error::Invalid(format!(
            "VHD size {size} must be a multiple of 512 from 512 B to 2040 GiB"
        )));
    }
    let (cylinders, heads, sectors) = if force_size {
        MAX_CHS
    } else {
        geometry(size / 512)
    };
    let mut f = VhdFooter {
        data_offset: if fixed { u64::MAX } else { 512 },
        timestamp,
        creator_app: CREATOR,
        original_size: size,
        current_size: size,
        cylinders,
        heads,
        sectors,
        disk_type: if fixed { TYPE_FIXED } else { TYPE_DYNAMIC },
        uuid,
    };
    if fixed {
        return Ok(NewVhd {
            head: Vec::new(),
            footer: footer_bytes(&f),
            footer_at: size,
        });
    }
    let dh = VhdDynHeader {
        table_offset: 1536,
        max_table_entries: size.div_ceil(u64::from(DEFAULT_BLOCK)) as u32,
        block_size: DEFAULT_BLOCK,
    };
    f.data_offset = 512;
    let footer = footer_bytes(&f);
    let mut head = Vec::with_capacity((1536 + dh.bat_bytes()) as usize);
    head.extend_from_slice(&footer);
    head.extend_from_slice(&dyn_header_bytes(&dh));
    head.resize((1536 + dh.bat_bytes()) as usize, 0xff);
    Ok(NewVhd {
        footer_at: head.len() as u64,
        head,
        footer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_size_uses_the_maximal_geometry_and_the_exact_size() {
        let n = build(10_000_384, true, true, [7; 16], 0).unwrap();
        let f = parse_vhd_footer(&n.footer).unwrap();
        assert_eq!((f.cylinders, f.heads, f.sectors), MAX_CHS);
        assert_eq!((f.virtual_size(), n.footer_at), (10_000_384, 10_000_384));
        assert_eq!(azure_size(10_000_000), 10 << 20);
        assert_eq!(azure_size(10 << 20), 10 << 20);
    }

    #[test]
    fn geometry_follows_the_specification() {
        // 1 MiB: 2048 sectors -> 120 tracks of 17 sectors, 4 heads, 30 cylinders.
        assert_eq!(geometry(2048), (30, 4, 17));
        assert_eq!(geometry(2108), (31, 4, 17));
        assert_eq!(geometry(u64::MAX), MAX_CHS);
        assert_eq!(geometry(2 << 20), (2080, 16, 63));
    }

    #[test]
    fn built_images_parse_back_and_checksums_catch_flips() {
        let n = build(10 << 20, false, false, [7; 16], 1234).unwrap();
        let f = parse_vhd_footer(&n.footer).unwrap();
        assert_eq!(f.virtual_size(), 10 << 20);
        assert_eq!(n.head[..512], n.footer[..]);
        let h = parse_vhd_dyn_header(&n.head[512..1536]).unwrap();
        assert_eq!((h.max_table_entries, h.block_size), (5, DEFAULT_BLOCK));
        let mut bad = n.footer;
        bad[100] ^= 1;
        assert!(matches!(parse_vhd_footer(&bad), Err(Error::BadImage(_))));
        let mut bad = n.head[512..1536].to_vec();
        bad[30] ^= 1;
        assert!(matches!(
            parse_vhd_dyn_header(&bad),
            Err(Error::BadImage(_))
        ));
        assert!(parse_vhd_footer(&n.footer[..100]).is_err());
    }

    #[test]
    fn qemu_creator_uses_chs_unless_maximal() {
        let mut f =
            parse_vhd_footer(&build(10 << 20, true, false, [0; 16], 0).unwrap().footer).unwrap();
        f.creator_app = *b"qemu";
        f.cylinders = 302;
        f.heads = 4;
        f.sectors = 17;
        assert_eq!(f.virtual_size(), 10_514_432);
        (f.cylinders, f.heads, f.sectors) = MAX_CHS;
        assert_eq!(f.virtual_size(), 10 << 20);
    }
}
