//! Writing compressed clusters (zlib or zstd, as the header says), packed one after another.
//! Compression itself ([`Compressor`]) runs on any thread; storing ([`Qcow2Dev::write_packed`])
//! happens under the image lock.

use super::{Qcow2Dev, State, COMPRESSED, OFFSET_MASK};
use crate::compress::{Codec, Compressor, Packed};
use diskfab_storage::{BlockDev, Result};

impl Qcow2Dev {
    /// The compressor for this image's clusters (zlib or zstd, as the header says).
    pub fn compressor(&self) -> Compressor {
        let codec = if self.hdr.compression_type == 1 {
            Codec::Qcow2Zstd
        } else {
            Codec::Qcow2Zlib
        };
        Compressor::new(codec, self.hdr.cluster_size())
    }

    /// Compresses one full guest cluster and stores it packed after the previous compressed
    /// cluster (see [`Qcow2Dev::write_packed`]).
    pub fn write_compressed(&self, vc: u64, data: &[u8]) -> Result<()> {
        let packed = self.compressor().compress(data)?;
        self.write_packed(vc, data, &packed)
    }

    /// Stores guest cluster `vc` (`data`, already compressed by [`Qcow2Dev::compressor`] into
    /// `packed`) packed after the previous compressed cluster. Falls back to a plain write of
    /// `data` when the cluster is already allocated, partial or did not shrink.
    pub fn write_packed(&self, vc: u64, data: &[u8], packed: &Packed) -> Result<()> {
        let cs = self.hdr.cluster_size();
        let comp: &[u8] = match packed {
            Packed::Compressed(c)
                if self.writable
                    && data.len() as u64 == cs
                    && (vc + 1) * cs <= self.hdr.size
                    && (c.len() as u64) <= cs - 512 =>
            {
                c
            }
            _ => return self.write_at(data, vc * cs),
        };
        let mut guard = self.lock()?;
        let st: &mut State = &mut guard;
        let (e, _) = self.entry(st, vc)?;
        let free = e == 0 || (self.hdr.extended_l2() && e & (OFFSET_MASK | COMPRESSED) == 0);
        if !free {
            drop(guard);
            return self.write_at(data, vc * cs);
        }
        let len = comp.len() as u64;
        // Open a host cluster when none is open or the last one is full.
        if st.comp_cursor == 0 || st.comp_cursor.is_multiple_of(cs) {
            st.comp_cursor = self.alloc(st, 1)?;
        } else {
            let first = st.comp_cursor / cs * cs;
            let cur = st.rc.get(&self.host, &self.hdr, first)?;
            st.rc
                .set(&self.host, &self.hdr, &mut st.file_len, first, cur + 1)?;
        }
        let start = st.comp_cursor;
        let cluster_end = start / cs * cs + cs;
        if start + len > cluster_end {
            // Spill into the next host cluster, which must follow directly.
            if st.file_len != cluster_end {
                // The open cluster was counted for this one: give that reference back.
                let first = start / cs * cs;
                let cur = st.rc.get(&self.host, &self.hdr, first)?;
                st.rc.set(
                    &self.host,
                    &self.hdr,
                    &mut st.file_len,
                    first,
                    cur.saturating_sub(1),
                )?;
                st.comp_cursor = self.alloc(st, 1)?;
                return self.finish_compressed(st, vc, comp);
            }
            self.alloc(st, 1)?;
        }
        self.finish_compressed(st, vc, comp)
    }

    fn finish_compressed(&self, st: &mut State, vc: u64, comp: &[u8]) -> Result<()> {
        let start = st.comp_cursor;
        let len = comp.len() as u64;
        self.host.write(comp, start)?;
        let x = 62 - (self.hdr.cluster_bits - 8);
        let extra_sectors = ((start + len - 1) >> 9) - (start >> 9);
        self.set_l2(st, vc, COMPRESSED | (extra_sectors << x) | start, 0)?;
        st.comp_cursor = start + len;
        Ok(())
    }
}
