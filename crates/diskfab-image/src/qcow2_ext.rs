//! Extended L2 entries: each cluster has 32 subclusters, each data, zero or unallocated (read
//! from the backing file), as the 64-bit bitmap after the L2 entry says (bits 0..31 allocated,
//! bits 32..63 reads as zeroes). Bitmaps QEMU calls invalid are corruption here too.

use super::{Map, Qcow2Dev, State, COMPRESSED, COPIED, OFFSET_MASK};
use diskfab_storage::{Error, Result};

/// Bitmap with every subcluster allocated.
pub(super) const ALL_ALLOC: u64 = 0xffff_ffff;
/// Bitmap with every subcluster reading as zeroes.
const ALL_ZERO: u64 = 0xffff_ffff << 32;

/// What is wrong with an extended L2 entry and its bitmap, if anything (pure; used by the
/// engine and by `check`).
/// `data_file`: the image has an external data file, where offset 0 with COPIED is a cluster.
pub(crate) fn invalid_bitmap(e: u64, bitmap: u64, data_file: bool) -> Option<&'static str> {
    if e & COMPRESSED != 0 {
        return (bitmap != 0).then_some("compressed cluster with a non-zero subcluster bitmap");
    }
    if (bitmap >> 32) & bitmap & ALL_ALLOC != 0 {
        return Some("subcluster both allocated and reading as zeroes");
    }
    let no_host = e & OFFSET_MASK == 0 && !(data_file && e & COPIED != 0);
    if no_host && bitmap & ALL_ALLOC != 0 {
        return Some("allocated subclusters in a cluster without a host cluster");
    }
    None
}

/// Bits `s0..=s1` of a 32-bit subcluster mask.
fn mask(s0: u64, s1: u64) -> u64 {
    (ALL_ALLOC >> (31 - (s1 - s0))) << s0
}

impl Qcow2Dev {
    /// Decodes subcluster `sub` of an extended L2 entry.
    pub(super) fn decode_ext(&self, e: u64, bitmap: u64, sub: u32, file_len: u64) -> Result<Map> {
        if let Some(why) = invalid_bitmap(e, bitmap, self.hdr.data_file.is_some()) {
            return Err(self.bad(format!("L2 entry {e:#x} bitmap {bitmap:#x}: {why}")));
        }
        if e & COMPRESSED != 0 {
            return self.decode(e, file_len);
        }
        let host = self.data_host(e, file_len)?;
        if bitmap >> (32 + sub) & 1 != 0 {
            return Ok(Map::Zero((host != 0).then_some(host)));
        }
        if bitmap >> sub & 1 != 0 {
            return Ok(Map::Data {
                host: host + (u64::from(sub) << self.hdr.unit_bits()),
                copied: e & COPIED != 0,
            });
        }
        Ok(Map::Unalloc)
    }

    /// The checked entry of cluster `vc` for a write: (entry, bitmap).
    fn ext_entry_for_write(&self, st: &mut State, vc: u64) -> Result<(u64, u64)> {
        let (e, bm) = self.entry(st, vc)?;
        if let Some(why) = invalid_bitmap(e, bm, false) {
            return Err(self.bad(format!("L2 entry {e:#x} bitmap {bm:#x}: {why}")));
        }
        if e & COMPRESSED == 0 && e & OFFSET_MASK != 0 && e & COPIED == 0 {
            return Err(Error::Unsupported(
                "writing a shared cluster (internal snapshots)".into(),
            ));
        }
        Ok((e, bm))
    }

    /// Replaces a compressed cluster by a plain one holding its content with `data` at `inner`.
    fn ext_rewrite_compressed(
        &self,
        st: &mut State,
        vc: u64,
        e: u64,
        inner: u64,
        data: &[u8],
    ) -> Result<()> {
        let cs = self.hdr.cluster_size();
        let mut full = vec![0u8; cs as usize];
        let old = self.decode(e, st.file_len)?;
        self.cluster_content(old, vc, &mut full)?;
        full[inner as usize..inner as usize + data.len()].copy_from_slice(data);
        let host = self.alloc(st, 1)?;
        self.host.write(&full, host)?;
        self.set_l2(st, vc, host | COPIED, ALL_ALLOC)?;
        self.release(st, old)
    }

    /// Writes `data` at byte `inner` of guest cluster `vc`: only the subclusters it touches are
    /// written (partly touched ones completed with what they read as before) and marked
    /// allocated; the others keep their state, so unallocated ones still show the backing file.
    pub(super) fn ext_write_cluster(
        &self,
        st: &mut State,
        vc: u64,
        inner: u64,
        data: &[u8],
    ) -> Result<()> {
        let (e, bm) = self.ext_entry_for_write(st, vc)?;
        if e & COMPRESSED != 0 {
            return self.ext_rewrite_compressed(st, vc, e, inner, data);
        }
        let bits = self.hdr.unit_bits();
        let us = 1u64 << bits;
        let (s0, s1) = (inner >> bits, (inner + data.len() as u64 - 1) >> bits);
        let (start, end) = (s0 * us, (s1 + 1) * us);
        let mut filled;
        let content: &[u8] = if inner == start && inner + data.len() as u64 == end {
            data
        } else {
            filled = vec![0u8; (end - start) as usize];
            let base = vc << self.hdr.cluster_bits;
            self.read_locked(st, &mut filled, base + start)?;
            let at = (inner - start) as usize;
            filled[at..at + data.len()].copy_from_slice(data);
            &filled
        };
        let host = match e & OFFSET_MASK {
            0 => self.alloc(st, 1)?,
            h => h,
        };
        self.host.write(content, host + start)?;
        let m = mask(s0, s1);
        self.set_l2(st, vc, host | COPIED, (bm | m) & !(m << 32))
    }

    /// Makes the whole subclusters of guest bytes `[start, end)` read as zeroes.
    pub(super) fn ext_zero_range(&self, st: &mut State, start: u64, end: u64) -> Result<()> {
        let cbits = self.hdr.cluster_bits;
        let cs = 1u64 << cbits;
        let bits = self.hdr.unit_bits();
        let mut pos = start;
        while pos < end {
            let vc = pos >> cbits;
            let stop = end.min((vc + 1) << cbits);
            let (s0, s1) = ((pos & (cs - 1)) >> bits, ((stop - 1) & (cs - 1)) >> bits);
            self.ext_zero_subclusters(st, vc, s0, s1)?;
            pos = stop;
        }
        Ok(())
    }

    fn ext_zero_subclusters(&self, st: &mut State, vc: u64, s0: u64, s1: u64) -> Result<()> {
        let (e, bm) = self.ext_entry_for_write(st, vc)?;
        let us = 1u64 << self.hdr.unit_bits();
        if e & COMPRESSED != 0 {
            if s0 == 0 && s1 == 31 {
                let old = self.decode(e, st.file_len)?;
                self.set_l2(st, vc, 0, ALL_ZERO)?;
                return self.release(st, old);
            }
            let z = vec![0u8; ((s1 - s0 + 1) * us) as usize];
            return self.ext_rewrite_compressed(st, vc, e, s0 * us, &z);
        }
        let m = mask(s0, s1);
        let nbm = (bm & !m) | (m << 32);
        let host = e & OFFSET_MASK;
        if host != 0 && nbm & ALL_ALLOC == 0 {
            // No subcluster uses the host cluster any more: give it back.
            self.set_l2(st, vc, 0, nbm)?;
            return self.release(st, Map::Data { host, copied: true });
        }
        self.set_l2(st, vc, e, nbm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_exactly_the_named_subclusters() {
        assert_eq!(mask(0, 31), ALL_ALLOC);
        assert_eq!(mask(0, 0), 1);
        assert_eq!(mask(31, 31), 1 << 31);
        assert_eq!(mask(2, 4), 0b11100);
    }

    #[test]
    fn hostile_bitmaps_are_invalid() {
        let host = 0x10000 | COPIED;
        assert!(
            invalid_bitmap(host, 1 | (1 << 32), false).is_some(),
            "alloc+zero"
        );
        assert!(invalid_bitmap(0, 1, false).is_some(), "alloc without host");
        assert!(invalid_bitmap(COMPRESSED | 0x10000, 1 << 40, false).is_some());
        assert!(invalid_bitmap(host, ALL_ALLOC, false).is_none());
        assert!(invalid_bitmap(0, ALL_ZERO, false).is_none());
        assert!(
            invalid_bitmap(host, 0, false).is_none(),
            "allocated cluster, all unallocated"
        );
    }
}
