//! MFT and index records: update sequence (fixups) and attributes (pure parsers).

use crate::runlist::{self, Run};
use diskfab_storage::bytes::{le_u16, le_u32, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Attribute type codes.
pub mod ty {
    /// $STANDARD_INFORMATION
    pub const STANDARD_INFORMATION: u32 = 0x10;
    /// $ATTRIBUTE_LIST
    pub const ATTRIBUTE_LIST: u32 = 0x20;
    /// $FILE_NAME
    pub const FILE_NAME: u32 = 0x30;
    /// $VOLUME_NAME
    pub const VOLUME_NAME: u32 = 0x60;
    /// $VOLUME_INFORMATION
    pub const VOLUME_INFORMATION: u32 = 0x70;
    /// $DATA
    pub const DATA: u32 = 0x80;
    /// $INDEX_ROOT
    pub const INDEX_ROOT: u32 = 0x90;
    /// $INDEX_ALLOCATION
    pub const INDEX_ALLOCATION: u32 = 0xA0;
    /// $REPARSE_POINT
    pub const REPARSE_POINT: u32 = 0xC0;
    /// The end marker.
    pub const END: u32 = 0xFFFF_FFFF;
}

/// Most attributes one MFT record may hold (each takes at least 24 bytes).
const MAX_ATTRS_PER_RECORD: usize = 4096;
/// Stride of the update sequence: one check value per 512 bytes.
const USA_STRIDE: usize = 512;

/// Verifies and removes the update sequence of a multi-sector record (`FILE` or `INDX`):
/// the last two bytes of every 512-byte stride must equal the sequence number; they are
/// replaced by the saved originals.
pub fn apply_fixups(buf: &mut [u8], magic: &[u8; 4]) -> Result<()> {
    if slice(buf, 0, 4)? != magic {
        return Err(Error::bad(format!(
            "NTFS record: expected {} magic",
            String::from_utf8_lossy(magic)
        )));
    }
    let usa_ofs = usize::from(le_u16(buf, 4)?);
    let usa_count = usize::from(le_u16(buf, 6)?);
    if usa_count == 0 || (usa_count - 1) * USA_STRIDE != buf.len() || usa_ofs % 2 != 0 {
        return Err(Error::bad(format!(
            "NTFS record: update sequence of {usa_count} entries for {} bytes",
            buf.len()
        )));
    }
    let usn = le_u16(buf, usa_ofs)?;
    for i in 1..usa_count {
        let saved = le_u16(buf, usa_ofs + 2 * i)?;
        let end = i * USA_STRIDE - 2;
        if le_u16(buf, end)? != usn {
            return Err(Error::bad(format!(
                "NTFS record: torn write (update sequence mismatch in sector {i})"
            )));
        }
        buf[end..end + 2].copy_from_slice(&saved.to_le_bytes());
    }
    Ok(())
}

/// A non-resident attribute's extent: its runs and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonResident {
    /// First virtual cluster this extent maps.
    pub start_vcn: u64,
    /// Last virtual cluster this extent maps.
    pub last_vcn: u64,
    /// Its runs.
    pub runs: Vec<Run>,
    /// log2 of the compression unit in clusters (0 = not compressed).
    pub comp_unit: u8,
    /// Allocated bytes (meaningful in the first extent).
    pub alloc_size: u64,
    /// Logical size (first extent).
    pub data_size: u64,
    /// Initialized size: bytes past it read as zeroes (first extent).
    pub init_size: u64,
    /// Bytes actually allocated for compressed or sparse attributes (first extent).
    pub compressed_size: Option<u64>,
}

/// An attribute's value location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The value itself, inside the record.
    Resident(Vec<u8>),
    /// Clusters elsewhere.
    NonResident(NonResident),
}

/// One attribute of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Type code (see [`ty`]).
    pub ty: u32,
    /// Name (UTF-16 code units; empty for the unnamed stream).
    pub name: Vec<u16>,
    /// Flags: 0x0001 compressed, 0x4000 encrypted, 0x8000 sparse.
    pub flags: u16,
    /// Attribute instance id.
    pub id: u16,
    /// Where the value is.
    pub body: Body,
}

/// The parsed header and attributes of an MFT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub seq: u16,
    /// 0x0001 in use, 0x0002 directory.
    pub flags: u16,
    /// The base record this is an extension of (0 for base records).
    pub base: u64,
    /// Its attributes, in record order.
    pub attrs: Vec<Attr>,
}

/// UTF-16 code units at `off`.
pub fn utf16_at(buf: &[u8], off: usize, units: usize) -> Result<Vec<u16>> {
    let b = slice(buf, off, units * 2)?;
    Ok(b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// Parses an MFT record whose fixups are already applied. `clusters` bounds every run.
pub fn parse_record(buf: &[u8], clusters: u64) -> Result<Record> {
    if slice(buf, 0, 4)? != b"FILE" {
        return Err(Error::bad("NTFS MFT record: no FILE magic"));
    }
    let used = (le_u32(buf, 0x18)? as usize).min(buf.len());
    let rec = &buf[..used];
    let mut attrs = Vec::new();
    let mut off = usize::from(le_u16(buf, 0x14)?);
    loop {
        let t = le_u32(rec, off)?;
        if t == ty::END {
            break;
        }
        let len = le_u32(rec, off + 4)? as usize;
        if len < 24 || !len.is_multiple_of(8) || off + len > rec.len() {
            return Err(Error::bad(format!(
                "NTFS MFT record: attribute of {len} bytes at offset {off}"
            )));
        }
        if attrs.len() >= MAX_ATTRS_PER_RECORD {
            return Err(Error::bad("NTFS MFT record: too many attributes"));
        }
        attrs.push(parse_attr(&rec[off..off + len], clusters)?);
        off += len;
    }
    Ok(Record {
        seq: le_u16(buf, 0x10)?,
        flags: le_u16(buf, 0x16)?,
        base: le_u64(buf, 0x20)? & REF_MASK,
        attrs,
    })
}

/// The record-number part of a file reference (the top 16 bits are the sequence number).
pub const REF_MASK: u64 = 0x0000_FFFF_FFFF_FFFF;

/// Parses one attribute (`a` is exactly its bytes).
fn parse_attr(a: &[u8], clusters: u64) -> Result<Attr> {
    let name_len = usize::from(u8_at(a, 9)?);
    let name = utf16_at(a, usize::from(le_u16(a, 0x0A)?), name_len)?;
    let body = if u8_at(a, 8)? == 0 {
        let vlen = le_u32(a, 0x10)? as usize;
        let voff = usize::from(le_u16(a, 0x14)?);
        Body::Resident(slice(a, voff, vlen)?.to_vec())
    } else {
        let flags = le_u16(a, 0x0C)?;
        let start_vcn = le_u64(a, 0x10)?;
        let last_vcn = le_u64(a, 0x18)?;
        let runs_off = usize::from(le_u16(a, 0x20)?);
        let runs = runlist::decode(
            slice(a, runs_off, a.len().saturating_sub(runs_off))?,
            start_vcn,
            clusters,
            a.len(),
        )?;
        let compressed_size = if flags & 0x8001 != 0 && le_u16(a, 0x20)? >= 0x48 {
            Some(le_u64(a, 0x40)?)
        } else {
            None
        };
        Body::NonResident(NonResident {
            start_vcn,
            last_vcn,
            runs,
            comp_unit: u8_at(a, 0x22)?,
            alloc_size: le_u64(a, 0x28)?,
            data_size: le_u64(a, 0x30)?,
            init_size: le_u64(a, 0x38)?,
            compressed_size,
        })
    };
    Ok(Attr {
        ty: le_u32(a, 0)?,
        name,
        flags: le_u16(a, 0x0C)?,
        id: le_u16(a, 0x0E)?,
        body,
    })
}

/// One $ATTRIBUTE_LIST entry: where an attribute of the file lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    /// Attribute type.
    pub ty: u32,
    /// First virtual cluster of that extent.
    pub start_vcn: u64,
    /// The MFT record holding it.
    pub record: u64,
    /// Its instance id there.
    pub id: u16,
}

/// Parses an $ATTRIBUTE_LIST value; at most `max` entries.
pub fn parse_attr_list(v: &[u8], max: usize) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 0x1A <= v.len() {
        let len = usize::from(le_u16(v, off + 4)?);
        if len < 0x1A || off + len > v.len() {
            return Err(Error::bad(format!(
                "NTFS attribute list: entry of {len} bytes at {off}"
            )));
        }
        if out.len() >= max {
            return Err(Error::bad(format!(
                "NTFS attribute list: more than {max} entries"
            )));
        }
        out.push(ListEntry {
            ty: le_u32(v, off)?,
            start_vcn: le_u64(v, off + 8)?,
            record: le_u64(v, off + 0x10)? & REF_MASK,
            id: le_u16(v, off + 0x18)?,
        });
        off += len;
    }
    Ok(out)
}
