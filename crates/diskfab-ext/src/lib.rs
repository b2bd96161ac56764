//! diskfab ext2/3/4 driver: libext2fs from e2fsprogs (the reference implementation) through a
//! small safe wrapper. All block I/O goes through diskfab's storage layer via a Rust
//! `io_manager` ([`io`]), so the same code works on raw files, qcow2 overlays and partitions.
#![deny(missing_docs)]

mod fs;
pub mod io;
mod layout;
mod map;
mod mkfs;
mod read;
mod sbcheck;
mod sys;
mod write;
mod xattr;

pub use fs::ExtFs;

use diskfab_fs::{
    DirEntry, FileType, Filesystem, FsDriver, FsInfo, Ino, Metadata, MkfsDriver, MkfsOptions,
    NewNode, SetAttr,
};
use diskfab_storage::{DevRef, Error, Result};

/// The ext2/3/4 driver.
pub struct ExtDriver;

/// Reads the superblock magic and feature words; `Some(type)` for ext2/ext3/ext4.
pub fn probe_bytes(sb: &[u8]) -> Option<&'static str> {
    if sb.len() < 104 || sb[56] != 0x53 || sb[57] != 0xef {
        return None;
    }
    let w = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    Some(fs::type_from_features(w(92), w(96), w(100)))
}

impl FsDriver for ExtDriver {
    fn name(&self) -> &'static str {
        "ext"
    }

    fn probe(&self, dev: &DevRef) -> Result<Option<String>> {
        if dev.size() < 2048 {
            return Ok(None);
        }
        let mut sb = vec![0u8; 1024];
        dev.read_at(&mut sb, 1024)?;
        Ok(probe_bytes(&sb).map(str::to_string))
    }

    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>> {
        Ok(Box::new(ExtFs::open(dev, writable)?))
    }
}

impl MkfsDriver for ExtDriver {
    fn mkfs(&self, dev: DevRef, opts: &MkfsOptions) -> Result<()> {
        mkfs::mkfs(dev, opts)
    }
}

impl Filesystem for ExtFs {
    fn info(&mut self) -> Result<FsInfo> {
        Ok(self.fs_info())
    }
    fn root(&self) -> Ino {
        2
    }
    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        self.do_lookup(dir, name)
    }
    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        let mut i = self.read_inode(ino)?;
        self.meta(ino, &mut i)
    }
    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        self.do_read_dir(dir)
    }
    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>> {
        self.do_read_link(ino)
    }
    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.do_read(ino, offset, buf)
    }
    fn create(&mut self, dir: Ino, name: &[u8], attr: &NewNode) -> Result<Ino> {
        self.map_cache = None;
        self.new_node(dir, name, FileType::Regular, attr, (0, 0))
    }
    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_write(ino, offset, data)
    }
    fn set_attr(&mut self, ino: Ino, attr: &SetAttr) -> Result<()> {
        self.map_cache = None;
        self.do_set_attr(ino, attr)
    }
    fn mkdir(&mut self, dir: Ino, name: &[u8], attr: &NewNode) -> Result<Ino> {
        self.map_cache = None;
        self.do_mkdir(dir, name, attr)
    }
    fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], attr: &NewNode) -> Result<Ino> {
        self.map_cache = None;
        self.do_symlink(dir, name, target, attr)
    }
    fn mknod(
        &mut self,
        dir: Ino,
        name: &[u8],
        file_type: FileType,
        rdev: (u32, u32),
        attr: &NewNode,
    ) -> Result<Ino> {
        self.map_cache = None;
        match file_type {
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
                self.new_node(dir, name, file_type, attr, rdev)
            }
            _ => Err(Error::Invalid(
                "mknod makes devices, fifos and sockets only".into(),
            )),
        }
    }
    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_link(ino, dir, name)
    }
    fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_unlink(dir, name)
    }
    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_rmdir(dir, name)
    }
    fn rename(&mut self, dir: Ino, name: &[u8], new_dir: Ino, new_name: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_rename(dir, name, new_dir, new_name)
    }
    fn list_xattrs(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.do_list_xattrs(ino)
    }
    fn set_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_set_xattr(ino, name, value)
    }
    fn remove_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<()> {
        self.map_cache = None;
        self.do_remove_xattr(ino, name)
    }
    fn sync(&mut self) -> Result<()> {
        self.flush()
    }
    fn set_clock(&mut self, t: Option<diskfab_fs::Timespec>) {
        self.set_clock_to(t)
    }
    fn file_layout(&mut self, ino: Ino) -> Result<Option<diskfab_fs::FileLayout>> {
        self.do_file_layout(ino)
    }
    fn content_ranges(&mut self, ino: Ino) -> Result<Option<Vec<(u64, u64)>>> {
        self.do_content_ranges(ino)
    }
    fn patch_inode_size(&mut self, ino: Ino, raw: &mut [u8], size: u64) -> Result<bool> {
        self.do_patch_inode_size(ino, raw, size)
    }
}
