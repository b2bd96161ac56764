//! [`RecordingDev`]: a copy-on-write device in memory over a read-only base, which keeps every
//! write as whole chunks. Running a customization on it yields exactly the block-level writes
//! that customization makes — what `stamp` replays onto each clone.

use diskfab_storage::check_range;
use diskfab_storage::{BlockDev, DevRef, Error, Result};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Recorded writes: chunk-aligned byte offset → chunk contents.
pub type Writes = BTreeMap<u64, Vec<u8>>;

/// An in-memory overlay recording writes in `chunk`-byte units.
#[derive(Debug)]
pub struct RecordingDev {
    base: DevRef,
    chunk: u64,
    writes: Mutex<Writes>,
}

impl RecordingDev {
    /// An empty overlay over `base`; `chunk` is a power of two (the filesystem block size).
    pub fn new(base: DevRef, chunk: u64) -> Result<RecordingDev> {
        if !chunk.is_power_of_two() || !(512..=65536).contains(&chunk) {
            return Err(Error::Invalid(format!(
                "recording chunk {chunk} is not a power of two in 512..64K"
            )));
        }
        Ok(RecordingDev {
            base,
            chunk,
            writes: Mutex::new(BTreeMap::new()),
        })
    }

    /// The chunk size.
    pub fn chunk(&self) -> u64 {
        self.chunk
    }

    /// A copy of the writes so far.
    pub fn writes(&self) -> Result<Writes> {
        Ok(self.lock()?.clone())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Writes>> {
        self.writes
            .lock()
            .map_err(|_| Error::Failed("recording lock poisoned".into()))
    }
}

impl BlockDev for RecordingDev {
    fn size(&self) -> u64 {
        self.base.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let w = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let c = pos - pos % self.chunk;
            let within = (pos - c) as usize;
            let n = (self.chunk as usize - within).min(buf.len() - done);
            match w.get(&c) {
                Some(d) => buf[done..done + n].copy_from_slice(&d[within..within + n]),
                None => {
                    // Extend the base read over following unrecorded chunks.
                    let mut end = done + n;
                    while end < buf.len() && !w.contains_key(&(offset + end as u64)) {
                        end = (end + self.chunk as usize).min(buf.len());
                    }
                    self.base.read_at(&mut buf[done..end], pos)?;
                    done = end;
                    continue;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let mut w = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let c = pos - pos % self.chunk;
            let within = (pos - c) as usize;
            let n = (self.chunk as usize - within).min(buf.len() - done);
            let d = match w.entry(c) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let mut d = vec![0u8; self.chunk as usize];
                    if n < self.chunk as usize {
                        let len = (self.size() - c).min(self.chunk) as usize;
                        self.base.read_at(&mut d[..len], c)?;
                    }
                    v.insert(d)
                }
            };
            d[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn writable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diskfab_storage::MemDev;
    use std::sync::Arc;

    #[test]
    fn recording_keeps_whole_chunks_and_leaves_the_base_alone() {
        let base: DevRef = Arc::new(MemDev::from_vec(
            (0..16384u32).map(|i| i as u8).collect(),
            false,
        ));
        let r = RecordingDev::new(base.clone(), 4096).unwrap();
        r.write_at(&[0xee; 10], 4100).unwrap();
        let mut b = vec![0u8; 8192];
        r.read_at(&mut b, 2048).unwrap();
        assert_eq!(b[2052..2062], [0xee; 10]);
        assert_eq!(b[0], (2048u32 % 256) as u8);
        let w = r.writes().unwrap();
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), vec![4096]);
        assert_eq!(
            w[&4096][3],
            (4099u32 % 256) as u8,
            "rest of the chunk from the base"
        );
        let mut orig = [0u8; 1];
        base.read_at(&mut orig, 4100).unwrap();
        assert_eq!(orig[0], (4100u32 % 256) as u8);
    }
}
