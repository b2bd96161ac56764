//! [`Slice`]: a window `[offset, offset+len)` of another device (a partition).

use crate::dev::{check_range, BlockDev, DevRef};
use crate::error::{Error, Result};

/// A sub-range of another device, e.g. one partition of a disk.
#[derive(Debug, Clone)]
pub struct Slice {
    inner: DevRef,
    offset: u64,
    len: u64,
}

impl Slice {
    /// A window of `len` bytes at `offset` of `inner`; fails if it does not fit.
    pub fn new(inner: DevRef, offset: u64, len: u64) -> Result<Self> {
        match offset.checked_add(len) {
            Some(end) if end <= inner.size() => Ok(Slice { inner, offset, len }),
            _ => Err(Error::bad(format!(
                "range of {len} bytes at offset {offset} is beyond the disk end ({} bytes)",
                inner.size()
            ))),
        }
    }

    /// Start of the window in the parent device.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl BlockDev for Slice {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.read_at(buf, self.offset + offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.write_at(buf, self.offset + offset)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        check_range(self.len, offset, len)?;
        self.inner.write_zeroes(self.offset + offset, len)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn writable(&self) -> bool {
        self.inner.writable()
    }
    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        check_range(self.len, offset, len)?;
        self.inner.is_zero_hint(self.offset + offset, len)
    }
}
