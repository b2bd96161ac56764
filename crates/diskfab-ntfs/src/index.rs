//! Directory indexes ($I30): $INDEX_ROOT values and INDX records of $INDEX_ALLOCATION
//! (pure parsers; the B+tree walk with its depth and cycle limits is in `dir.rs`).

use crate::names::{parse_file_name, FileName};
use crate::record::apply_fixups;
use diskfab_storage::bytes::{le_u16, le_u32, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// One index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file reference (record number and sequence number).
    pub file_ref: u64,
    /// The key (absent in the terminating entry).
    pub key: Option<FileName>,
    /// The child node (VCN in $INDEX_ALLOCATION) holding smaller keys.
    pub subnode: Option<u64>,
}

/// A parsed $INDEX_ROOT value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Bytes per index record of this index.
    pub index_size: u32,
    /// The entries of the root node.
    pub entries: Vec<Entry>,
}

/// Parses the entries of a node whose index header starts at `hdr`.
fn node_entries(buf: &[u8], hdr: usize) -> Result<Vec<Entry>> {
    let first = hdr.saturating_add(le_u32(buf, hdr)? as usize);
    let end = hdr
        .saturating_add(le_u32(buf, hdr + 4)? as usize)
        .min(buf.len());
    let mut out = Vec::new();
    let mut off = first;
    while off < end {
        let len = usize::from(le_u16(buf, off + 8)?);
        let key_len = usize::from(le_u16(buf, off + 10)?);
        let flags = le_u16(buf, off + 12)?;
        if len < 16 || off + len > end || 16 + key_len > len {
            return Err(Error::bad(format!(
                "NTFS index: entry of {len} bytes at {off}"
            )));
        }
        let e = slice(buf, off, len)?;
        let subnode = if flags & 1 != 0 {
            Some(le_u64(e, len - 8)?)
        } else {
            None
        };
        let last = flags & 2 != 0;
        let key = if last || key_len == 0 {
            None
        } else {
            Some(parse_file_name(slice(e, 16, key_len)?)?)
        };
        out.push(Entry {
            file_ref: le_u64(e, 0)?,
            key,
            subnode,
        });
        if last {
            return Ok(out);
        }
        off += len;
    }
    Err(Error::bad("NTFS index: node without a terminating entry"))
}

/// Parses an $INDEX_ROOT value of a file-name index.
pub fn parse_root(v: &[u8]) -> Result<Root> {
    if le_u32(v, 0)? != 0x30 {
        return Err(Error::Unsupported(
            "NTFS index over something other than file names".into(),
        ));
    }
    let index_size = le_u32(v, 8)?;
    let _ = u8_at(v, 0x0C)?;
    Ok(Root {
        index_size,
        entries: node_entries(v, 0x10)?,
    })
}

/// Parses an INDX record (fixups applied here) expected at virtual cluster `vcn`.
pub fn parse_indx(buf: &mut [u8], vcn: u64) -> Result<Vec<Entry>> {
    apply_fixups(buf, b"INDX")?;
    let got = le_u64(buf, 0x10)?;
    if got != vcn {
        return Err(Error::bad(format!(
            "NTFS index: record at VCN {vcn} claims VCN {got}"
        )));
    }
    node_entries(buf, 0x18)
}
