//! Writing a stream-optimized VMDK: append-only, in guest order (what `convert` does). Each
//! grain is deflated behind a grain marker; a grain table is emitted (behind its marker) when
//! the writes move past its range; `flush` writes the GD, the footer and the end-of-stream
//! marker, which later writes overwrite again, so the file is valid after every flush.

use crate::compress::{Codec, Compressor, Packed};
use crate::host::Host;
use crate::vmdk::{meta_marker, stream_trailer, SparseHeader, GTES_PER_GT, MARKER_GT};
use diskfab_storage::limits::alloc_vec;
use diskfab_storage::{check_range, BlockDev, Error, Result};
use std::sync::Mutex;

struct State {
    /// Where the next grain (or the trailer) goes.
    pos: u64,
    gd: Vec<u32>,
    /// The open grain table: its index and entries.
    gt: Option<(u64, Vec<u32>)>,
    /// The grain being filled: index and content.
    pending: Option<(u64, Vec<u8>)>,
    /// Grains up to here (exclusive) can no longer change.
    sealed: u64,
}

/// A stream-optimized VMDK open for sequential writing.
pub(crate) struct StreamDev {
    host: Host,
    pub(crate) hdr: SparseHeader,
    st: Mutex<State>,
}

impl std::fmt::Debug for StreamDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmdkStream({})", self.host.path.display())
    }
}

fn pad(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

impl StreamDev {
    /// Opens an empty stream-optimized extent (no grains; GD found through the footer) for
    /// appending; `trailer_at` is where its GD marker starts.
    pub(crate) fn open(host: Host, hdr: SparseHeader, trailer_at: u64) -> Result<Self> {
        let gd = alloc_vec(hdr.gd_entries(), "the VMDK grain directory")?;
        Ok(StreamDev {
            host,
            hdr,
            st: Mutex::new(State {
                pos: trailer_at,
                gd,
                gt: None,
                pending: None,
                sealed: 0,
            }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("VMDK stream state poisoned".into()))
    }

    fn sector(at: u64) -> Result<u32> {
        u32::try_from(at / 512)
            .map_err(|_| Error::NoSpace("stream-optimized VMDK has reached 2 TiB".into()))
    }

    /// Writes the open grain table behind its marker at `st.pos`; returns its GD entry.
    fn emit_gt(&self, st: &mut State, gt: &[u32]) -> Result<u32> {
        let n = GTES_PER_GT * 4;
        let mut b = meta_marker(n / 512, MARKER_GT).to_vec();
        b.extend(gt.iter().flat_map(|e| e.to_le_bytes()));
        self.host.write(&b, st.pos)?;
        let at = Self::sector(st.pos + 512)?;
        st.pos += 512 + n;
        Ok(at)
    }

    /// The compressor for this stream's grains (any thread may use it).
    pub(crate) fn compressor(&self) -> Compressor {
        Compressor::new(Codec::VmdkGrain, self.hdr.grain_bytes())
    }

    /// Compresses grain `g` and appends it (closing the previous grain table if `g` is past it).
    fn emit_grain(&self, st: &mut State, g: u64, data: &[u8]) -> Result<()> {
        match self.compressor().compress(data)? {
            Packed::Compressed(c) => self.emit_record(st, g, &c),
            Packed::Plain => Err(Error::Failed("a grain was not compressed".into())),
        }
    }

    /// Appends grain `g` already compressed into `comp` behind its grain marker.
    fn emit_record(&self, st: &mut State, g: u64, out: &[u8]) -> Result<()> {
        let t = g / GTES_PER_GT;
        if let Some((ot, gt)) = st.gt.take_if(|(ot, _)| *ot != t) {
            let at = self.emit_gt(st, &gt)?;
            st.gd[ot as usize] = at;
        }
        let mut rec = Vec::with_capacity(pad(12 + out.len() as u64) as usize);
        rec.extend_from_slice(&(g * self.hdr.grain_size).to_le_bytes());
        rec.extend_from_slice(&(out.len() as u32).to_le_bytes());
        rec.extend_from_slice(out);
        rec.resize(pad(rec.len() as u64) as usize, 0);
        let at = Self::sector(st.pos)?;
        self.host.write(&rec, st.pos)?;
        st.pos += rec.len() as u64;
        let gt = &mut st
            .gt
            .get_or_insert_with(|| (t, vec![0; GTES_PER_GT as usize]))
            .1;
        gt[(g % GTES_PER_GT) as usize] = at;
        st.sealed = g + 1;
        Ok(())
    }

    fn emit_pending(&self, st: &mut State) -> Result<()> {
        if let Some((g, buf)) = st.pending.take() {
            self.emit_grain(st, g, &buf)?;
        }
        Ok(())
    }

    /// Appends whole grain `g` (`data`, compressed by [`StreamDev::compressor`] into `packed`);
    /// a grain that was not packed goes through [`BlockDev::write_at`]. Grains come in order.
    pub(crate) fn write_packed(&self, g: u64, data: &[u8], packed: &Packed) -> Result<()> {
        let gb = self.hdr.grain_bytes();
        let Packed::Compressed(c) = packed else {
            return self.write_at(data, g * gb);
        };
        check_range(self.size(), g * gb, gb)?;
        let mut st = self.lock()?;
        if st.pending.as_ref().is_some_and(|(p, _)| *p >= g) || g < st.sealed {
            return Err(Error::Unsupported(format!(
                "stream-optimized VMDK is written in order only: grain {g} comes after later data"
            )));
        }
        self.emit_pending(&mut st)?;
        self.emit_record(&mut st, g, c)
    }
}

impl BlockDev for StreamDev {
    fn size(&self) -> u64 {
        self.hdr.capacity_bytes()
    }

    fn read_at(&self, _: &mut [u8], _: u64) -> Result<()> {
        Err(Error::Unsupported(
            "a stream-optimized VMDK being written cannot be read back until it is reopened".into(),
        ))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let gb = self.hdr.grain_bytes();
        let mut st = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (g, inner) = (pos / gb, (pos % gb) as usize);
            let n = (gb as usize - inner).min(buf.len() - done);
            let data = &buf[done..done + n];
            done += n;
            if st.pending.as_ref().is_some_and(|(p, _)| *p == g) {
                if let Some((_, b)) = st.pending.as_mut() {
                    b[inner..inner + n].copy_from_slice(data);
                }
                continue;
            }
            if g < st.sealed || st.pending.as_ref().is_some_and(|(p, _)| *p > g) {
                return Err(Error::Unsupported(format!(
                    "stream-optimized VMDK is written in order only: write at {pos} comes after \
                     later data (use monolithicSparse for random writes)"
                )));
            }
            if data.iter().all(|&b| b == 0) {
                continue;
            }
            self.emit_pending(&mut st)?;
            let mut b = vec![0u8; gb as usize];
            b[inner..inner + n].copy_from_slice(data);
            st.pending = Some((g, b));
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut st = self.lock()?;
        self.emit_pending(&mut st)?;
        let mut gd = st.gd.clone();
        let start = st.pos;
        if let Some((t, gt)) = st.gt.clone() {
            gd[t as usize] = self.emit_gt(&mut st, &gt)?;
        }
        let gd_at = st.pos / 512 + 1;
        let trailer = stream_trailer(&self.hdr, &gd, gd_at);
        self.host.write(&trailer, st.pos)?;
        self.host.set_len(st.pos + trailer.len() as u64)?;
        // Later grains overwrite the trailer (and the open GT, which is emitted again).
        st.pos = start;
        self.host.sync()
    }

    fn writable(&self) -> bool {
        true
    }
}
