//! Plain data types exchanged through the [`crate::Filesystem`] trait.

use serde::Serialize;

/// An inode number (or a driver-specific stable node id for filesystems without inodes).
pub type Ino = u64;

/// The type of a filesystem node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device node.
    CharDevice,
    /// Block device node.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits for this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }

    /// The type encoded in the `S_IFMT` bits of `mode`, if valid.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => return None,
        })
    }

    /// One character as `ls -l` prints it.
    pub fn ls_char(self) -> char {
        match self {
            FileType::Regular => '-',
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
        }
    }
}

/// A point in time: seconds since the Unix epoch plus nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Timespec {
    /// Seconds since 1970-01-01T00:00:00Z (may be negative).
    pub sec: i64,
    /// Nanoseconds, 0..1e9.
    pub nsec: u32,
}

/// The attributes of a node (what `lstat` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Inode number.
    pub ino: Ino,
    /// Node type.
    pub file_type: FileType,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub perm: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (target length for symlinks).
    pub size: u64,
    /// Hard link count.
    pub nlink: u32,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
    /// Device number for device nodes: (major, minor).
    pub rdev: (u32, u32),
    /// Bytes actually allocated on disk (for sparse files).
    pub allocated: u64,
}

impl Metadata {
    /// Full `st_mode` (type bits and permission bits).
    pub fn mode(&self) -> u32 {
        self.file_type.mode_bits() | (self.perm & 0o7777)
    }
}

/// One directory entry (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, raw bytes (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// The inode it points to.
    pub ino: Ino,
    /// Its type.
    pub file_type: FileType,
}

/// Attributes for a node being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNode {
    /// Permission bits (`& 0o7777`).
    pub perm: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification/access/change time to set; `None` = now.
    pub time: Option<Timespec>,
}

impl NewNode {
    /// root-owned node with the given permissions.
    pub fn root(perm: u32) -> Self {
        NewNode {
            perm,
            uid: 0,
            gid: 0,
            time: None,
        }
    }
}

/// Attribute changes; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub perm: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with a hole); regular files only.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<Timespec>,
    /// New modification time.
    pub mtime: Option<Timespec>,
}

/// Summary of a filesystem, for `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// Type name as `blkid` prints it: ext2, ext3, ext4, vfat, ...
    pub fs_type: String,
    /// Volume label, if any.
    pub label: Option<String>,
    /// Volume UUID (or FAT serial as XXXX-XXXX), if any.
    pub uuid: Option<String>,
    /// Allocation unit in bytes.
    pub block_size: u32,
    /// Total size in bytes.
    pub total_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
    /// True when a journal needs recovery (the filesystem was not cleanly unmounted).
    pub needs_recovery: bool,
    /// Feature names (e.g. ext4 feature flags, FAT32).
    pub features: Vec<String>,
}

/// Where a regular file lives on its device (see [`crate::Filesystem::file_layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    /// Byte offset of the file's on-disk inode record.
    pub inode_offset: u64,
    /// Length of that record in bytes.
    pub inode_len: u32,
    /// Filesystem block size.
    pub block_size: u32,
    /// Device byte offset of each data block, in file order.
    pub blocks: Vec<u64>,
}
