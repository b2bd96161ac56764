//! Item payloads: inodes, directory entries and xattrs, file extents, root items.

use crate::key::Key;
use diskfab_fs::{FileType, Timespec};
use diskfab_storage::bytes::{le_u16, le_u32, le_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// The parts of an inode item the driver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    /// Size in bytes.
    pub size: u64,
    /// Allocated bytes.
    pub nbytes: u64,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode.
    pub mode: u32,
    /// Device number, kernel encoding (major << 20 | minor).
    pub rdev: u64,
    /// Access time.
    pub atime: Timespec,
    /// Change time.
    pub ctime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
}

fn timespec(b: &[u8], off: usize) -> Result<Timespec> {
    Ok(Timespec {
        sec: le_u64(b, off)? as i64,
        nsec: le_u32(b, off + 8)?.min(999_999_999),
    })
}

/// Decodes an inode item (also the first 160 bytes of a root item).
pub fn parse_inode(b: &[u8]) -> Result<Inode> {
    slice(b, 0, 160)?;
    Ok(Inode {
        size: le_u64(b, 16)?,
        nbytes: le_u64(b, 24)?,
        nlink: le_u32(b, 40)?,
        uid: le_u32(b, 44)?,
        gid: le_u32(b, 48)?,
        mode: le_u32(b, 52)?,
        rdev: le_u64(b, 56)?,
        atime: timespec(b, 112)?,
        ctime: timespec(b, 124)?,
        mtime: timespec(b, 136)?,
    })
}

/// One entry of a `DIR_ITEM`, `DIR_INDEX` or `XATTR_ITEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Where it points: an inode item in the same tree, or a root item (a subvolume).
    pub location: Key,
    /// The btrfs file type byte.
    pub ty: u8,
    /// The name.
    pub name: Vec<u8>,
    /// The value (xattrs only).
    pub data: Vec<u8>,
}

/// Longest name a directory entry or xattr may have.
const MAX_NAME: usize = 255;

/// Decodes every entry packed in one item.
pub fn parse_dir_entries(b: &[u8]) -> Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let location = Key::parse(b, off)?;
        let data_len = usize::from(le_u16(b, off + 25)?);
        let name_len = usize::from(le_u16(b, off + 27)?);
        let ty = u8_at(b, off + 29)?;
        if name_len == 0 || name_len > MAX_NAME {
            return Err(Error::bad(format!(
                "btrfs directory entry name of {name_len} bytes"
            )));
        }
        let name = slice(b, off + 30, name_len)?.to_vec();
        let data = slice(b, off + 30 + name_len, data_len)?.to_vec();
        off += 30 + name_len + data_len;
        out.push(DirEntry {
            location,
            ty,
            name,
            data,
        });
    }
    Ok(out)
}

/// The file type a directory entry's type byte names.
pub fn entry_type(ty: u8) -> Option<FileType> {
    Some(match ty {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => return None,
    })
}

/// Compression of an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// zlib stream.
    Zlib,
    /// btrfs' framing of LZO1X segments.
    Lzo,
    /// zstd frame.
    Zstd,
}

/// Where an extent's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentData {
    /// Inline in the item (possibly compressed).
    Inline(Vec<u8>),
    /// On disk: the whole (possibly compressed) extent, and the window of its decoded bytes
    /// this file range uses. `disk_bytenr` 0 is a hole.
    Regular {
        /// Logical address of the extent.
        disk_bytenr: u64,
        /// Its length on disk.
        disk_num_bytes: u64,
        /// Offset into the decoded extent.
        offset: u64,
    },
    /// Preallocated, reads as zeroes.
    Prealloc,
}

/// A file extent item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Decoded size of the whole extent.
    pub ram_bytes: u64,
    /// Compression.
    pub compression: Compression,
    /// Bytes of the file this item covers (for inline: the decoded length).
    pub num_bytes: u64,
    /// Where the bytes are.
    pub data: ExtentData,
}

/// Decodes a file extent item.
pub fn parse_extent(b: &[u8]) -> Result<Extent> {
    let ram_bytes = le_u64(b, 8)?;
    let compression = match u8_at(b, 16)? {
        0 => Compression::None,
        1 => Compression::Zlib,
        2 => Compression::Lzo,
        3 => Compression::Zstd,
        n => {
            return Err(Error::Unsupported(format!(
                "btrfs extent compression type {n} is not supported"
            )))
        }
    };
    if u8_at(b, 17)? != 0 || le_u16(b, 18)? != 0 {
        return Err(Error::Unsupported(
            "encrypted or otherwise encoded btrfs extents are not supported".into(),
        ));
    }
    let ty = u8_at(b, 20)?;
    if ty == 0 {
        let inline = slice(b, 21, b.len().saturating_sub(21))?.to_vec();
        let num_bytes = if compression == Compression::None {
            inline.len() as u64
        } else {
            ram_bytes
        };
        return Ok(Extent {
            ram_bytes,
            compression,
            num_bytes,
            data: ExtentData::Inline(inline),
        });
    }
    let disk_bytenr = le_u64(b, 21)?;
    let disk_num_bytes = le_u64(b, 29)?;
    let offset = le_u64(b, 37)?;
    let num_bytes = le_u64(b, 45)?;
    let data = match ty {
        1 => ExtentData::Regular {
            disk_bytenr,
            disk_num_bytes,
            offset,
        },
        2 => ExtentData::Prealloc,
        n => return Err(Error::bad(format!("btrfs file extent of type {n}"))),
    };
    Ok(Extent {
        ram_bytes,
        compression,
        num_bytes,
        data,
    })
}

/// A root item: where a tree's root node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootItem {
    /// Logical address of the root node.
    pub bytenr: u64,
    /// Its level.
    pub level: u8,
    /// The tree's root directory (256 for subvolumes).
    pub root_dirid: u64,
}

/// Decodes a root item.
pub fn parse_root_item(b: &[u8]) -> Result<RootItem> {
    Ok(RootItem {
        root_dirid: le_u64(b, 168)?,
        bytenr: le_u64(b, 176)?,
        level: u8_at(b, 238)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_items_pack_several_entries_and_refuse_overruns() {
        let mut b = Vec::new();
        for (name, data) in [(&b"a"[..], &b""[..]), (b"user.x", b"value")] {
            b.extend_from_slice(&257u64.to_le_bytes());
            b.push(1);
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&7u64.to_le_bytes());
            b.extend_from_slice(&(data.len() as u16).to_le_bytes());
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.push(1);
            b.extend_from_slice(name);
            b.extend_from_slice(data);
        }
        let e = parse_dir_entries(&b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].name.as_slice(), e[1].data.as_slice()),
            (&b"user.x"[..], &b"value"[..])
        );
        assert!(parse_dir_entries(&b[..b.len() - 1]).is_err());
    }
}
