//! The [`BlockDev`] trait: a fixed-size, byte-addressed device.

use crate::error::{Error, Result};
use std::fmt::Debug;
use std::sync::Arc;

/// A shared handle to a block device.
pub type DevRef = Arc<dyn BlockDev>;

/// A fixed-size, byte-addressed random-access device.
///
/// Every layer above storage (image formats, partitions, filesystems) reads and writes through
/// this trait, so the same code runs on raw files, qcow2 overlays, partition slices and, later,
/// recording layers, NBD exports and object storage. Methods take `&self`; implementations use
/// interior mutability and must be safe to share between threads.
pub trait BlockDev: Send + Sync + Debug {
    /// The guest-visible size in bytes.
    fn size(&self) -> u64;

    /// Fills `buf` from `offset`. Reading past the end is an error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Writes `buf` at `offset`. Writing past the end is an error.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;

    /// Makes `len` bytes at `offset` read as zeroes, deallocating where the format can.
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        check_range(self.size(), offset, len)?;
        let chunk = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.write_at(&chunk[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Persists all writes made so far (metadata included).
    fn flush(&self) -> Result<()>;

    /// Whether writes are allowed.
    fn writable(&self) -> bool;

    /// Whether `len` bytes at `offset` are known to read as zeroes without reading them
    /// (unallocated or zero clusters). `false` means "unknown or data". Used for sparse copies.
    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        let _ = (offset, len);
        Ok(false)
    }
}

/// Checks that `[offset, offset+len)` lies inside a device of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::Invalid(format!(
            "access of {len} bytes at offset {offset} is beyond the device end ({size} bytes)"
        ))),
    }
}
