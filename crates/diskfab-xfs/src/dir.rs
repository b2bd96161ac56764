//! Directories: short form (in the inode) and data blocks (block, leaf and node forms share
//! them). Listing reads the data blocks only; the hash-ordered leaf/node blocks are redundant
//! indexes, so lookups scan the same entries.

use crate::crc;
use crate::sb::Superblock;
use diskfab_fs::FileType;
use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

const XD2B: u32 = 0x5844_3242;
const XD2D: u32 = 0x5844_3244;
const XDB3: u32 = 0x5844_4233;
const XDD3: u32 = 0x5844_4433;
/// Where the leaf space of a directory starts (bytes of logical offset): 32 GiB.
pub const LEAF_OFFSET: u64 = 1 << 35;

/// One raw entry: name, inode number, type byte (when the filesystem records one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: u64,
    /// The directory entry's file type, if recorded.
    pub ftype: Option<FileType>,
}

fn ftype_of(v: u8) -> Result<Option<FileType>> {
    Ok(Some(match v {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        0 => return Ok(None),
        _ => return Err(Error::BadImage(format!("xfs: directory entry type {v}"))),
    }))
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::bad("xfs: invalid name in a directory"));
    }
    Ok(())
}

/// Parses a short-form directory (the inode's data fork); returns the entries and the parent.
pub fn parse_shortform(sb: &Superblock, fork: &[u8], size: u64) -> Result<(Vec<RawEntry>, u64)> {
    let size = usize::try_from(size).map_err(|_| Error::bad("xfs: short-form size"))?;
    let fork = slice(fork, 0, size)?;
    let count = usize::from(u8_at(fork, 0)?);
    let i8 = u8_at(fork, 1)? != 0;
    let isz = if i8 { 8 } else { 4 };
    let read_ino = |off: usize| -> Result<u64> {
        if i8 {
            be_u64(fork, off)
        } else {
            be_u32(fork, off).map(u64::from)
        }
    };
    let parent = read_ino(2)?;
    let mut pos = 2 + isz;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let namelen = usize::from(u8_at(fork, pos)?);
        let name = slice(fork, pos + 3, namelen)?.to_vec();
        check_name(&name)?;
        let mut p = pos + 3 + namelen;
        let ftype = if sb.ftype {
            p += 1;
            ftype_of(u8_at(fork, p - 1)?)?
        } else {
            None
        };
        let ino = read_ino(p)?;
        out.push(RawEntry { name, ino, ftype });
        pos = p + isz;
    }
    Ok((out, parent))
}

/// Parses one directory data block (block form or a data block of leaf/node form);
/// `owner` is the directory's inode, `daddr` the block's device sector (v5 self-checks).
pub fn parse_data_block(
    sb: &Superblock,
    buf: &[u8],
    owner: u64,
    daddr: u64,
) -> Result<Vec<RawEntry>> {
    let magic = be_u32(buf, 0)?;
    let (hdr, block_form) = match (sb.v5, magic) {
        (false, XD2B) => (16, true),
        (false, XD2D) => (16, false),
        (true, XDB3) => (64, true),
        (true, XDD3) => (64, false),
        _ => {
            return Err(Error::BadImage(format!(
                "xfs: directory {owner}: data block with a bad magic {magic:#x}"
            )))
        }
    };
    if sb.v5 {
        crc::verify(buf, 4, &format!("directory {owner} block"))?;
        if be_u64(buf, 8)? != daddr
            || slice(buf, 24, 16)? != sb.meta_uuid
            || be_u64(buf, 40)? != owner
        {
            return Err(Error::BadImage(format!(
                "xfs: directory {owner}: data block at sector {daddr} belongs elsewhere"
            )));
        }
    }
    let end = if block_form {
        let count = be_u32(buf, buf.len().saturating_sub(8))? as usize;
        buf.len()
            .checked_sub(8)
            .and_then(|e| e.checked_sub(count.checked_mul(8)?))
            .filter(|&e| e >= hdr)
            .ok_or_else(|| Error::bad("xfs: directory block tail overlaps its entries"))?
    } else {
        buf.len()
    };
    parse_entries(sb, slice(buf, 0, end)?, hdr)
}

fn parse_entries(sb: &Superblock, buf: &[u8], mut pos: usize) -> Result<Vec<RawEntry>> {
    let mut out = Vec::new();
    while pos < buf.len() {
        if be_u16(buf, pos)? == 0xffff {
            let len = usize::from(be_u16(buf, pos + 2)?);
            if len < 8 || len % 8 != 0 {
                return Err(Error::bad("xfs: directory free space with a bad length"));
            }
            pos += len;
            continue;
        }
        let ino = be_u64(buf, pos)?;
        let namelen = usize::from(u8_at(buf, pos + 8)?);
        let name = slice(buf, pos + 9, namelen)?;
        let ftype = if sb.ftype {
            ftype_of(u8_at(buf, pos + 9 + namelen)?)?
        } else {
            None
        };
        let used = 9 + namelen + usize::from(sb.ftype) + 2;
        pos += used.div_ceil(8) * 8;
        if name == b"." || name == b".." {
            continue;
        }
        check_name(name)?;
        out.push(RawEntry {
            name: name.to_vec(),
            ino,
            ftype,
        });
    }
    Ok(out)
}
