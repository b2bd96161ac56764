//! The I/O side: reading clusters through runlists, MFT records (with attribute lists) and
//! attribute streams (resident, sparse, LZNT1-compressed).

use crate::boot::{self, Boot};
use crate::lznt1;
use crate::names::UpCase;
use crate::record::{self, apply_fixups, parse_attr_list, ty, Attr, Body, NonResident};
use crate::runlist::{self, Run};
use diskfab_storage::{limits, DevRef, Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// Most extension records one file's attribute list may name.
const MAX_EXTENSION_RECORDS: usize = 4096;
/// Most entries of one attribute list.
const MAX_LIST_ENTRIES: usize = 65536;
/// Largest attribute list value read.
const MAX_LIST_BYTES: u64 = 4 << 20;
/// Records kept parsed in memory.
const CACHE_RECORDS: usize = 8192;
/// Largest compression unit accepted.
const MAX_UNIT: u64 = 1 << 20;

/// Extension records named by an attribute list, each with the (type, id) pairs it holds.
type Extensions = Vec<(u64, Vec<(u32, u16)>)>;

/// A file's base record with the attributes of all its extension records.
#[derive(Debug, Clone)]
pub struct File {
    /// Record number.
    pub rec: u64,
    /// Sequence number.
    pub seq: u16,
    /// Record flags (0x0002: directory).
    pub flags: u16,
    /// Every attribute, base record first.
    pub attrs: Vec<Attr>,
}

impl File {
    /// The attributes of type `t` named `name`.
    pub fn find<'a>(&'a self, t: u32, name: &'a [u16]) -> impl Iterator<Item = &'a Attr> + 'a {
        self.attrs
            .iter()
            .filter(move |a| a.ty == t && a.name == name)
    }
}

/// An attribute value as a readable stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The value when resident.
    pub resident: Option<Vec<u8>>,
    /// Runs of all extents, by VCN.
    pub runs: Vec<Run>,
    /// Logical size.
    pub size: u64,
    /// Bytes past this read as zeroes.
    pub init: u64,
    /// Bytes allocated on disk.
    pub allocated: u64,
    /// log2 clusters per compression unit when compressed, else 0.
    pub comp_unit: u8,
}

/// An open NTFS volume.
pub struct Volume {
    dev: DevRef,
    /// The boot sector's geometry.
    pub boot: Boot,
    clusters: u64,
    mft: Stream,
    /// Case folding for lookups.
    pub upcase: UpCase,
    cache: HashMap<u64, Arc<File>>,
    unit_cache: Option<(usize, u64, Vec<u8>)>,
}

fn dev_err(e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::bad(format!("NTFS: {m}")),
        e => e,
    }
}

impl Volume {
    /// Opens the volume on `dev`: boot sector, $MFT (its own attribute list included), $UpCase.
    pub fn open(dev: DevRef) -> Result<Volume> {
        let mut bs = [0u8; 512];
        dev.read_at(&mut bs, 0).map_err(dev_err)?;
        let boot = boot::parse(&bs)?;
        let clusters = (boot.volume_bytes() / u64::from(boot.cluster_size))
            .min(dev.size() / u64::from(boot.cluster_size));
        let mut v = Volume {
            dev,
            boot,
            clusters,
            mft: Stream::default(),
            upcase: UpCase::ascii(),
            cache: HashMap::new(),
            unit_cache: None,
        };
        v.load_mft()?;
        // A missing or unreadable $UpCase leaves ASCII case folding (lookups still work).
        if let Ok(b) = v.upcase_bytes() {
            v.upcase = UpCase::from_bytes(&b);
        }
        Ok(v)
    }

    fn upcase_bytes(&mut self) -> Result<Vec<u8>> {
        let up = self.load(10)?;
        let s = self
            .stream(&up, ty::DATA, &[])?
            .filter(|s| s.size == 131072)
            .ok_or_else(|| Error::bad("NTFS: $UpCase is not 128 KiB"))?;
        let mut b = vec![0u8; 131072];
        self.read(0, &s, 0, &mut b)?;
        Ok(b)
    }

    /// Clusters in the volume (bounded by the device).
    pub fn clusters(&self) -> u64 {
        self.clusters
    }

    fn load_mft(&mut self) -> Result<()> {
        let rs = self.boot.record_size as usize;
        let mut raw = vec![0u8; rs];
        let off = self
            .boot
            .mft_lcn
            .checked_mul(u64::from(self.boot.cluster_size))
            .ok_or_else(|| Error::bad("NTFS: $MFT offset overflows"))?;
        self.dev.read_at(&mut raw, off).map_err(dev_err)?;
        apply_fixups(&mut raw, b"FILE")?;
        let base = record::parse_record(&raw, self.clusters)?;
        let mut file = File {
            rec: 0,
            seq: base.seq,
            flags: base.flags,
            attrs: base.attrs,
        };
        self.mft = self
            .stream(&file, ty::DATA, &[])?
            .ok_or_else(|| Error::bad("NTFS: $MFT has no data"))?;
        if self.mft.resident.is_some() {
            return Err(Error::bad("NTFS: $MFT is resident"));
        }
        if let Some(list) = self.attr_list(&file)? {
            // Extension records of $MFT are read with the runs known so far.
            for (n, wanted) in list {
                let ext = self.read_record(n)?;
                file.attrs.extend(ext.attrs.into_iter().filter(|a| {
                    a.ty == ty::DATA && wanted.iter().any(|&(t, id)| t == a.ty && id == a.id)
                }));
                self.mft = self
                    .stream(&file, ty::DATA, &[])?
                    .ok_or_else(|| Error::bad("NTFS: $MFT has no data"))?;
            }
        }
        Ok(())
    }

    /// Reads MFT record `n` (fixups applied, parsed).
    fn read_record(&mut self, n: u64) -> Result<record::Record> {
        let rs = u64::from(self.boot.record_size);
        if n >= self.mft.size / rs {
            return Err(Error::NotFound(format!("NTFS: MFT record {n} beyond $MFT")));
        }
        let mut raw = vec![0u8; rs as usize];
        let mft = std::mem::take(&mut self.mft);
        let r = self.read(0, &mft, n * rs, &mut raw);
        self.mft = mft;
        r?;
        apply_fixups(&mut raw, b"FILE")?;
        record::parse_record(&raw, self.clusters)
    }

    /// The extension records an attribute list names, with the (type, id) pairs wanted from
    /// each; `None` without an attribute list.
    fn attr_list(&mut self, f: &File) -> Result<Option<Extensions>> {
        let Some(s) = self.stream(f, ty::ATTRIBUTE_LIST, &[])? else {
            return Ok(None);
        };
        if s.size > MAX_LIST_BYTES {
            return Err(Error::bad(format!(
                "NTFS: attribute list of {} bytes",
                s.size
            )));
        }
        let mut v = vec![0u8; s.size as usize];
        self.read(0, &s, 0, &mut v)?;
        let mut out: Vec<(u64, Vec<(u32, u16)>)> = Vec::new();
        for e in parse_attr_list(&v, MAX_LIST_ENTRIES)? {
            if e.record == f.rec {
                continue;
            }
            if let Some((_, w)) = out.iter_mut().find(|(r, _)| *r == e.record) {
                w.push((e.ty, e.id));
            } else if out.len() >= MAX_EXTENSION_RECORDS {
                return Err(Error::bad("NTFS: attribute list names too many records"));
            } else {
                out.push((e.record, vec![(e.ty, e.id)]));
            }
        }
        Ok(Some(out))
    }

    /// Loads file record `n` with its extension records (cached).
    pub fn load(&mut self, n: u64) -> Result<Arc<File>> {
        if let Some(f) = self.cache.get(&n) {
            return Ok(f.clone());
        }
        let r = self.read_record(n)?;
        if r.flags & 1 == 0 {
            return Err(Error::NotFound(format!(
                "NTFS: MFT record {n} is not in use"
            )));
        }
        if r.base != 0 {
            return Err(Error::bad(format!(
                "NTFS: MFT record {n} is an extension record"
            )));
        }
        let mut f = File {
            rec: n,
            seq: r.seq,
            flags: r.flags,
            attrs: r.attrs,
        };
        if let Some(list) = self.attr_list(&f)? {
            let mut extra = Vec::new();
            for (m, wanted) in list {
                let ext = self.read_record(m)?;
                if ext.base != n {
                    return Err(Error::bad(format!(
                        "NTFS: record {m} listed by {n} belongs to record {}",
                        ext.base
                    )));
                }
                extra.extend(
                    ext.attrs
                        .into_iter()
                        .filter(|a| wanted.contains(&(a.ty, a.id))),
                );
            }
            f.attrs.extend(extra);
        }
        if self.cache.len() >= CACHE_RECORDS {
            self.cache.clear();
        }
        let f = Arc::new(f);
        self.cache.insert(n, f.clone());
        Ok(f)
    }

    /// The stream of attribute `t` named `name` (all its extents), if present.
    pub fn stream(&self, f: &File, t: u32, name: &[u16]) -> Result<Option<Stream>> {
        let mut ext: Vec<(&NonResident, u16)> = Vec::new();
        for a in f.find(t, name) {
            match &a.body {
                Body::Resident(v) => {
                    return Ok(Some(Stream {
                        resident: Some(v.clone()),
                        size: v.len() as u64,
                        init: v.len() as u64,
                        allocated: v.len() as u64,
                        ..Stream::default()
                    }))
                }
                Body::NonResident(nr) => ext.push((nr, a.flags)),
            }
        }
        if ext.is_empty() {
            return Ok(None);
        }
        ext.sort_by_key(|(nr, _)| nr.start_vcn);
        let (first, flags) = ext[0];
        if first.start_vcn != 0 {
            return Err(Error::bad(
                "NTFS: attribute's first extent does not start at VCN 0",
            ));
        }
        let n_runs: usize = ext.iter().map(|(nr, _)| nr.runs.len()).sum();
        limits::check_elems::<Run>(n_runs as u64, "an NTFS runlist")?;
        let mut runs: Vec<Run> = Vec::with_capacity(n_runs);
        let mut next = 0u64;
        for (nr, _) in &ext {
            if nr.start_vcn < next {
                return Err(Error::bad("NTFS: overlapping attribute extents"));
            }
            runs.extend(nr.runs.iter().copied());
            next = runs.last().map_or(nr.start_vcn, |r| r.vcn + r.len);
        }
        let compressed = flags & 0x0001 != 0 && first.comp_unit != 0;
        Ok(Some(Stream {
            resident: None,
            runs,
            size: first.data_size,
            init: first.init_size.min(first.data_size),
            allocated: first.compressed_size.unwrap_or(first.alloc_size),
            comp_unit: if compressed { first.comp_unit } else { 0 },
        }))
    }

    /// Reads `buf.len()` bytes at byte `off` of the runs (holes and unmapped clusters read
    /// as zeroes).
    fn read_runs(&self, runs: &[Run], off: u64, buf: &mut [u8]) -> Result<()> {
        let cs = u64::from(self.boot.cluster_size);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let vcn = pos / cs;
            let in_cl = pos % cs;
            let (n, lcn) = match runlist::find(runs, vcn) {
                Some(r) => {
                    let left = (r.vcn + r.len - vcn) * cs - in_cl;
                    (left, r.lcn.map(|l| l + (vcn - r.vcn)))
                }
                None => {
                    let nxt = runs.iter().map(|r| r.vcn).find(|&v| v > vcn);
                    (nxt.map_or(u64::MAX, |v| (v - vcn) * cs - in_cl), None)
                }
            };
            let n = n.min((buf.len() - done) as u64) as usize;
            let dst = &mut buf[done..done + n];
            match lcn {
                Some(l) => self.dev.read_at(dst, l * cs + in_cl).map_err(dev_err)?,
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    /// Reads from stream `s` at `off`; returns bytes read (0 at its end). `key` names the
    /// stream for the decompressed-unit cache.
    pub fn read(&mut self, key: usize, s: &Stream, off: u64, buf: &mut [u8]) -> Result<usize> {
        if off >= s.size {
            return Ok(0);
        }
        let n = (s.size - off).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        if let Some(v) = &s.resident {
            buf.copy_from_slice(&v[off as usize..off as usize + n]);
            return Ok(n);
        }
        if s.comp_unit != 0 {
            return self.read_compressed(key, s, off, buf).map(|_| n);
        }
        let real = s.init.saturating_sub(off).min(n as u64) as usize;
        self.read_runs(&s.runs, off, &mut buf[..real])?;
        buf[real..].fill(0);
        Ok(n)
    }

    fn read_compressed(&mut self, key: usize, s: &Stream, off: u64, buf: &mut [u8]) -> Result<()> {
        let cs = u64::from(self.boot.cluster_size);
        let uc = 1u64.checked_shl(u32::from(s.comp_unit)).unwrap_or(u64::MAX);
        let ub = uc.saturating_mul(cs);
        if ub > MAX_UNIT {
            return Err(Error::Unsupported(format!(
                "NTFS compression unit of {ub} bytes"
            )));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let unit = pos / ub;
            let in_unit = (pos % ub) as usize;
            let n = (ub as usize - in_unit).min(buf.len() - done);
            let cached = matches!(&self.unit_cache, Some((k, u, _)) if *k == key && *u == unit);
            if !cached {
                let data = self.unit(s, unit, uc, cs)?;
                self.unit_cache = Some((key, unit, data));
            }
            if let Some((_, _, data)) = &self.unit_cache {
                buf[done..done + n].copy_from_slice(&data[in_unit..in_unit + n]);
            }
            done += n;
        }
        Ok(())
    }

    /// One compression unit decoded: all holes → zeroes, no holes → stored plainly, else its
    /// allocated clusters hold LZNT1 chunks.
    fn unit(&self, s: &Stream, unit: u64, uc: u64, cs: u64) -> Result<Vec<u8>> {
        let ub = (uc * cs) as usize;
        let mut out = vec![0u8; ub];
        let v0 = unit * uc;
        let mut alloc = 0u64;
        let mut v = v0;
        while v < v0 + uc {
            match runlist::find(&s.runs, v) {
                Some(r) => {
                    let n = (r.vcn + r.len).min(v0 + uc) - v;
                    if r.lcn.is_some() {
                        alloc += n;
                    }
                    v += n;
                }
                None => v += 1,
            }
        }
        if alloc == 0 {
            return Ok(out);
        }
        if alloc == uc {
            self.read_runs(&s.runs, v0 * cs, &mut out)?;
            return Ok(out);
        }
        let mut src = vec![0u8; (alloc * cs) as usize];
        self.read_runs(&s.runs, v0 * cs, &mut src)?;
        lznt1::decompress(&src, &mut out)?;
        Ok(out)
    }
}
