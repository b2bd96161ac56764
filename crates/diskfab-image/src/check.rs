//! `check`: a structural consistency check of a qcow2 image, like `qemu-img check`: every
//! reference from the header, L1/L2 tables and refcount structures is counted and compared with
//! the stored refcounts. Corruptions (refcount below the references, entries outside the file,
//! COPIED flags that lie) and leaks (refcount above the references) are reported separately.
//! VDI, VHD, VHDX and VMDK images are checked by opening them (every table entry is validated)
//! and counting their allocated blocks or grains; a table that fails validation is reported as
//! one corruption (exit 2, as `qemu-img check` does for these formats), with its message.

use crate::header::{parse_qcow2_header, Qcow2Header};
use crate::host::Host;
use diskfab_storage::limits::{alloc_bytes, check_budget, grow_vec};
use diskfab_storage::{open_error, Error, Result};
use serde::Serialize;
use std::path::Path;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;

/// Result of [`check`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// The image path.
    pub path: String,
    /// The format checked.
    pub format: String,
    /// Clusters whose refcount is lower than their references, or references that are invalid.
    pub corruptions: u64,
    /// Clusters whose refcount is higher than their references.
    pub leaks: u64,
    /// Guest clusters allocated in this layer.
    pub allocated_clusters: u64,
    /// Guest clusters of the virtual disk.
    pub total_clusters: u64,
    /// Compressed guest clusters.
    pub compressed_clusters: u64,
    /// End of the last used cluster in the file.
    pub image_end_offset: u64,
    /// One line per problem (at most 1000).
    pub messages: Vec<String>,
}

impl CheckReport {
    /// Exit code as `qemu-img check`: 0 clean, 2 corruptions, 3 only leaks.
    pub fn exit_code(&self) -> i32 {
        if self.corruptions > 0 {
            2
        } else if self.leaks > 0 {
            3
        } else {
            0
        }
    }
    fn problem(&mut self, corrupt: bool, msg: String) {
        if corrupt {
            self.corruptions += 1;
        } else {
            self.leaks += 1;
        }
        if self.messages.len() < 1000 {
            self.messages.push(msg);
        }
    }
}

fn be64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// Reads refcount entry `i` of a refcount block of width `bits`.
fn rc_entry(block: &[u8], i: usize, bits: u32) -> u64 {
    match bits {
        64 => u64::from_be_bytes(block[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])),
        32 => u64::from(u32::from_be_bytes(
            block[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]),
        )),
        16 => u64::from(u16::from_be_bytes([block[i * 2], block[i * 2 + 1]])),
        8 => u64::from(block[i]),
        b => {
            let per_byte = 8 / b as usize;
            let byte = block[i / per_byte];
            let shift = (i % per_byte) * b as usize;
            u64::from((byte >> shift) & ((1u16 << b) - 1) as u8)
        }
    }
}

/// References per cluster. The array grows to the highest cluster referenced, not to the
/// length of the file: a sparse file of terabytes with small clusters would otherwise need
/// tens of GiB. Growth is bounded by the memory budget (`--max-memory`).
struct Refs {
    counts: Vec<u32>,
    cs: u64,
    file_len: u64,
}

impl Refs {
    /// Counts a reference to `[off, off+len)`; false when it lies outside the file.
    fn add(&mut self, off: u64, len: u64) -> Result<bool> {
        if off.saturating_add(len) > self.file_len.div_ceil(self.cs) * self.cs || len == 0 {
            return Ok(false);
        }
        let (first, end) = (off / self.cs, (off + len).div_ceil(self.cs));
        if end > self.counts.len() as u64 {
            let what = format!(
                "counting references up to cluster {end} (at {:#x} in the file)",
                end * self.cs
            );
            grow_vec(&mut self.counts, end, &what)?;
        }
        for x in &mut self.counts[first as usize..end as usize] {
            *x = x.saturating_add(1);
        }
        Ok(true)
    }
}

/// Checks the image at `path` (qcow2; raw images have no metadata and are always clean).
pub fn check(path: &Path) -> Result<CheckReport> {
    let file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
    let host = Host::new(file, path.to_path_buf());
    let file_len = host.len()?;
    let mut head = vec![0u8; 4096.min(file_len as usize)];
    host.read(&mut head, 0)?;
    let mut r = CheckReport {
        path: path.display().to_string(),
        ..Default::default()
    };
    if !head.starts_with(&crate::header::MAGIC) {
        let mut tail = [0u8; 512];
        if file_len >= 512 {
            host.read(&mut tail, file_len - 512)?;
        }
        let format = crate::detect_format_file(&head, &tail, file_len);
        r.format = format.name().into();
        if format != crate::Format::Raw {
            // Opening validates every block-map, BAT and grain-directory entry; the allocation
            // walk loads (and validates) every VMDK grain table.
            let walked = crate::Image::open(path, &crate::OpenOptions::default())
                .and_then(|img| img.allocation());
            match walked {
                Ok(Some((allocated, total))) => {
                    r.allocated_clusters = allocated;
                    r.total_clusters = total;
                    r.image_end_offset = file_len;
                }
                Ok(None) => {}
                // A table entry that fails validation is a corruption of the image (qemu-img
                // check reports these as errors, exit 2), not a failure of the check.
                Err(Error::BadImage(m)) => r.problem(true, format!("ERROR {m}")),
                Err(e) => return Err(e),
            }
        }
        return Ok(r);
    }
    r.format = "qcow2".into();
    let bits = u32::from_be_bytes(
        head.get(20..24)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 4]),
    );
    if (13..=21).contains(&bits) {
        head = vec![0u8; (1usize << bits).min(file_len as usize)];
        host.read(&mut head, 0)?;
    }
    let h = parse_qcow2_header(&head).map_err(|e| e.context(path.display()))?;
    if h.has_bitmaps {
        return Err(Error::Unsupported(
            "checking images with persistent bitmaps (use qemu-img check)".into(),
        ));
    }
    check_qcow2(&host, &h, file_len, &mut r).map_err(|e| match e {
        Error::Failed(_) => e.context("check could not complete"),
        e => e,
    })?;
    Ok(r)
}

fn check_qcow2(host: &Host, h: &Qcow2Header, file_len: u64, r: &mut CheckReport) -> Result<()> {
    let cs = h.cluster_size();
    let nclusters = file_len.div_ceil(cs) as usize;
    let mut refs = Refs {
        counts: Vec::new(),
        cs,
        file_len,
    };
    refs.add(0, cs)?;
    let l1_bytes = u64::from(h.l1_size) * 8;
    if !refs.add(h.l1_table_offset, l1_bytes.div_ceil(cs) * cs)? && l1_bytes > 0 {
        return Err(Error::bad("L1 table lies outside the file"));
    }
    let rt_bytes = u64::from(h.refcount_table_clusters) * cs;
    if !refs.add(h.refcount_table_offset, rt_bytes)? {
        return Err(Error::bad("refcount table lies outside the file"));
    }
    let mut raw = alloc_bytes(l1_bytes, "the qcow2 L1 table")?;
    host.read(&mut raw, h.l1_table_offset)?;
    let l1 = be64s(&raw);
    let mut rt_raw = alloc_bytes(rt_bytes, "the qcow2 refcount table")?;
    host.read(&mut rt_raw, h.refcount_table_offset)?;
    let rt = be64s(&rt_raw);
    let blocks = load_refblocks(host, cs, &rt, &mut refs, r)?;
    let rc = Rc {
        blocks: &blocks,
        per_block: h.refblock_entries() as usize,
        bits: h.refcount_bits(),
    };
    r.total_clusters = h.size.div_ceil(cs);
    let mut w = Walk {
        host,
        h,
        file_len,
        refs,
        rc: &rc,
    };
    w.l1(&l1, true, r)?;
    walk_snapshots(&mut w, r)?;
    let refs = w.refs;
    // Up to the last cluster referenced or the last refcount block present (not the whole
    // table: 2 MiB clusters give a table of 256K entries of 1M refcounts each; nor the whole
    // file: a sparse file of terabytes has billions of clusters nobody refers to).
    let used_blocks = blocks
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    let max = refs.counts.len().max(used_blocks * rc.per_block);
    let refcount = |c: usize| rc.get(c);
    for c in 0..max {
        let want = u64::from(refs.counts.get(c).copied().unwrap_or(0));
        let have = refcount(c);
        if have < want {
            r.problem(
                true,
                format!("ERROR cluster {c} refcount={have} reference={want}"),
            );
        } else if have > want && c < nclusters {
            r.problem(
                false,
                format!("Leaked cluster {c} refcount={have} reference={want}"),
            );
        }
        if want > 0 {
            r.image_end_offset = (c as u64 + 1) * cs;
        }
    }
    Ok(())
}

/// Loads every refcount block once (table index → block bytes), counting their own clusters;
/// their total is bounded by the memory budget.
fn load_refblocks(
    host: &Host,
    cs: u64,
    rt: &[u64],
    refs: &mut Refs,
    r: &mut CheckReport,
) -> Result<Vec<Option<Vec<u8>>>> {
    let mut blocks: Vec<Option<Vec<u8>>> = Vec::new();
    grow_vec(&mut blocks, rt.len() as u64, "the qcow2 refcount table")?;
    let mut loaded = 0u64;
    for (i, e) in rt.iter().enumerate() {
        let off = e & OFFSET_MASK;
        if off == 0 {
            continue;
        }
        if !off.is_multiple_of(cs) || !refs.add(off, cs)? {
            r.problem(
                true,
                format!("ERROR refcount block {i} at {off:#x} is outside the file or unaligned"),
            );
            continue;
        }
        loaded += cs;
        check_budget(loaded, "loading the qcow2 refcount blocks")?;
        let mut b = alloc_bytes(cs, "a qcow2 refcount block")?;
        host.read(&mut b, off)?;
        blocks[i] = Some(b);
    }
    Ok(blocks)
}

/// The stored refcounts, from the loaded refcount blocks.
struct Rc<'a> {
    blocks: &'a [Option<Vec<u8>>],
    per_block: usize,
    bits: u32,
}

impl Rc<'_> {
    fn get(&self, c: usize) -> u64 {
        match self.blocks.get(c / self.per_block) {
            Some(Some(b)) => rc_entry(b, c % self.per_block, self.bits),
            _ => 0,
        }
    }
}

/// Walks L1 → L2 → clusters, counting references. Only the active table (`active`) counts
/// allocated clusters and has its COPIED flags checked (snapshot tables share clusters); the
/// check is made as each entry is seen, so memory does not grow with the number of entries.
struct Walk<'a> {
    host: &'a Host,
    h: &'a Qcow2Header,
    file_len: u64,
    refs: Refs,
    rc: &'a Rc<'a>,
}

impl Walk<'_> {
    /// COPIED must be set exactly when the refcount is 1.
    fn copied(&self, off: u64, copied: bool, what: impl FnOnce() -> String, r: &mut CheckReport) {
        let rc = self.rc.get((off / self.h.cluster_size()) as usize);
        if copied != (rc == 1) {
            r.problem(
                true,
                format!("ERROR OFLAG_COPIED {}: refcount={rc}", what()),
            );
        }
    }

    fn l1(&mut self, l1: &[u64], active: bool, r: &mut CheckReport) -> Result<()> {
        let (h, file_len) = (self.h, self.file_len);
        let cs = h.cluster_size();
        let x = 62 - (h.cluster_bits - 8);
        // Data clusters in an external data file are not refcounted in the image.
        let ext_data = h.data_file.is_some();
        let mut l2 = alloc_bytes(cs, "a qcow2 L2 table")?;
        for (i, e) in l1.iter().enumerate() {
            let off = e & OFFSET_MASK;
            if off == 0 {
                continue;
            }
            if !off.is_multiple_of(cs) || !self.refs.add(off, cs)? {
                r.problem(
                    true,
                    format!("ERROR L1 entry {i} points to {off:#x}, outside the file or unaligned"),
                );
                // Its refcount (none past the end) is checked against COPIED too, as qemu does.
                if active && off.is_multiple_of(cs) {
                    self.copied(off, e & COPIED != 0, || format!("L2 table at {off:#x}"), r);
                }
                continue;
            }
            if active {
                self.copied(off, e & COPIED != 0, || format!("L2 table at {off:#x}"), r);
            }
            self.host.read(&mut l2, off)?;
            let words = be64s(&l2);
            let w = (h.l2_entry_bytes() / 8) as usize;
            for (j, e) in words.chunks_exact(w).enumerate() {
                let (ent, bitmap) = (e[0], if w == 2 { e[1] } else { 0 });
                let guest = (i as u64 * h.l2_entries() + j as u64) * cs;
                if let Some(why) = (w == 2)
                    .then(|| crate::qcow2::invalid_bitmap(ent, bitmap, ext_data))
                    .flatten()
                {
                    r.problem(
                        true,
                        format!("ERROR L2 entry for guest offset {guest:#x}: {why}"),
                    );
                    continue;
                }
                if ent == 0 {
                    continue;
                }
                if ent & COMPRESSED != 0 {
                    let hoff = ent & ((1u64 << x) - 1);
                    let sectors = ((ent >> x) & ((1u64 << (h.cluster_bits - 8)) - 1)) + 1;
                    let len = sectors * 512 - (hoff & 511);
                    if active {
                        r.allocated_clusters += 1;
                        r.compressed_clusters += 1;
                    }
                    let end = (hoff + len).min(file_len.max(hoff + 1));
                    if !self.refs.add(hoff, end - hoff)? {
                        r.problem(true, format!("ERROR compressed cluster for guest offset {guest:#x} is outside the file"));
                    }
                    continue;
                }
                let hoff = ent & OFFSET_MASK;
                if ext_data {
                    if active {
                        r.allocated_clusters += u64::from(hoff != 0 || ent & COPIED != 0);
                    }
                    continue;
                }
                if hoff == 0 {
                    continue; // unallocated or zero without a host cluster
                }
                if active {
                    r.allocated_clusters += u64::from(ent & 1 == 0 || h.version < 3 || w == 2);
                }
                let what = || format!("data cluster for guest offset {guest:#x}");
                if !hoff.is_multiple_of(cs) || !self.refs.add(hoff, cs)? {
                    r.problem(true, format!("ERROR L2 entry for guest offset {guest:#x} points to {hoff:#x}, outside the file or unaligned"));
                    if active && hoff.is_multiple_of(cs) {
                        self.copied(hoff, ent & COPIED != 0, what, r);
                    }
                    continue;
                }
                if active {
                    self.copied(hoff, ent & COPIED != 0, what, r);
                }
            }
        }
        Ok(())
    }
}

/// Counts the snapshot table, each snapshot's L1 table and everything it references.
fn walk_snapshots(w: &mut Walk, r: &mut CheckReport) -> Result<()> {
    let (h, cs) = (w.h, w.h.cluster_size());
    if h.nb_snapshots == 0 {
        return Ok(());
    }
    let snaps = crate::snapshot::load(w.host, h, w.file_len)?;
    let mut raw = alloc_bytes(
        (w.file_len - h.snapshots_offset).min(crate::snapshot::MAX_TABLE_BYTES),
        "the qcow2 snapshot table",
    )?;
    w.host.read(&mut raw, h.snapshots_offset)?;
    let table = crate::snapshot::table_bytes(&snaps, &raw) as u64;
    w.refs.add(h.snapshots_offset, table.div_ceil(cs) * cs)?;
    for s in &snaps {
        let bytes = u64::from(s.l1_size) * 8;
        if bytes == 0 {
            continue;
        }
        if !w.refs.add(s.l1_table_offset, bytes.div_ceil(cs) * cs)? {
            r.problem(
                true,
                format!("ERROR snapshot {} L1 table is outside the file", s.id),
            );
            continue;
        }
        let mut b = alloc_bytes(bytes, "a qcow2 snapshot L1 table")?;
        w.host.read(&mut b, s.l1_table_offset)?;
        w.l1(&be64s(&b), false, r)?;
    }
    Ok(())
}
