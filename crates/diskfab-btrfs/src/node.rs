//! Tree nodes: the header, leaf items and interior key pointers, verified before use.

use crate::csum::CsumType;
use crate::key::{Key, KEY_SIZE};
use diskfab_storage::bytes::{array, le_u32, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Size of a node header.
pub const HEADER_SIZE: usize = 101;
const ITEM_SIZE: usize = KEY_SIZE + 8;
const PTR_SIZE: usize = KEY_SIZE + 16;
/// Deepest tree btrfs builds (`BTRFS_MAX_LEVEL` is 8: levels 0..=7).
pub const MAX_LEVEL: u8 = 7;

/// What a node must be, checked against its header.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Logical address it was read from.
    pub bytenr: u64,
    /// Its level, when the parent says.
    pub level: Option<u8>,
    /// Checksum algorithm.
    pub csum: CsumType,
    /// The metadata UUID every node carries.
    pub fsid: &'a [u8; 16],
}

/// A verified node.
#[derive(Debug, Clone)]
pub struct Node {
    /// 0 for leaves.
    pub level: u8,
    /// Leaf items: key and the byte range of its data inside the node.
    pub items: Vec<(Key, std::ops::Range<usize>)>,
    /// Interior pointers: first key of the child and its logical address.
    pub ptrs: Vec<(Key, u64)>,
    /// The node's bytes.
    pub data: Vec<u8>,
}

impl Node {
    /// Item `i`'s data.
    pub fn item_data(&self, i: usize) -> &[u8] {
        self.items
            .get(i)
            .and_then(|(_, r)| self.data.get(r.clone()))
            .unwrap_or(&[])
    }
}

/// Verifies and decodes a node.
pub fn parse(data: Vec<u8>, exp: &Expect) -> Result<Node> {
    let at = exp.bytenr;
    let hdr = slice(&data, 0, HEADER_SIZE)?;
    if !exp.csum.matches(&data[0x20..], &hdr[..0x20]) {
        return Err(Error::bad(format!(
            "btrfs tree node at {at}: checksum mismatch"
        )));
    }
    if &array::<16>(hdr, 0x20)? != exp.fsid {
        return Err(Error::bad(format!("btrfs tree node at {at}: foreign fsid")));
    }
    let bytenr = le_u64(hdr, 0x30)?;
    if bytenr != at {
        return Err(Error::bad(format!(
            "btrfs tree node at {at} claims address {bytenr}"
        )));
    }
    let level = u8_at(hdr, 0x64)?;
    if level > MAX_LEVEL {
        return Err(Error::bad(format!(
            "btrfs tree node at {at} has level {level} (at most {MAX_LEVEL})"
        )));
    }
    if let Some(l) = exp.level.filter(|&l| l != level) {
        return Err(Error::bad(format!(
            "btrfs tree node at {at} has level {level}, its parent says {l}"
        )));
    }
    let n = le_u32(hdr, 0x60)? as usize;
    let body = data.len() - HEADER_SIZE;
    let (mut items, mut ptrs) = (Vec::new(), Vec::new());
    if level == 0 {
        if n > body / ITEM_SIZE {
            return Err(bad_count(at, n));
        }
        items.reserve(n);
        for i in 0..n {
            let o = HEADER_SIZE + i * ITEM_SIZE;
            let key = Key::parse(&data, o)?;
            let off = le_u32(&data, o + KEY_SIZE)? as usize;
            let len = le_u32(&data, o + KEY_SIZE + 4)? as usize;
            let start = HEADER_SIZE + off;
            let end = start.checked_add(len).filter(|&e| e <= data.len());
            let Some(end) = end.filter(|_| start >= HEADER_SIZE + n * ITEM_SIZE) else {
                return Err(Error::bad(format!(
                    "btrfs leaf at {at}: item {i} data out of the node"
                )));
            };
            items.push((key, start..end));
        }
        check_sorted(at, items.iter().map(|(k, _)| k))?;
    } else {
        if n == 0 || n > body / PTR_SIZE {
            return Err(bad_count(at, n));
        }
        ptrs.reserve(n);
        for i in 0..n {
            let o = HEADER_SIZE + i * PTR_SIZE;
            ptrs.push((Key::parse(&data, o)?, le_u64(&data, o + KEY_SIZE)?));
        }
        check_sorted(at, ptrs.iter().map(|(k, _)| k))?;
    }
    Ok(Node {
        level,
        items,
        ptrs,
        data,
    })
}

fn bad_count(at: u64, n: usize) -> Error {
    Error::bad(format!("btrfs tree node at {at}: {n} items do not fit"))
}

fn check_sorted<'a>(at: u64, keys: impl Iterator<Item = &'a Key>) -> Result<()> {
    let mut prev: Option<&Key> = None;
    for k in keys {
        if prev.is_some_and(|p| p >= k) {
            return Err(Error::bad(format!(
                "btrfs tree node at {at}: keys out of order"
            )));
        }
        prev = Some(k);
    }
    Ok(())
}
