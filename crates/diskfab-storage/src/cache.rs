//! [`CacheDev`]: a read-only device that keeps recently read blocks in memory — for workloads
//! that read the same metadata over and over (stamp plans thousands of instances against one
//! filesystem). Bounded in blocks; when full it is simply cleared.

use crate::dev::{check_range, BlockDev, DevRef};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Block size of the cache.
const BLOCK: u64 = 4096;

/// A read-only caching view of another device.
#[derive(Debug)]
pub struct CacheDev {
    inner: DevRef,
    max_blocks: usize,
    blocks: Mutex<HashMap<u64, Arc<[u8]>>>,
}

impl CacheDev {
    /// Caches up to `max_bytes` of `inner`.
    pub fn new(inner: DevRef, max_bytes: u64) -> CacheDev {
        CacheDev {
            inner,
            max_blocks: (max_bytes / BLOCK).max(16) as usize,
            blocks: Mutex::new(HashMap::new()),
        }
    }

    fn block(&self, b: u64) -> Result<Arc<[u8]>> {
        if let Some(d) = self
            .blocks
            .lock()
            .map_err(|_| Error::Failed("cache lock".into()))?
            .get(&b)
        {
            return Ok(d.clone());
        }
        let off = b * BLOCK;
        let len = (self.inner.size() - off).min(BLOCK) as usize;
        let mut d = vec![0u8; len];
        self.inner.read_at(&mut d, off)?;
        let d: Arc<[u8]> = d.into();
        let mut m = self
            .blocks
            .lock()
            .map_err(|_| Error::Failed("cache lock".into()))?;
        if m.len() >= self.max_blocks {
            m.clear();
        }
        m.insert(b, d.clone());
        Ok(d)
    }
}

impl BlockDev for CacheDev {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        // Large reads (file data) bypass the cache.
        if buf.len() as u64 > 4 * BLOCK {
            return self.inner.read_at(buf, offset);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let d = self.block(pos / BLOCK)?;
            let within = (pos % BLOCK) as usize;
            let n = (d.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&d[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> Result<()> {
        Err(Error::ReadOnly("caching view".into()))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn writable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDev;

    #[test]
    fn cached_reads_equal_the_device_and_writes_are_refused() {
        let data: Vec<u8> = (0..20000u32).map(|i| (i * 7) as u8).collect();
        let c = CacheDev::new(Arc::new(MemDev::from_vec(data.clone(), false)), 1 << 20);
        for (off, len) in [(0, 10), (4090, 20), (19990, 10), (100, 17000)] {
            let mut b = vec![0u8; len];
            c.read_at(&mut b, off as u64).unwrap();
            assert_eq!(b, data[off..off + len]);
        }
        assert!(c.write_at(&[1], 0).is_err());
        assert!(c.read_at(&mut [0u8; 2], 19999).is_err());
    }
}
