//! A VMDK hosted sparse extent (monolithicSparse, or stream-optimized read back): grain lookup
//! through the GD and a bounded grain-table cache, compressed grains, and grain allocation for
//! writes (appended at the end of the file, both GT copies updated).

use crate::host::Host;
use crate::vmdk::{parse_marker, SparseHeader, FLAG_ZERO_GRAIN, GTES_PER_GT};
use diskfab_storage::bytes::le_u32s;
use diskfab_storage::limits::alloc_bytes;
use diskfab_storage::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// Grain tables kept in memory (2 KiB each: 16 MiB).
const MAX_CACHED_GTS: usize = 8192;
const GT_BYTES: u64 = GTES_PER_GT * 4;

/// Where one grain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    /// Not allocated: reads as zeroes.
    Unalloc,
    /// A zeroed grain.
    Zero,
    /// Plain data at this file offset.
    Data(u64),
    /// Compressed data (marker first, if the extent has markers) at this file offset.
    Compressed(u64),
}

struct State {
    gd: Vec<u32>,
    rgd: Option<Vec<u32>>,
    cache: HashMap<u64, Vec<u32>>,
    /// The last decompressed grain.
    inflated: Option<(u64, Vec<u8>)>,
    next_free: u64,
    file_len: u64,
}

/// An open sparse extent.
pub(crate) struct SparseExtent {
    pub(crate) host: Host,
    pub(crate) hdr: SparseHeader,
    st: Mutex<State>,
}

impl SparseExtent {
    /// Opens a sparse extent whose header `hdr` has its real GD offset (stream footers already
    /// applied). Every GD entry is checked against the file; GTs are checked when loaded.
    pub(crate) fn open(host: Host, hdr: SparseHeader) -> Result<Self> {
        let len = host.len()?;
        let bad = |m: String| Error::bad(format!("{}: {m}", host.path.display()));
        let read_dir = |at: u64, what: &str| -> Result<Vec<u32>> {
            let bytes = hdr.gd_entries() * 4;
            if at.saturating_mul(512).saturating_add(bytes) > len {
                return Err(bad(format!("VMDK {what} lies past the end of the file")));
            }
            let mut raw = alloc_bytes(bytes, "the VMDK grain directory")?;
            host.read(&mut raw, at * 512)?;
            let dir = le_u32s(&raw);
            if let Some((i, e)) = dir
                .iter()
                .enumerate()
                .find(|(_, &e)| e != 0 && u64::from(e) * 512 + GT_BYTES > len)
            {
                return Err(bad(format!(
                    "VMDK {what} entry {i} points past the end of the file (sector {e})"
                )));
            }
            Ok(dir)
        };
        let gd = read_dir(hdr.gd_offset, "grain directory")?;
        let rgd = if hdr.flags & crate::vmdk::FLAG_RGD != 0 && hdr.rgd_offset != 0 {
            Some(read_dir(hdr.rgd_offset, "redundant grain directory")?)
        } else {
            None
        };
        let next_free = len.div_ceil(512).max(hdr.overhead) * 512;
        Ok(SparseExtent {
            host,
            hdr,
            st: Mutex::new(State {
                gd,
                rgd,
                cache: HashMap::new(),
                inflated: None,
                next_free,
                file_len: len,
            }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("VMDK state poisoned".into()))
    }

    fn bad(&self, m: String) -> Error {
        Error::bad(format!("{}: {m}", self.host.path.display()))
    }

    /// Whether any grain table is allocated.
    pub(crate) fn has_tables(&self) -> Result<bool> {
        Ok(self.lock()?.gd.iter().any(|&e| e != 0))
    }

    /// Bytes of the grain `g` that lie inside the extent.
    fn grain_used(&self, g: u64) -> u64 {
        let gb = self.hdr.grain_bytes();
        gb.min(self.hdr.capacity_bytes().saturating_sub(g * gb))
    }

    /// Loads (and validates) grain table `t` into the cache.
    fn load_gt(&self, st: &mut State, t: u64) -> Result<()> {
        if st.cache.contains_key(&t) {
            return Ok(());
        }
        let at = u64::from(st.gd[t as usize]) * 512;
        let mut raw = vec![0u8; GT_BYTES as usize];
        self.host.read(&mut raw, at)?;
        let gt = le_u32s(&raw);
        let zero_ok = self.hdr.flags & FLAG_ZERO_GRAIN != 0;
        for (i, &e) in gt.iter().enumerate() {
            let g = t * GTES_PER_GT + i as u64;
            if e == 0 || (e == 1 && zero_ok) {
                continue;
            }
            let off = u64::from(e) * 512;
            let need = if self.hdr.compressed() {
                12
            } else {
                self.grain_used(g)
            };
            if u64::from(e) < self.hdr.overhead.max(1) || off + need > st.file_len {
                return Err(self.bad(format!(
                    "VMDK grain table entry {g} (sector {e}) points outside the grain area"
                )));
            }
        }
        if st.cache.len() >= MAX_CACHED_GTS {
            st.cache.clear();
        }
        st.cache.insert(t, gt);
        Ok(())
    }

    fn lookup(&self, st: &mut State, g: u64) -> Result<Grain> {
        let t = g / GTES_PER_GT;
        if st.gd.get(t as usize).copied().unwrap_or(0) == 0 {
            return Ok(Grain::Unalloc);
        }
        self.load_gt(st, t)?;
        let e = st
            .cache
            .get(&t)
            .map_or(0, |gt| gt[(g % GTES_PER_GT) as usize]);
        Ok(match e {
            0 => Grain::Unalloc,
            1 if self.hdr.flags & FLAG_ZERO_GRAIN != 0 => Grain::Zero,
            e if self.hdr.compressed() => Grain::Compressed(u64::from(e) * 512),
            e => Grain::Data(u64::from(e) * 512),
        })
    }

    /// Where grain `g` is.
    pub(crate) fn grain(&self, g: u64) -> Result<Grain> {
        let mut st = self.lock()?;
        self.lookup(&mut st, g)
    }

    /// Decompresses grain `g` stored at `off` into `out` (one grain).
    fn inflate(&self, g: u64, off: u64, file_len: u64, out: &mut [u8]) -> Result<()> {
        let gb = self.hdr.grain_bytes();
        let (data_at, len) = if self.hdr.markers() {
            let mut m = [0u8; 12];
            self.host.read(&mut m, off)?;
            let (lba, size, _) = parse_marker(&[&m[..], &[0; 4]].concat()).unwrap_or((0, 0, 0));
            if lba != g * self.hdr.grain_size {
                return Err(self.bad(format!(
                    "VMDK grain marker at {off:#x} is for sector {lba}, not grain {g}"
                )));
            }
            (off + 12, u64::from(size))
        } else {
            (off, (2 * gb + 1024).min(file_len.saturating_sub(off)))
        };
        if len == 0 || len > 2 * gb + 1024 || data_at + len > file_len {
            return Err(self.bad(format!(
                "VMDK compressed grain {g} at {off:#x} has an invalid size ({len} bytes)"
            )));
        }
        let mut comp = vec![0u8; len as usize];
        self.host.read(&mut comp, data_at)?;
        out.fill(0);
        let mut d = flate2::Decompress::new(true);
        let ok = matches!(
            d.decompress(&comp, out, flate2::FlushDecompress::Finish),
            Ok(flate2::Status::StreamEnd)
        ) && d.total_out() >= self.grain_used(g);
        if ok {
            Ok(())
        } else {
            Err(self.bad(format!(
                "VMDK compressed grain {g} at {off:#x} does not decompress to a grain"
            )))
        }
    }

    /// Reads `out` from extent offset `pos` (within one grain).
    pub(crate) fn read_in_grain(&self, out: &mut [u8], pos: u64) -> Result<()> {
        let gb = self.hdr.grain_bytes();
        let (g, inner) = (pos / gb, (pos % gb) as usize);
        let mut st = self.lock()?;
        match self.lookup(&mut st, g)? {
            Grain::Unalloc | Grain::Zero => out.fill(0),
            Grain::Data(off) => self.host.read(out, off + inner as u64)?,
            Grain::Compressed(off) => {
                if st.inflated.as_ref().map(|(i, _)| *i) != Some(g) {
                    let mut buf = st
                        .inflated
                        .take()
                        .map(|(_, b)| b)
                        .unwrap_or_else(|| vec![0u8; gb as usize]);
                    self.inflate(g, off, st.file_len, &mut buf)?;
                    st.inflated = Some((g, buf));
                }
                if let Some((_, b)) = &st.inflated {
                    out.copy_from_slice(&b[inner..inner + out.len()]);
                }
            }
        }
        Ok(())
    }

    /// Allocates a zeroed grain table for directory entry `t` in the GD (and RGD).
    fn alloc_gt(&self, st: &mut State, t: u64, redundant: bool) -> Result<()> {
        let at = st.next_free;
        let sector = u32::try_from(at / 512)
            .map_err(|_| Error::NoSpace("VMDK sparse extent has reached 2 TiB".into()))?;
        self.host.write(&vec![0u8; GT_BYTES as usize], at)?;
        st.next_free += GT_BYTES;
        st.file_len = st.file_len.max(st.next_free);
        let (dir, dir_at) = if redundant {
            (st.rgd.as_mut(), self.hdr.rgd_offset)
        } else {
            (Some(&mut st.gd), self.hdr.gd_offset)
        };
        if let Some(dir) = dir {
            dir[t as usize] = sector;
            self.host
                .write(&sector.to_le_bytes(), dir_at * 512 + t * 4)?;
        }
        Ok(())
    }

    /// Writes `data` at extent offset `pos` (within one grain), allocating the grain if needed.
    pub(crate) fn write_in_grain(&self, data: &[u8], pos: u64) -> Result<()> {
        let gb = self.hdr.grain_bytes();
        let (g, inner) = (pos / gb, (pos % gb) as usize);
        let mut st = self.lock()?;
        match self.lookup(&mut st, g)? {
            Grain::Data(off) => return self.host.write(data, off + inner as u64),
            Grain::Compressed(_) => {
                return Err(Error::Unsupported(
                    "writing into compressed VMDK grains".into(),
                ))
            }
            Grain::Unalloc | Grain::Zero if data.iter().all(|&b| b == 0) => return Ok(()),
            Grain::Unalloc | Grain::Zero => {}
        }
        let t = g / GTES_PER_GT;
        if st.gd[t as usize] == 0 {
            self.alloc_gt(&mut st, t, false)?;
        }
        if st.rgd.as_ref().is_some_and(|r| r[t as usize] == 0) {
            self.alloc_gt(&mut st, t, true)?;
        }
        let at = st.next_free;
        let sector = u32::try_from(at / 512)
            .map_err(|_| Error::NoSpace("VMDK sparse extent has reached 2 TiB".into()))?;
        let mut full = vec![0u8; gb as usize];
        full[inner..inner + data.len()].copy_from_slice(data);
        self.host.write(&full, at)?;
        st.next_free += gb;
        st.file_len = st.file_len.max(st.next_free);
        let slot = (g % GTES_PER_GT) * 4;
        self.host.write(
            &sector.to_le_bytes(),
            u64::from(st.gd[t as usize]) * 512 + slot,
        )?;
        if let Some(r) = &st.rgd {
            self.host
                .write(&sector.to_le_bytes(), u64::from(r[t as usize]) * 512 + slot)?;
        }
        if let Some(gt) = st.cache.get_mut(&t) {
            gt[(g % GTES_PER_GT) as usize] = sector;
        }
        Ok(())
    }

    /// Before writing in place: every grain and every table must own its sectors, so that a
    /// write to one guest range can never change another one or the metadata. Loads every
    /// grain table (4 bytes per allocated grain are kept for the check).
    pub(crate) fn check_exclusive(&self) -> Result<()> {
        let mut st = self.lock()?;
        let gb = self.hdr.grain_bytes();
        let dir_bytes = self.hdr.gd_entries() * 4;
        let mut meta: Vec<(u64, u64, &str)> = vec![
            (0, 512, "header"),
            (self.hdr.gd_offset * 512, dir_bytes, "grain directory"),
        ];
        if st.rgd.is_some() {
            meta.push((
                self.hdr.rgd_offset * 512,
                dir_bytes,
                "redundant grain directory",
            ));
        }
        let dirs = [Some(st.gd.clone()), st.rgd.clone()];
        for e in dirs.iter().flatten().flatten().filter(|&&e| e != 0) {
            meta.push((u64::from(*e) * 512, GT_BYTES, "grain table"));
        }
        let mut grains = Vec::new();
        for t in 0..st.gd.len() as u64 {
            if st.gd[t as usize] == 0 {
                continue;
            }
            self.load_gt(&mut st, t)?;
            if let Some(gt) = st.cache.get(&t) {
                grains.extend(gt.iter().filter(|&&e| e > 1).copied());
            }
        }
        if let Some(r) = st.rgd.clone() {
            // The redundant tables must agree with the primary ones.
            for (t, &e) in r.iter().enumerate().filter(|(_, &e)| e != 0) {
                let mut raw = vec![0u8; GT_BYTES as usize];
                self.host.read(&mut raw, u64::from(e) * 512)?;
                let primary = st.gd[t] != 0;
                if primary {
                    self.load_gt(&mut st, t as u64)?;
                }
                let same = st
                    .cache
                    .get(&(t as u64))
                    .is_some_and(|gt| le_u32s(&raw) == *gt);
                if !same && (primary || raw.iter().any(|&b| b != 0)) {
                    return Err(self.bad(format!(
                        "VMDK redundant grain table {t} differs from the primary one"
                    )));
                }
            }
        }
        meta.sort_unstable();
        grains.sort_unstable();
        let overlap = |what: &str| self.bad(format!("VMDK {what} overlap"));
        if meta.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err(overlap("tables or directories"));
        }
        if grains.windows(2).any(|w| u64::from(w[1] - w[0]) * 512 < gb) {
            return Err(overlap("grains"));
        }
        for (start, len, what) in &meta {
            // The first grain ending after this structure starts must start after it ends.
            let i = grains.partition_point(|&g| u64::from(g) * 512 + gb <= *start);
            if grains
                .get(i)
                .is_some_and(|&g| u64::from(g) * 512 < start + len)
            {
                return Err(overlap(&format!("grain and {what}")));
            }
        }
        Ok(())
    }

    /// Grains allocated (data or compressed) in loaded-on-demand tables: walks every GT.
    pub(crate) fn allocated(&self) -> Result<u64> {
        let mut st = self.lock()?;
        let mut n = 0;
        for t in 0..st.gd.len() as u64 {
            if st.gd[t as usize] == 0 {
                continue;
            }
            self.load_gt(&mut st, t)?;
            n += st
                .cache
                .get(&t)
                .map_or(0, |gt| gt.iter().filter(|&&e| e > 1).count() as u64);
        }
        Ok(n)
    }
}
