//! The qcow2 engine: guest reads and writes through L1/L2 tables, copy-on-write from the backing
//! chain, zero and compressed clusters, refcount maintenance. Exposed as a [`diskfab_storage::BlockDev`].
//!
//! Every table entry read from the file is checked (alignment, inside the file) before use.

use crate::header::{Qcow2Header, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, MAX_HOST_OFFSET};
use crate::host::Host;
use crate::refcount::Refcounts;
use diskfab_storage::bytes::be_u64s;
use diskfab_storage::limits::alloc_bytes;
use diskfab_storage::{DevRef, Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

#[path = "qcow2_blockdev.rs"]
mod blockdev;
#[path = "qcow2_comp.rs"]
mod comp;
#[path = "qcow2_ext.rs"]
mod ext;
pub(crate) use ext::invalid_bitmap;

const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Bytes of L2 tables kept in memory (at least 16 tables): 512 tables of 64 KiB clusters map
/// 256 GiB of guest, 16 tables of 2 MiB clusters 8 TiB. Bounded so that a hostile image cannot
/// make the cache grow with the file.
const L2_CACHE_BYTES: u64 = 32 << 20;
/// Runs mapped per lock acquisition when reading.
const PLAN_SEGMENTS: usize = 64;

/// Where one guest cluster lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// Not in this layer: read from backing (or zeroes).
    Unalloc,
    /// Reads as zeroes; `Some(host)` when a host cluster is still attached.
    Zero(Option<u64>),
    /// Plain data at a host offset; `copied` means refcount is exactly one.
    Data { host: u64, copied: bool },
    /// A compressed cluster: host offset and compressed length bound.
    Compressed { host: u64, len: u64 },
}

pub(crate) struct State {
    l1: Vec<u64>,
    l2: HashMap<u64, Vec<u64>>,
    pub(crate) rc: Refcounts,
    pub(crate) file_len: u64,
    /// Next free byte for compressed data (0 = none open).
    comp_cursor: u64,
}

/// An open qcow2 image as a guest-visible device.
pub struct Qcow2Dev {
    pub(crate) host: Host,
    pub(crate) hdr: Qcow2Header,
    backing: Option<DevRef>,
    /// The external data file (opened through the gate), where data clusters live.
    data: Option<Host>,
    /// The internal snapshots (validated when the image is opened).
    pub(crate) snapshots: Vec<crate::snapshot::Snapshot>,
    writable: bool,
    st: Mutex<State>,
}

impl std::fmt::Debug for Qcow2Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Qcow2Dev({})", self.host.path.display())
    }
}

impl Qcow2Dev {
    /// Opens a parsed image. Validates the L1 and refcount tables against the file size.
    pub fn open(
        host: Host,
        hdr: Qcow2Header,
        backing: Option<DevRef>,
        writable: bool,
    ) -> Result<Self> {
        let name = host.path.display().to_string();
        if writable {
            if hdr.incompatible & INCOMPAT_CORRUPT != 0 {
                return Err(Error::bad(format!(
                    "{name}: marked corrupt by QEMU; repair it with `qemu-img check -r all` first"
                )));
            }
            if hdr.incompatible & INCOMPAT_DIRTY != 0 {
                return Err(Error::Unsupported(format!(
                    "{name}: refcounts are dirty (lazy refcounts); run `qemu-img check -r all` first"
                )));
            }
            if hdr.nb_snapshots != 0 {
                return Err(Error::Unsupported(format!(
                    "{name}: has internal snapshots; diskfab opens such images read-only"
                )));
            }
            if hdr.refcount_order != 4 {
                return Err(Error::Unsupported(format!(
                    "{name}: {}-bit refcounts are read-only in diskfab (16-bit is writable)",
                    hdr.refcount_bits()
                )));
            }
        }
        let file_len = host.len()?;
        let cs = hdr.cluster_size();
        if writable && hdr.autoclear != 0 {
            // Autoclear features (e.g. persistent bitmaps) are invalid once an unaware writer
            // changes the image: clearing the bits is what the specification asks for.
            host.write(&0u64.to_be_bytes(), 88)?;
        }
        let l1_bytes = u64::from(hdr.l1_size) * 8;
        if hdr.l1_table_offset.saturating_add(l1_bytes) > file_len && l1_bytes > 0 {
            return Err(Error::bad(format!(
                "{name}: L1 table lies past the end of the file"
            )));
        }
        let mut raw = alloc_bytes(l1_bytes, "the qcow2 L1 table")?;
        host.read(&mut raw, hdr.l1_table_offset)?;
        let l1 = be_u64s(&raw);
        for (i, e) in l1.iter().enumerate() {
            let off = e & OFFSET_MASK;
            if off != 0 && (!off.is_multiple_of(cs) || off >= file_len) {
                return Err(Error::bad(format!(
                    "{name}: L1 entry {i} points to {off:#x}, past the end of the file or unaligned"
                )));
            }
        }
        let rc = Refcounts::load(&host, &hdr, file_len)?;
        let snapshots = crate::snapshot::load(&host, &hdr, file_len)?;
        let file_len = file_len.div_ceil(cs) * cs;
        Ok(Qcow2Dev {
            host,
            hdr,
            backing,
            data: None,
            snapshots,
            writable,
            st: Mutex::new(State {
                l1,
                l2: HashMap::new(),
                rc,
                file_len,
                comp_cursor: 0,
            }),
        })
    }

    /// Attaches the external data file the header names (read-only images only).
    pub fn with_data_file(mut self, data: Host) -> Result<Self> {
        if self.writable {
            return Err(Error::Unsupported(format!(
                "{}: writing qcow2 images with an external data file; open it read-only",
                self.host.path.display()
            )));
        }
        self.data = Some(data);
        Ok(self)
    }

    /// The file data clusters live in: the external data file, or the image itself.
    fn data_file(&self) -> &Host {
        self.data.as_ref().unwrap_or(&self.host)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("qcow2 state poisoned by an earlier failure".into()))
    }

    fn bad(&self, msg: String) -> Error {
        Error::bad(format!("{}: {msg}", self.host.path.display()))
    }

    /// Loads (or fetches from cache) the L2 table at host offset `off`.
    fn l2<'a>(&self, st: &'a mut State, off: u64) -> Result<&'a mut Vec<u64>> {
        if !st.l2.contains_key(&off) {
            if st.l2.len() as u64 >= (L2_CACHE_BYTES >> self.hdr.cluster_bits).max(16) {
                st.l2.clear();
            }
            let mut raw = vec![0u8; self.hdr.cluster_size() as usize];
            self.host.read(&mut raw, off)?;
            st.l2.insert(off, be_u64s(&raw));
        }
        st.l2
            .get_mut(&off)
            .ok_or_else(|| Error::Failed("L2 cache".into()))
    }

    /// The raw L2 entry of guest cluster `vcluster` and its subcluster bitmap (0 without
    /// extended L2 entries); (0, 0) when no L2 table covers it.
    fn entry(&self, st: &mut State, vcluster: u64) -> Result<(u64, u64)> {
        let per = self.hdr.l2_entries();
        let l1i = (vcluster / per) as usize;
        let l2off = st.l1.get(l1i).copied().unwrap_or(0) & OFFSET_MASK;
        if l2off == 0 {
            return Ok((0, 0));
        }
        let w = (self.hdr.l2_entry_bytes() / 8) as usize;
        let i = (vcluster % per) as usize * w;
        let t = self.l2(st, l2off)?;
        let e = t.get(i).copied().unwrap_or(0);
        let bm = if w == 2 {
            t.get(i + 1).copied().unwrap_or(0)
        } else {
            0
        };
        Ok((e, bm))
    }

    /// Where allocation unit `unit` (a subcluster with extended L2 entries, else a cluster)
    /// lives in this layer.
    fn lookup(&self, st: &mut State, unit: u64) -> Result<Map> {
        let shift = self.hdr.cluster_bits - self.hdr.unit_bits();
        let (e, bm) = self.entry(st, unit >> shift)?;
        let file_len = st.file_len;
        if self.hdr.extended_l2() {
            self.decode_ext(e, bm, (unit & 31) as u32, file_len)
        } else {
            self.decode(e, file_len)
        }
    }

    fn decode(&self, e: u64, file_len: u64) -> Result<Map> {
        if e & COMPRESSED != 0 {
            if self.hdr.data_file.is_some() {
                return Err(
                    self.bad("compressed cluster in an image with an external data file".into())
                );
            }
            let x = 62 - (self.hdr.cluster_bits - 8);
            let host = e & ((1u64 << x) - 1);
            let sectors = ((e >> x) & ((1u64 << (self.hdr.cluster_bits - 8)) - 1)) + 1;
            if host >= file_len {
                return Err(self.bad(format!(
                    "compressed cluster at {host:#x} is past the end of the file"
                )));
            }
            return Ok(Map::Compressed {
                host,
                len: sectors * 512 - (host & 511),
            });
        }
        let host = self.data_host(e, file_len)?;
        if e & ZERO != 0 && self.hdr.version >= 3 {
            return Ok(Map::Zero((host != 0).then_some(host)));
        }
        // With a data file, offset 0 is a real cluster; COPIED tells it from unallocated.
        if host == 0 && !(self.hdr.data_file.is_some() && e & COPIED != 0) {
            return Ok(Map::Unalloc);
        }
        Ok(Map::Data {
            host,
            copied: e & COPIED != 0,
        })
    }

    /// The host cluster of a plain L2 entry, checked (aligned, inside the file).
    fn data_host(&self, e: u64, file_len: u64) -> Result<u64> {
        let cs = self.hdr.cluster_size();
        let host = e & OFFSET_MASK;
        // Data-file offsets are not in this file (reads past the data file's end are zeroes).
        let limit = if self.hdr.data_file.is_some() {
            MAX_HOST_OFFSET
        } else {
            file_len
        };
        if host != 0 && (!host.is_multiple_of(cs) || host >= limit) {
            return Err(self.bad(format!(
                "L2 entry points to {host:#x}, past the end of the file or unaligned"
            )));
        }
        Ok(host)
    }

    fn read_backing(&self, buf: &mut [u8], off: u64) -> Result<()> {
        match &self.backing {
            Some(b) if off < b.size() => {
                let n = ((b.size() - off) as usize).min(buf.len());
                b.read_at(&mut buf[..n], off)?;
                buf[n..].fill(0);
                Ok(())
            }
            _ => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    fn inflate(&self, host: u64, len: u64, out: &mut [u8]) -> Result<()> {
        let mut comp = vec![0u8; len.min(2 * self.hdr.cluster_size() + 512) as usize];
        self.host.read(&mut comp, host)?;
        let ok = if self.hdr.compression_type == 1 {
            // zstd: one frame; reading exactly one cluster bounds the output (no bombs).
            use std::io::Read;
            ruzstd::decoding::StreamingDecoder::new(&comp[..])
                .ok()
                .is_some_and(|mut d| d.read_exact(out).is_ok())
        } else {
            let mut d = flate2::Decompress::new(false);
            d.decompress(&comp, out, flate2::FlushDecompress::Finish)
                .is_ok()
                && d.total_out() as usize == out.len()
        };
        if ok {
            Ok(())
        } else {
            Err(self.bad(format!(
                "compressed cluster at {host:#x} does not decompress to a full cluster"
            )))
        }
    }

    /// Reads one guest cluster's full content as this layer sees it.
    fn cluster_content(&self, m: Map, vcluster: u64, out: &mut [u8]) -> Result<()> {
        let cs = self.hdr.cluster_size();
        match m {
            Map::Unalloc => self.read_backing(out, vcluster * cs),
            Map::Zero(_) => {
                out.fill(0);
                Ok(())
            }
            Map::Data { host, .. } => self.data_file().read(out, host),
            Map::Compressed { host, len } => self.inflate(host, len, out),
        }
    }

    /// Maps up to [`PLAN_SEGMENTS`] runs of `len` guest bytes from `off` (each run one kind,
    /// data runs host-contiguous) into `segs` as (mapping, bytes). Only this needs the lock.
    fn plan(
        &self,
        st: &mut State,
        off: u64,
        len: usize,
        segs: &mut Vec<(Map, usize)>,
    ) -> Result<()> {
        let bits = self.hdr.unit_bits();
        let us = 1u64 << bits;
        let cbits = self.hdr.cluster_bits;
        let mut done = 0usize;
        while done < len && segs.len() < PLAN_SEGMENTS {
            let pos = off + done as u64;
            let vc = pos >> bits;
            let m = self.lookup(st, vc)?;
            let mut run = (us - (pos & (us - 1))).min((len - done) as u64) as usize;
            while done + run < len {
                let next_pos = pos + run as u64;
                let next_vc = next_pos >> bits;
                let next = self.lookup(st, next_vc)?;
                let contiguous = match (m, next) {
                    (Map::Data { host: a, .. }, Map::Data { host: b, .. }) => {
                        b == a + (next_vc - vc) * us
                    }
                    // Subclusters of one compressed cluster: one decompression.
                    (Map::Compressed { host: a, .. }, Map::Compressed { host: b, .. }) => {
                        a == b && next_pos >> cbits == pos >> cbits
                    }
                    (Map::Unalloc, Map::Unalloc) | (Map::Zero(_), Map::Zero(_)) => true,
                    _ => false,
                };
                if !contiguous {
                    break;
                }
                run = (run + us as usize).min(len - done);
            }
            segs.push((m, run));
            done += run;
        }
        Ok(())
    }

    /// Reads guest bytes. The lock is held only while mapping; data, backing and decompression
    /// run unlocked so that several readers proceed in parallel. That is safe because host
    /// clusters are never reused once freed (allocation only appends): a reader racing a
    /// write_zeroes of the same range may read the punched hole, i.e. the zeroes being written.
    fn read_guest(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let mut segs = Vec::with_capacity(PLAN_SEGMENTS);
        let mut done = 0usize;
        while done < buf.len() {
            segs.clear();
            {
                let mut st = self.lock()?;
                self.plan(&mut st, off + done as u64, buf.len() - done, &mut segs)?;
            }
            done += self.read_segs(&segs, &mut buf[done..], off + done as u64)?;
        }
        Ok(())
    }

    /// Reads guest bytes while the caller holds the lock (writers filling partial subclusters).
    fn read_locked(&self, st: &mut State, buf: &mut [u8], off: u64) -> Result<()> {
        let mut segs = Vec::with_capacity(PLAN_SEGMENTS);
        let mut done = 0usize;
        while done < buf.len() {
            segs.clear();
            self.plan(st, off + done as u64, buf.len() - done, &mut segs)?;
            done += self.read_segs(&segs, &mut buf[done..], off + done as u64)?;
        }
        Ok(())
    }

    /// Reads the planned runs `segs` into `buf` (guest offset `off`); returns the bytes read.
    fn read_segs(&self, segs: &[(Map, usize)], buf: &mut [u8], off: u64) -> Result<usize> {
        let cs = self.hdr.cluster_size();
        let us = 1u64 << self.hdr.unit_bits();
        let mut scratch = Vec::new();
        let mut done = 0usize;
        for &(m, run) in segs {
            let pos = off + done as u64;
            let dst = &mut buf[done..done + run];
            match m {
                Map::Unalloc => self.read_backing(dst, pos)?,
                Map::Zero(_) => dst.fill(0),
                Map::Data { host, .. } => self.data_file().read(dst, host + (pos & (us - 1)))?,
                Map::Compressed { host, len } => {
                    let inner = (pos & (cs - 1)) as usize;
                    scratch.resize(cs as usize, 0);
                    self.inflate(host, len, &mut scratch)?;
                    dst.copy_from_slice(&scratch[inner..inner + run]);
                }
            }
            done += run;
        }
        Ok(done)
    }

    fn write_l1(&self, st: &mut State, idx: usize, val: u64) -> Result<()> {
        self.host.write(
            &val.to_be_bytes(),
            self.hdr.l1_table_offset + idx as u64 * 8,
        )?;
        st.l1[idx] = val;
        Ok(())
    }

    /// Returns the L2 table offset for `vcluster`, allocating the table if needed.
    fn l2_for_write(&self, st: &mut State, vcluster: u64) -> Result<u64> {
        let idx = (vcluster / self.hdr.l2_entries()) as usize;
        let cur = st
            .l1
            .get(idx)
            .copied()
            .ok_or_else(|| self.bad("L1 index out of range".into()))?;
        if cur & OFFSET_MASK != 0 {
            if cur & COPIED == 0 {
                return Err(Error::Unsupported("shared L2 tables (snapshots)".into()));
            }
            return Ok(cur & OFFSET_MASK);
        }
        let off = self.alloc(st, 1)?;
        self.host
            .write(&vec![0u8; self.hdr.cluster_size() as usize], off)?;
        st.l2
            .insert(off, vec![0u64; self.hdr.l2_entries() as usize]);
        self.write_l1(st, idx, off | COPIED)?;
        Ok(off)
    }

    /// Sets the L2 entry of `vcluster` (and its subcluster bitmap with extended L2 entries).
    fn set_l2(&self, st: &mut State, vcluster: u64, val: u64, bitmap: u64) -> Result<()> {
        let l2off = self.l2_for_write(st, vcluster)?;
        let w = (self.hdr.l2_entry_bytes() / 8) as usize;
        let i = (vcluster % self.hdr.l2_entries()) as usize * w;
        let words = [val, bitmap];
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&val.to_be_bytes());
        raw[8..].copy_from_slice(&bitmap.to_be_bytes());
        self.host.write(&raw[..w * 8], l2off + i as u64 * 8)?;
        let t = self.l2(st, l2off)?;
        if let Some(dst) = t.get_mut(i..i + w) {
            dst.copy_from_slice(&words[..w]);
        }
        Ok(())
    }

    /// Whether guest cluster `vc` holds no host cluster, so a whole-cluster write may allocate
    /// a fresh one: unallocated or zero without a host cluster (any subcluster bitmap).
    fn holds_nothing(&self, st: &mut State, vc: u64) -> Result<bool> {
        if self.hdr.extended_l2() {
            let (e, _) = self.entry(st, vc)?;
            return Ok(e & (OFFSET_MASK | COMPRESSED) == 0);
        }
        Ok(matches!(
            self.lookup(st, vc)?,
            Map::Unalloc | Map::Zero(None)
        ))
    }

    /// Allocates `n` contiguous clusters at the end of the file with refcount 1.
    fn alloc(&self, st: &mut State, n: u64) -> Result<u64> {
        let cs = self.hdr.cluster_size();
        let off = st.file_len;
        st.file_len += n * cs;
        st.rc
            .set_run(&self.host, &self.hdr, &mut st.file_len, off, n, 1)?;
        Ok(off)
    }

    /// Fast path for writes covering whole clusters that hold nothing in this layer: allocate
    /// them contiguously, write the data in one call and the L2 entries one table at a time.
    /// Returns how many clusters were written (0 = not applicable here).
    fn write_run(&self, st: &mut State, vc: u64, data: &[u8]) -> Result<u64> {
        let cs = self.hdr.cluster_size();
        let per = self.hdr.l2_entries();
        let max = (data.len() as u64 / cs).min(4096);
        let mut n = 0;
        while n < max && self.holds_nothing(st, vc + n)? {
            n += 1;
        }
        if n < 2 {
            return Ok(0);
        }
        let host = self.alloc(st, n)?;
        self.host.write(&data[..(n * cs) as usize], host)?;
        let mut i = 0;
        while i < n {
            let c = vc + i;
            let stop = n.min(i + (per - c % per));
            let l2off = self.l2_for_write(st, c)?;
            let first = (c % per) as usize;
            let ext = self.hdr.extended_l2();
            let mut vals = Vec::with_capacity(2 * (stop - i) as usize);
            for k in i..stop {
                vals.push((host + k * cs) | COPIED);
                if ext {
                    vals.push(ext::ALL_ALLOC);
                }
            }
            let mut raw = Vec::with_capacity(vals.len() * 8);
            for v in &vals {
                raw.extend_from_slice(&v.to_be_bytes());
            }
            let w = vals.len() / (stop - i) as usize;
            self.host.write(&raw, l2off + (first * w) as u64 * 8)?;
            let t = self.l2(st, l2off)?;
            if let Some(dst) = t.get_mut(first * w..first * w + vals.len()) {
                dst.copy_from_slice(&vals);
            }
            i = stop;
        }
        Ok(n)
    }

    /// Drops this layer's reference to the host clusters of `m`.
    fn release(&self, st: &mut State, m: Map) -> Result<()> {
        let cs = self.hdr.cluster_size();
        let (start, end) = match m {
            Map::Data { host, .. } | Map::Zero(Some(host)) => (host, host + cs),
            Map::Compressed { host, len } => (host & !(cs - 1), host + len),
            _ => return Ok(()),
        };
        let mut c = start;
        while c < end {
            st.rc
                .decrement(&self.host, &self.hdr, &mut st.file_len, c)?;
            c += cs;
        }
        // Give the space back unless another reference (a hostile or snapshot image) remains.
        if matches!(m, Map::Data { .. } | Map::Zero(Some(_)))
            && st.rc.get(&self.host, &self.hdr, start)? == 0
        {
            self.host.punch(start, cs)?;
        }
        Ok(())
    }

    fn write_cluster(&self, st: &mut State, vc: u64, inner: u64, data: &[u8]) -> Result<()> {
        let cs = self.hdr.cluster_size();
        let m = self.lookup(st, vc)?;
        if let Map::Data { host, copied: true } = m {
            return self.host.write(data, host + inner);
        }
        let mut full;
        let content: &[u8] = if data.len() as u64 == cs {
            data
        } else {
            full = vec![0u8; cs as usize];
            self.cluster_content(m, vc, &mut full)?;
            full[inner as usize..inner as usize + data.len()].copy_from_slice(data);
            &full
        };
        let host = match m {
            Map::Zero(Some(h)) => h,
            _ => self.alloc(st, 1)?,
        };
        self.host.write(content, host)?;
        self.set_l2(st, vc, host | COPIED, 0)?;
        if !matches!(m, Map::Zero(Some(_))) {
            self.release(st, m)?;
        }
        Ok(())
    }

    fn zero_cluster(&self, st: &mut State, vc: u64) -> Result<()> {
        let m = self.lookup(st, vc)?;
        if self.backing.is_none() {
            // Nothing below: an unallocated cluster reads as zeroes, so deallocate (v2 and v3).
            if m == Map::Unalloc {
                return Ok(());
            }
            self.set_l2(st, vc, 0, 0)?;
            return self.release(st, m);
        }
        if self.hdr.version < 3 {
            if m == Map::Unalloc && self.backing.is_none() {
                return Ok(());
            }
            let z = vec![0u8; self.hdr.cluster_size() as usize];
            return self.write_cluster(st, vc, 0, &z);
        }
        if matches!(m, Map::Zero(None)) {
            return Ok(());
        }
        self.set_l2(st, vc, ZERO, 0)?;
        self.release(st, m)
    }
}

/// What one guest cluster is in one layer, for `map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// Not allocated in this layer (look below).
    Unallocated,
    /// Reads as zeroes in this layer.
    Zero,
    /// Data in this layer (plain or compressed).
    Data,
}

impl Qcow2Dev {
    /// Bytes from `offset` to the end of its L1 range when that range has no L2 table (nothing
    /// in it is allocated in this layer), else 0: callers skip terabytes of holes at once
    /// instead of cluster by cluster.
    pub fn l1_hole(&self, offset: u64) -> Result<u64> {
        let st = self.lock()?;
        Ok(self.l1_hole_in(&st, offset))
    }

    pub(crate) fn l1_hole_in(&self, st: &State, offset: u64) -> u64 {
        let span = self.hdr.cluster_size() * self.hdr.l2_entries();
        let i = offset / span;
        let empty = st.l1.get(i as usize).is_none_or(|e| e & OFFSET_MASK == 0);
        if empty {
            (i + 1) * span - offset
        } else {
            0
        }
    }

    /// The kind of the guest cluster holding `offset` in this layer.
    pub fn kind_at(&self, offset: u64) -> Result<ClusterKind> {
        let mut st = self.lock()?;
        Ok(
            match self.lookup(&mut st, offset >> self.hdr.unit_bits())? {
                Map::Unalloc => ClusterKind::Unallocated,
                Map::Zero(_) => ClusterKind::Zero,
                Map::Data { .. } | Map::Compressed { .. } => ClusterKind::Data,
            },
        )
    }
}
