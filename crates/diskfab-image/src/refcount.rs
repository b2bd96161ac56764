//! qcow2 refcount table and blocks: loading with validation, and 16-bit updates for writes.

use crate::header::Qcow2Header;
use crate::host::Host;
use diskfab_storage::limits::alloc_bytes;
use diskfab_storage::{Error, Result};
use std::collections::HashMap;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// The refcount table with a cache of refcount blocks.
#[derive(Debug)]
pub struct Refcounts {
    table: Vec<u64>,
    table_off: u64,
    blocks: HashMap<u64, Vec<u8>>,
}

impl Refcounts {
    /// Reads and validates the refcount table: every block it names must be aligned and inside
    /// the file.
    pub fn load(host: &Host, hdr: &Qcow2Header, file_len: u64) -> Result<Self> {
        let cs = hdr.cluster_size();
        let bytes = u64::from(hdr.refcount_table_clusters) * cs;
        if hdr.refcount_table_offset.saturating_add(bytes) > file_len.div_ceil(cs) * cs {
            return Err(Error::bad(format!(
                "{}: refcount table lies past the end of the file",
                host.path.display()
            )));
        }
        let mut raw = alloc_bytes(bytes, "the qcow2 refcount table")?;
        host.read(&mut raw, hdr.refcount_table_offset)?;
        let table: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        for (i, e) in table.iter().enumerate() {
            let off = e & OFFSET_MASK;
            if *e & !OFFSET_MASK != 0 || !off.is_multiple_of(cs) || off >= file_len && off != 0 {
                return Err(Error::bad(format!(
                    "{}: refcount table entry {i} ({e:#x}) is corrupt (unaligned or past the end of the file)",
                    host.path.display()
                )));
            }
        }
        Ok(Refcounts {
            table,
            table_off: hdr.refcount_table_offset,
            blocks: HashMap::new(),
        })
    }

    fn block(&mut self, host: &Host, hdr: &Qcow2Header, off: u64) -> Result<&mut Vec<u8>> {
        if !self.blocks.contains_key(&off) {
            // At most 32 MiB (and at least 16 blocks) of refcount blocks in memory.
            if self.blocks.len() as u64 >= ((32 << 20) >> hdr.cluster_bits).max(16) {
                self.blocks.clear();
            }
            let mut b = vec![0u8; hdr.cluster_size() as usize];
            host.read(&mut b, off)?;
            self.blocks.insert(off, b);
        }
        self.blocks
            .get_mut(&off)
            .ok_or_else(|| Error::Failed("refcount cache".into()))
    }

    /// The refcount of the host cluster at `off` (16-bit refcounts only).
    pub fn get(&mut self, host: &Host, hdr: &Qcow2Header, off: u64) -> Result<u64> {
        let cs = hdr.cluster_size();
        let per = hdr.refblock_entries();
        let idx = off / cs;
        let Some(&b) = self.table.get((idx / per) as usize) else {
            return Ok(0);
        };
        if b & OFFSET_MASK == 0 {
            return Ok(0);
        }
        let blk = self.block(host, hdr, b & OFFSET_MASK)?;
        let i = ((idx % per) * 2) as usize;
        Ok(u64::from(u16::from_be_bytes([blk[i], blk[i + 1]])))
    }

    /// Sets the refcount of the host cluster at `off`, allocating refcount blocks (and growing
    /// the table) at `*file_len` as needed.
    pub fn set(
        &mut self,
        host: &Host,
        hdr: &Qcow2Header,
        file_len: &mut u64,
        off: u64,
        val: u64,
    ) -> Result<()> {
        self.set_run(host, hdr, file_len, off, 1, val)
    }

    /// Returns the refcount block covering table index `bi`, growing the table and allocating
    /// the block at `*file_len` when missing.
    fn ensure_block(
        &mut self,
        host: &Host,
        hdr: &Qcow2Header,
        file_len: &mut u64,
        bi: usize,
    ) -> Result<u64> {
        let cs = hdr.cluster_size();
        if bi >= self.table.len() {
            self.grow(host, hdr, file_len, bi + 1)?;
        }
        if self.table[bi] & OFFSET_MASK == 0 {
            let boff = *file_len;
            *file_len += cs;
            let zero = vec![0u8; cs as usize];
            host.write(&zero, boff)?;
            self.blocks.insert(boff, zero);
            self.table[bi] = boff;
            host.write(&boff.to_be_bytes(), self.table_off + bi as u64 * 8)?;
            self.set(host, hdr, file_len, boff, 1)?;
        }
        Ok(self.table[bi] & OFFSET_MASK)
    }

    /// Sets the refcount of `n` consecutive host clusters from `off`, one write per block.
    pub fn set_run(
        &mut self,
        host: &Host,
        hdr: &Qcow2Header,
        file_len: &mut u64,
        off: u64,
        n: u64,
        val: u64,
    ) -> Result<()> {
        let cs = hdr.cluster_size();
        let per = hdr.refblock_entries();
        let v = u16::try_from(val).map_err(|_| Error::Failed("refcount overflow".into()))?;
        let mut idx = off / cs;
        let end = idx + n;
        while idx < end {
            let bi = (idx / per) as usize;
            let stop = end.min((bi as u64 + 1) * per);
            let b = self.ensure_block(host, hdr, file_len, bi)?;
            let (i0, i1) = (
                ((idx % per) * 2) as usize,
                (((stop - 1) % per) * 2 + 2) as usize,
            );
            let blk = self.block(host, hdr, b)?;
            for e in blk[i0..i1].chunks_exact_mut(2) {
                e.copy_from_slice(&v.to_be_bytes());
            }
            let bytes = blk[i0..i1].to_vec();
            host.write(&bytes, b + i0 as u64)?;
            idx = stop;
        }
        Ok(())
    }

    /// Decrements the refcount of the cluster at `off`; a zero refcount is corruption.
    pub fn decrement(
        &mut self,
        host: &Host,
        hdr: &Qcow2Header,
        file_len: &mut u64,
        off: u64,
    ) -> Result<()> {
        let cur = self.get(host, hdr, off)?;
        if cur == 0 {
            return Err(Error::bad(format!(
                "{}: refcount of cluster {off:#x} is already zero (refcount corruption)",
                host.path.display()
            )));
        }
        self.set(host, hdr, file_len, off, cur - 1)
    }

    /// Moves the refcount table to a larger one at the end of the file.
    fn grow(
        &mut self,
        host: &Host,
        hdr: &Qcow2Header,
        file_len: &mut u64,
        min_entries: usize,
    ) -> Result<()> {
        let cs = hdr.cluster_size();
        let per = hdr.refblock_entries();
        let mut entries = min_entries.max(self.table.len() * 2);
        let new_off = *file_len;
        let clusters = loop {
            let clusters = (entries as u64 * 8).div_ceil(cs);
            // The new table and a refcount block for it must be covered by the table itself.
            let needed = ((new_off / cs + clusters + 2) / per + 1) as usize;
            if needed <= entries {
                break clusters;
            }
            entries = needed;
        };
        if clusters * cs > crate::header::MAX_REFTABLE_BYTES * 8 {
            return Err(Error::NoSpace(
                "qcow2 refcount table would exceed 64 MiB".into(),
            ));
        }
        *file_len += clusters * cs;
        let mut table = self.table.clone();
        table.resize((clusters * cs / 8) as usize, 0);
        let mut raw = Vec::with_capacity((clusters * cs) as usize);
        for e in &table {
            raw.extend_from_slice(&e.to_be_bytes());
        }
        host.write(&raw, new_off)?;
        host.sync()?;
        let mut h = [0u8; 12];
        h[..8].copy_from_slice(&new_off.to_be_bytes());
        h[8..].copy_from_slice(&(clusters as u32).to_be_bytes());
        host.write(&h, 48)?;
        let old_off = self.table_off;
        let old_clusters = (self.table.len() as u64 * 8).div_ceil(cs);
        self.table = table;
        self.table_off = new_off;
        for c in 0..clusters {
            self.set(host, hdr, file_len, new_off + c * cs, 1)?;
        }
        for c in 0..old_clusters {
            self.decrement(host, hdr, file_len, old_off + c * cs)?;
        }
        host.punch(old_off, old_clusters * cs)?;
        Ok(())
    }
}
