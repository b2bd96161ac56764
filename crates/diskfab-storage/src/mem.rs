//! [`MemDev`]: an in-memory device, for tests and small scratch images.

use crate::dev::{check_range, BlockDev};
use crate::error::{Error, Result};
use std::sync::RwLock;

/// A device backed by a `Vec<u8>`.
#[derive(Debug)]
pub struct MemDev {
    data: RwLock<Vec<u8>>,
    writable: bool,
}

impl MemDev {
    /// A zero-filled writable device of `size` bytes.
    pub fn new(size: usize) -> Self {
        Self::from_vec(vec![0; size], true)
    }

    /// A device holding `data`.
    pub fn from_vec(data: Vec<u8>, writable: bool) -> Self {
        MemDev {
            data: RwLock::new(data),
            writable,
        }
    }

    /// A copy of the contents.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data.read().map(|d| d.clone()).unwrap_or_default()
    }
}

impl BlockDev for MemDev {
    fn size(&self) -> u64 {
        self.data.read().map(|d| d.len() as u64).unwrap_or(0)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let d = self
            .data
            .read()
            .map_err(|_| Error::Failed("memory device lock poisoned".into()))?;
        check_range(d.len() as u64, offset, buf.len() as u64)?;
        let o = offset as usize;
        buf.copy_from_slice(&d[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly("memory device".into()));
        }
        let mut d = self
            .data
            .write()
            .map_err(|_| Error::Failed("memory device lock poisoned".into()))?;
        check_range(d.len() as u64, offset, buf.len() as u64)?;
        let o = offset as usize;
        d[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    fn writable(&self) -> bool {
        self.writable
    }
}
