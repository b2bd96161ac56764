//! Extended attributes: short form in the inode, leaf blocks (found through the dabtree's
//! node blocks) and remote value blocks. Pure parsing; `fs.rs` does the I/O.

use crate::crc;
use crate::sb::Superblock;
use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

const ATTR_LEAF: u16 = 0xfbee;
const ATTR3_LEAF: u16 = 0x3bee;
const DA_NODE: u16 = 0xfebe;
const DA3_NODE: u16 = 0x3ebe;
const XARM: u32 = 0x5841_524d;
const FLAG_LOCAL: u8 = 0x01;
const FLAG_ROOT: u8 = 0x02;
const FLAG_SECURE: u8 = 0x04;
const FLAG_PARENT: u8 = 0x08;
const FLAG_INCOMPLETE: u8 = 0x80;

/// An attribute value: inline bytes or a run of remote blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Stored in the entry.
    Local(Vec<u8>),
    /// Stored in attr-fork blocks from `blk`, `len` bytes.
    Remote {
        /// First attr-fork logical block.
        blk: u32,
        /// Value length.
        len: u32,
    },
}

/// A dabtree block of the attr fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrBlock {
    /// An interior node: its level and its children's logical blocks.
    Node(u16, Vec<u32>),
    /// A leaf: the attributes (full name, value) and the next leaf (`forw`, 0 = none).
    Leaf(Vec<(Vec<u8>, Value)>, u32),
}

/// The name users see: namespace prefix plus the stored name; `None` for entries that are
/// not user-visible xattrs (parent pointers, incomplete entries).
fn full_name(flags: u8, name: &[u8]) -> Option<Vec<u8>> {
    if flags & (FLAG_PARENT | FLAG_INCOMPLETE) != 0 {
        return None;
    }
    let prefix: &[u8] = if flags & FLAG_SECURE != 0 {
        b"security."
    } else if flags & FLAG_ROOT != 0 {
        match name {
            b"SGI_ACL_FILE" => return Some(b"system.posix_acl_access".to_vec()),
            b"SGI_ACL_DEFAULT" => return Some(b"system.posix_acl_default".to_vec()),
            _ => b"trusted.",
        }
    } else {
        b"user."
    };
    Some([prefix, name].concat())
}

/// Converts an XFS on-disk ACL to the kernel's xattr encoding (used for `system.posix_acl_*`).
pub fn acl_to_xattr(v: &[u8]) -> Result<Vec<u8>> {
    let n = be_u32(v, 0)? as usize;
    if n > 8192 || 4 + n * 12 > v.len() {
        return Err(Error::bad("xfs: ACL with a bad entry count"));
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    for i in 0..n {
        let e = 4 + i * 12;
        let tag = be_u32(v, e)?;
        out.extend_from_slice(&(tag as u16).to_le_bytes());
        out.extend_from_slice(&be_u16(v, e + 8)?.to_le_bytes());
        out.extend_from_slice(&be_u32(v, e + 4)?.to_le_bytes());
    }
    Ok(out)
}

/// Post-processes a value read for `name` (ACLs change encoding).
pub fn finish_value(name: &[u8], v: Vec<u8>) -> Result<Vec<u8>> {
    if name.starts_with(b"system.posix_acl_") {
        acl_to_xattr(&v)
    } else {
        Ok(v)
    }
}

/// Parses a short-form attr fork.
pub fn parse_shortform(fork: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let total = usize::from(be_u16(fork, 0)?);
    let fork = slice(fork, 0, total)?;
    let count = usize::from(u8_at(fork, 2)?);
    let mut pos = 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let nl = usize::from(u8_at(fork, pos)?);
        let vl = usize::from(u8_at(fork, pos + 1)?);
        let flags = u8_at(fork, pos + 2)?;
        let name = slice(fork, pos + 3, nl)?;
        let value = slice(fork, pos + 3 + nl, vl)?;
        pos += 3 + nl + vl;
        if let Some(n) = full_name(flags, name) {
            let v = finish_value(&n, value.to_vec())?;
            out.push((n, v));
        }
    }
    Ok(out)
}

/// Length of the dabtree block header (blkinfo) and its self checks on v5.
fn check_info(sb: &Superblock, buf: &[u8], owner: u64, daddr: u64) -> Result<usize> {
    if !sb.v5 {
        return Ok(12);
    }
    crc::verify(buf, 12, &format!("inode {owner} attribute block"))?;
    if be_u64(buf, 16)? != daddr || slice(buf, 32, 16)? != sb.meta_uuid || be_u64(buf, 48)? != owner
    {
        return Err(Error::BadImage(format!(
            "xfs: inode {owner}: attribute block at sector {daddr} belongs elsewhere"
        )));
    }
    Ok(56)
}

/// Parses one attr-fork dabtree block (node or leaf).
pub fn parse_block(sb: &Superblock, buf: &[u8], owner: u64, daddr: u64) -> Result<AttrBlock> {
    let magic = be_u16(buf, 8)?;
    let (leaf, node) = if sb.v5 {
        (ATTR3_LEAF, DA3_NODE)
    } else {
        (ATTR_LEAF, DA_NODE)
    };
    if magic != leaf && magic != node {
        return Err(Error::BadImage(format!(
            "xfs: inode {owner}: attribute block with a bad magic {magic:#x}"
        )));
    }
    let info = check_info(sb, buf, owner, daddr)?;
    let count = usize::from(be_u16(buf, info)?);
    if magic == node {
        let level = be_u16(buf, info + 2)?;
        let base = if sb.v5 { info + 8 } else { info + 4 };
        if count == 0 || base + count * 8 > buf.len() {
            return Err(Error::bad("xfs: attribute node with a bad count"));
        }
        let kids = (0..count)
            .map(|i| be_u32(buf, base + i * 8 + 4))
            .collect::<Result<_>>()?;
        return Ok(AttrBlock::Node(level, kids));
    }
    let base = if sb.v5 { info + 24 } else { info + 20 };
    if base + count * 8 > buf.len() {
        return Err(Error::bad("xfs: attribute leaf with a bad count"));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let e = base + i * 8;
        let idx = usize::from(be_u16(buf, e + 4)?);
        let flags = u8_at(buf, e + 6)?;
        let (name, value) = if flags & FLAG_LOCAL != 0 {
            let vl = usize::from(be_u16(buf, idx)?);
            let nl = usize::from(u8_at(buf, idx + 2)?);
            let name = slice(buf, idx + 3, nl)?;
            (name, Value::Local(slice(buf, idx + 3 + nl, vl)?.to_vec()))
        } else {
            let blk = be_u32(buf, idx)?;
            let len = be_u32(buf, idx + 4)?;
            let nl = usize::from(u8_at(buf, idx + 8)?);
            (slice(buf, idx + 9, nl)?, Value::Remote { blk, len })
        };
        if let Some(n) = full_name(flags, name) {
            out.push((n, value));
        }
    }
    Ok(AttrBlock::Leaf(out, be_u32(buf, 0)?))
}

/// Bytes of value data one remote block holds.
pub fn remote_payload(sb: &Superblock) -> usize {
    sb.block_size as usize - if sb.v5 { 56 } else { 0 }
}

/// The value bytes of one remote value block (`off` is the value offset it must hold).
pub fn parse_remote_block<'a>(
    sb: &Superblock,
    buf: &'a [u8],
    owner: u64,
    off: usize,
    want: usize,
) -> Result<&'a [u8]> {
    if !sb.v5 {
        return slice(buf, 0, want);
    }
    let bad = || {
        Error::BadImage(format!(
            "xfs: inode {owner}: bad remote attribute value block"
        ))
    };
    if be_u32(buf, 0)? != XARM {
        return Err(bad());
    }
    crc::verify(buf, 12, &format!("inode {owner} remote attribute block"))?;
    if be_u32(buf, 4)? as usize != off
        || be_u32(buf, 8)? as usize != want
        || slice(buf, 16, 16)? != sb.meta_uuid
        || be_u64(buf, 32)? != owner
    {
        return Err(bad());
    }
    slice(buf, 56, want)
}
