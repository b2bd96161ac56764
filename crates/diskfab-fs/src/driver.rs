//! The [`Filesystem`] trait and the [`FsDriver`] plug-in interface.

use crate::types::*;
use diskfab_storage::{DevRef, Error, Result};

/// An open filesystem. Inode-based, like FUSE's low-level API; path handling lives in
/// [`crate::path`] so every driver shares one resolver (with symlink loop limits).
///
/// Writes may be buffered by the driver; [`Filesystem::sync`] must be called before the
/// filesystem is dropped for changes to be durable. Drivers opened read-only return
/// [`Error::ReadOnly`] from every mutating method. Operations a filesystem cannot represent
/// (symlinks on FAT, ...) return [`Error::Unsupported`].
pub trait Filesystem: Send {
    /// Summary for `info`.
    fn info(&mut self) -> Result<FsInfo>;
    /// The root directory's inode.
    fn root(&self) -> Ino;
    /// Looks up `name` in directory `dir`.
    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>>;
    /// The node's attributes (never follows symlinks).
    fn getattr(&mut self, ino: Ino) -> Result<Metadata>;
    /// The entries of a directory, without `.` and `..`.
    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>>;
    /// A symlink's target.
    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>>;
    /// Reads from a regular file at `offset`; returns bytes read (0 at end of file).
    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Creates an empty regular file `name` in `dir`.
    fn create(&mut self, dir: Ino, name: &[u8], attr: &NewNode) -> Result<Ino>;
    /// Writes `data` into a regular file at `offset`, extending it as needed.
    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<()>;
    /// Changes attributes (permissions, owner, size, times).
    fn set_attr(&mut self, ino: Ino, attr: &SetAttr) -> Result<()>;
    /// Creates directory `name` in `dir`.
    fn mkdir(&mut self, dir: Ino, name: &[u8], attr: &NewNode) -> Result<Ino>;
    /// Creates symlink `name` in `dir` pointing at `target`.
    fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], attr: &NewNode) -> Result<Ino> {
        let _ = (dir, name, target, attr);
        Err(Error::Unsupported(
            "this filesystem has no symbolic links".into(),
        ))
    }
    /// Creates a device node, fifo or socket.
    fn mknod(
        &mut self,
        dir: Ino,
        name: &[u8],
        file_type: FileType,
        rdev: (u32, u32),
        attr: &NewNode,
    ) -> Result<Ino> {
        let _ = (dir, name, file_type, rdev, attr);
        Err(Error::Unsupported(
            "this filesystem has no device nodes".into(),
        ))
    }
    /// Adds a hard link `name` in `dir` to the existing non-directory `ino`.
    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> Result<()> {
        let _ = (ino, dir, name);
        Err(Error::Unsupported(
            "this filesystem has no hard links".into(),
        ))
    }
    /// Removes a non-directory entry (frees the inode when its last link goes).
    fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<()>;
    /// Removes an empty directory.
    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<()>;
    /// Renames/moves an entry; an existing non-directory target is replaced.
    fn rename(&mut self, dir: Ino, name: &[u8], new_dir: Ino, new_name: &[u8]) -> Result<()>;

    /// All extended attributes as (full name, value), e.g. `security.selinux`,
    /// `system.posix_acl_access` (in the kernel's xattr ACL encoding), `user.x`.
    fn list_xattrs(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _ = ino;
        Ok(Vec::new())
    }
    /// Sets one extended attribute.
    fn set_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        let _ = (ino, name, value);
        Err(Error::Unsupported(
            "this filesystem has no extended attributes".into(),
        ))
    }
    /// Removes one extended attribute.
    fn remove_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<()> {
        let _ = (ino, name);
        Err(Error::Unsupported(
            "this filesystem has no extended attributes".into(),
        ))
    }

    /// Writes all buffered changes to the device and flushes it.
    fn sync(&mut self) -> Result<()>;

    /// Pins the clock used for every timestamp the driver sets by itself (ctime on changes,
    /// the superblock's write time, ...); `None` = the real clock. Used for reproducible
    /// builds and for block-level replay, where two runs must write identical bytes.
    fn set_clock(&mut self, t: Option<Timespec>) {
        let _ = t;
    }

    /// Where a regular file's bytes and inode record live on the device, for block-level
    /// replay. `None` when the driver cannot say or the file is not a plain run of allocated
    /// blocks (inline data, holes, unwritten extents).
    fn file_layout(&mut self, ino: Ino) -> Result<Option<FileLayout>> {
        let _ = ino;
        Ok(None)
    }

    /// Every device byte range a regular file's contents depend on (inode record, extent-tree
    /// blocks, data blocks), for change detection between clones. `None` when unknown.
    fn content_ranges(&mut self, ino: Ino) -> Result<Option<Vec<(u64, u64)>>> {
        let _ = ino;
        Ok(None)
    }

    /// Rewrites the size field of the raw on-disk inode record `raw` (as read from
    /// [`FileLayout::inode_offset`]) to `size` and recomputes its checksum. `Ok(false)` when
    /// the driver cannot.
    fn patch_inode_size(&mut self, ino: Ino, raw: &mut [u8], size: u64) -> Result<bool> {
        let _ = (ino, raw, size);
        Ok(false)
    }
}

/// A filesystem driver: recognises its filesystem and opens it.
pub trait FsDriver: Sync {
    /// Short name, e.g. `ext` or `fat`.
    fn name(&self) -> &'static str;
    /// Cheap check of magic numbers; `Ok(Some(type))` (e.g. "ext4", "vfat") when recognised.
    /// Must not trust anything beyond the few bytes it reads.
    fn probe(&self, dev: &DevRef) -> Result<Option<String>>;
    /// Opens the filesystem on `dev`; read-only unless `writable`.
    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>>;
}

/// Options for [`MkfsDriver::mkfs`].
#[derive(Debug, Clone, Default)]
pub struct MkfsOptions {
    /// Volume label.
    pub label: Option<String>,
    /// Filesystem subtype: "ext2"/"ext3"/"ext4", or "fat12"/"fat16"/"fat32"/"vfat" (auto).
    pub fs_type: String,
    /// Fixed volume UUID / serial (for reproducible builds); random when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Creation timestamp (for reproducible builds); now when `None`.
    pub time: Option<i64>,
}

/// A driver that can create a fresh filesystem.
pub trait MkfsDriver: Sync {
    /// Formats the whole of `dev`.
    fn mkfs(&self, dev: DevRef, opts: &MkfsOptions) -> Result<()>;
}
