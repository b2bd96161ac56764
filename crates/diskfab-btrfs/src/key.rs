//! Keys of btrfs B-tree items and the item types this driver reads.

use diskfab_storage::bytes::{le_u64, u8_at};
use diskfab_storage::Result;

/// `INODE_ITEM`: an inode's attributes.
pub const INODE_ITEM: u8 = 1;
/// `XATTR_ITEM`: extended attributes (dir-item layout).
pub const XATTR_ITEM: u8 = 24;
/// `DIR_ITEM`: directory entries keyed by name hash.
pub const DIR_ITEM: u8 = 84;
/// `DIR_INDEX`: directory entries keyed by creation order.
pub const DIR_INDEX: u8 = 96;
/// `EXTENT_DATA`: file extents keyed by file offset.
pub const EXTENT_DATA: u8 = 108;
/// `ROOT_ITEM`: where a tree's root node is.
pub const ROOT_ITEM: u8 = 132;
/// `CHUNK_ITEM`: a logical → physical mapping.
pub const CHUNK_ITEM: u8 = 228;

/// The top-level filesystem tree (subvolume id 5).
pub const FS_TREE: u64 = 5;
/// The root tree's directory holding the `default` entry.
pub const ROOT_TREE_DIR: u64 = 6;
/// Every subvolume's root directory inode.
pub const FIRST_FREE: u64 = 256;
/// The highest id a subvolume may have (`BTRFS_LAST_FREE_OBJECTID`).
pub const LAST_FREE: u64 = u64::MAX - 256;

/// On-disk size of a key.
pub const KEY_SIZE: usize = 17;

/// An item key, ordered as btrfs orders them: objectid, type, offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Object id (inode number, tree id, ...).
    pub objectid: u64,
    /// Item type.
    pub ty: u8,
    /// Type-specific offset (file offset, name hash, ...).
    pub offset: u64,
}

impl Key {
    /// A key from its parts.
    pub const fn new(objectid: u64, ty: u8, offset: u64) -> Key {
        Key {
            objectid,
            ty,
            offset,
        }
    }

    /// Decodes the 17-byte on-disk key at `off`.
    pub fn parse(buf: &[u8], off: usize) -> Result<Key> {
        Ok(Key {
            objectid: le_u64(buf, off)?,
            ty: u8_at(buf, off + 8)?,
            offset: le_u64(buf, off + 9)?,
        })
    }
}
