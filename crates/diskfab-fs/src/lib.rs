//! diskfab filesystem layer.
//!
//! Defines the [`Filesystem`] trait every filesystem driver implements (ext via libext2fs,
//! FAT, later ISO 9660 and NTFS), the [`FsDriver`] plug-in interface with `probe()`, and a
//! shared path resolver with chroot semantics.
#![deny(missing_docs)]

mod driver;
pub mod path;
#[cfg(test)]
mod testfs;
pub mod tree;
mod types;

pub use driver::{Filesystem, FsDriver, MkfsDriver, MkfsOptions};
pub use types::{
    DirEntry, FileLayout, FileType, FsInfo, Ino, Metadata, NewNode, SetAttr, Timespec,
};
