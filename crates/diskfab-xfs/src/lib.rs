//! diskfab XFS driver: our own reader for XFS v4 and v5 (no maintained Rust XFS library
//! exists). Every v5 metadata block's CRC and self-description (UUID, owner, block number) is
//! checked; every count, depth and chain is bounded. A filesystem whose log is not clean is
//! refused (see [`log`]). Writing is refused.
#![deny(missing_docs)]

mod attr;
mod bmbt;
mod crc;
mod dir;
mod fs;
mod fuzz;
mod inode;
mod io;
pub mod log;
mod sb;

pub use fs::XfsFs;

use diskfab_fs::{Filesystem, FsDriver};
use diskfab_storage::{DevRef, Error, Result};

/// Fuzzing entry point: a superblock sector followed by blocks, each parsed as every kind of
/// metadata block (see the `fuzz` module). Must never panic; returns how many structures parsed.
#[doc(hidden)]
pub fn fuzz_xfs(data: &[u8]) -> usize {
    fuzz::run(data)
}

/// The XFS driver.
pub struct XfsDriver;

impl FsDriver for XfsDriver {
    fn name(&self) -> &'static str {
        "xfs"
    }

    fn probe(&self, dev: &DevRef) -> Result<Option<String>> {
        if dev.size() < 512 {
            return Ok(None);
        }
        let mut s = [0u8; 4];
        dev.read_at(&mut s, 0)?;
        Ok((u32::from_be_bytes(s) == sb::SB_MAGIC).then(|| "xfs".to_string()))
    }

    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>> {
        if writable {
            return Err(Error::Unsupported(
                "xfs: writing XFS is not supported yet (read-only: ls, cat, inspect, diff and \
                 copy-out work)"
                    .into(),
            ));
        }
        Ok(Box::new(XfsFs::open(dev)?))
    }
}
