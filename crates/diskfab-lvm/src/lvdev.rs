//! [`LvDev`]: a linear or striped logical volume as a [`BlockDev`]. Reads and writes go to the
//! mapped extents on the PV devices only (the geometry check of [`crate::scan`] keeps those
//! clear of labels and metadata areas).

use crate::scan::AssembledVg;
use diskfab_storage::{check_range, BlockDev, DevRef, Error, Result};

/// One segment mapped to devices.
#[derive(Debug, Clone)]
struct Mapped {
    /// Byte offset of the segment in the LV.
    start: u64,
    /// Length in bytes.
    len: u64,
    /// Bytes per stripe chunk (the whole segment for one stripe).
    chunk: u64,
    /// Each stripe's device and the byte offset of its first extent there.
    stripes: Vec<(DevRef, u64)>,
}

/// A logical volume mapped onto its PVs.
#[derive(Debug)]
pub struct LvDev {
    name: String,
    size: u64,
    segs: Vec<Mapped>,
    devs: Vec<DevRef>,
}

/// `/dev/mapper` name of an LV: VG and LV joined by `-`, dashes inside the names doubled.
pub fn mapper_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

impl LvDev {
    /// Maps LV `name` of `a`; refuses other segment types by name, missing PVs by UUID.
    pub fn open(a: &AssembledVg, name: &str) -> Result<LvDev> {
        let vg = &a.vg;
        if let Some(e) = &a.error {
            return Err(Error::bad(e.clone()));
        }
        let lv = vg
            .lvs
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| Error::NotFound(format!("no LV {name} in VG {}", vg.name)))?;
        if !lv.supported() {
            return Err(Error::Unsupported(format!(
                "LV {}/{name} has segment type {}: diskfab reads linear and striped LVs only",
                vg.name,
                lv.kind()
            )));
        }
        let mut segs = Vec::with_capacity(lv.segments.len());
        let mut devs: Vec<DevRef> = Vec::new();
        for s in &lv.segments {
            let len = s.extent_count * vg.extent_size; // bounded: checked against the PV sizes
            let mut stripes = Vec::new();
            for &(pv, first) in &s.stripes {
                let meta = &vg.pvs[pv];
                let dev = a.devs.get(pv).cloned().flatten().ok_or_else(|| {
                    Error::Failed(format!(
                        "LV {}/{name} needs PV {} ({}), which was not found on this disk",
                        vg.name, meta.id, meta.key
                    ))
                })?;
                if !devs.iter().any(|d| std::sync::Arc::ptr_eq(d, &dev)) {
                    devs.push(dev.clone());
                }
                stripes.push((dev, meta.pe_start + first * vg.extent_size));
            }
            let chunk = if stripes.len() > 1 {
                s.stripe_size
            } else {
                len
            };
            if chunk == 0 || (stripes.len() > 1 && !vg.extent_size.is_multiple_of(chunk)) {
                return Err(Error::bad(format!(
                    "LV {}/{name}: stripe size {chunk} does not divide the extent size",
                    vg.name
                )));
            }
            segs.push(Mapped {
                start: s.start_extent * vg.extent_size,
                len,
                chunk,
                stripes,
            });
        }
        Ok(LvDev {
            name: format!("{}/{name}", vg.name),
            size: lv.size(vg.extent_size),
            segs,
            devs,
        })
    }

    /// `vg/lv`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `f(device, device offset, position in the request, length)` for each contiguous
    /// piece of `[offset, offset+len)`.
    fn each(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&DevRef, u64, usize, usize) -> Result<()>,
    ) -> Result<()> {
        check_range(self.size, offset, len)?;
        let mut done = 0u64;
        while done < len {
            let pos = offset + done;
            let i = self.segs.partition_point(|s| s.start + s.len <= pos);
            let s = self
                .segs
                .get(i)
                .ok_or_else(|| Error::bad("LV offset outside its segments"))?;
            let off = pos - s.start;
            let chunk_idx = off / s.chunk;
            let n = s.stripes.len() as u64;
            let (dev, base) = &s.stripes[(chunk_idx % n) as usize];
            let in_chunk = off % s.chunk;
            let dev_off = base + (chunk_idx / n) * s.chunk + in_chunk;
            let piece = (len - done).min(s.chunk - in_chunk);
            f(dev, dev_off, done as usize, piece as usize)?;
            done += piece;
        }
        Ok(())
    }
}

impl BlockDev for LvDev {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.each(offset, buf.len() as u64, |d, o, at, n| {
            d.read_at(&mut buf[at..at + n], o)
        })
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable() {
            return Err(Error::ReadOnly(format!("LV {}", self.name)));
        }
        self.each(offset, buf.len() as u64, |d, o, at, n| {
            d.write_at(&buf[at..at + n], o)
        })
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        if !self.writable() {
            return Err(Error::ReadOnly(format!("LV {}", self.name)));
        }
        self.each(offset, len, |d, o, _, n| d.write_zeroes(o, n as u64))
    }
    fn flush(&self) -> Result<()> {
        self.devs.iter().try_for_each(|d| d.flush())
    }
    fn writable(&self) -> bool {
        self.devs.iter().all(|d| d.writable())
    }
    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        let mut all = true;
        self.each(offset, len, |d, o, _, n| {
            all = all && d.is_zero_hint(o, n as u64)?;
            Ok(())
        })?;
        Ok(all)
    }
}
