//! Whole-image operations: convert (in [`super::convert`]), compare, measure.

pub use super::convert::{convert, ConvertOptions, ConvertReport};
use diskfab_image::{BackingGate, Format, Image, OpenOptions};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::path::Path;

const CHUNK: u64 = 1 << 20;

/// Whether `b` is all zeroes: OR-reduces 4 KiB blocks as u64 words (vectorises), stopping at the
/// first non-zero block.
pub fn all_zero(b: &[u8]) -> bool {
    b.chunks(4096).all(|blk| {
        let words = blk.chunks_exact(8);
        let tail = words.remainder().iter().fold(0u8, |a, &x| a | x);
        let acc = words.fold(0u64, |a, w| {
            a | u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
        });
        acc == 0 && tail == 0
    })
}

/// Result of [`compare`].
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// Whether the guest-visible contents are identical.
    pub identical: bool,
    /// Start of the first 512-byte sector where they differ (the offset `qemu-img compare`
    /// prints).
    pub first_difference: Option<u64>,
    /// The first byte that differs.
    pub first_different_byte: Option<u64>,
    /// Virtual sizes.
    pub size_a: u64,
    /// Virtual sizes.
    pub size_b: u64,
}

/// Largest zero range `compare` asks about at once.
const MAX_SKIP: u64 = 1 << 40;

/// Compares guest-visible contents like `qemu-img compare`: when sizes differ, the extra part
/// of the larger image must read as zeroes for the images to be identical.
pub fn compare(a: &Path, b: &Path, gate: &BackingGate) -> Result<CompareReport> {
    let ia = Image::open(
        a,
        &OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let ib = Image::open(
        b,
        &OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let (da, db) = (ia.dev(), ib.dev());
    let (sa, sb) = (da.size(), db.size());
    let mut rep = CompareReport {
        identical: true,
        first_difference: None,
        first_different_byte: None,
        size_a: sa,
        size_b: sb,
    };
    let (mut ba, mut bb) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
    let common = sa.min(sb);
    let mut off = 0;
    // Ranges that read as zeroes in both images are skipped in steps that double (up to
    // MAX_SKIP), so a sparse image of terabytes compares in a moment; data is read CHUNK-wise.
    let mut step = CHUNK;
    while off < sa.max(sb) {
        let len =
            step.min(sa.max(sb) - off)
                .min(if off < common { common - off } else { u64::MAX });
        let n = len as usize;
        let za = off >= sa || da.is_zero_hint(off, len.min(sa.saturating_sub(off)))?;
        let zb = off >= sb || db.is_zero_hint(off, len.min(sb.saturating_sub(off)))?;
        if za && zb {
            step = (step * 2).min(MAX_SKIP);
        } else if len > CHUNK {
            step = CHUNK;
            continue;
        } else {
            if off < sa {
                da.read_at(&mut ba[..n], off)?;
            } else {
                ba[..n].fill(0);
            }
            if off < sb {
                db.read_at(&mut bb[..n], off)?;
            } else {
                bb[..n].fill(0);
            }
            if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
                rep.identical = false;
                rep.first_different_byte = Some(off + i as u64);
                rep.first_difference = Some((off + i as u64) / 512 * 512);
                return Ok(rep);
            }
        }
        off += len;
    }
    Ok(rep)
}

/// Result of [`measure`].
#[derive(Debug, Clone, Serialize)]
pub struct MeasureReport {
    /// Output format.
    pub format: Format,
    /// Bytes the output of `convert` needs (metadata + the source's non-zero data).
    pub required: u64,
    /// Bytes a fully allocated output would need.
    pub fully_allocated: u64,
}

/// qcow2 file size for `data` data clusters and `l2` L2 tables of a `size`-byte disk with
/// clusters of `cs` bytes, laid out as `create` + `convert` write them.
fn qcow2_bytes(size: u64, cs: u64, data: u64, l2: u64) -> u64 {
    let l1 = (size.div_ceil(cs * (cs / 8)) * 8).div_ceil(cs);
    let per_block = cs * 8 / 16;
    let (mut table, mut blocks) = (1u64, 1u64);
    loop {
        let total = 1 + table + blocks + l1 + data + l2;
        let nb = total.div_ceil(per_block);
        let nt = (nb * 8).div_ceil(cs);
        if nb == blocks && nt == table {
            return total * cs;
        }
        blocks = nb;
        table = nt;
    }
}

/// Computes the size a conversion of `src` to `format` would need (like `qemu-img measure`).
pub fn measure(
    src: &Path,
    format: Format,
    cluster_size: Option<u32>,
    gate: &BackingGate,
) -> Result<MeasureReport> {
    let s = Image::open(
        src,
        &OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let d = s.dev();
    let size = d.size();
    let unit: u64 = match format {
        Format::Qcow2 => u64::from(cluster_size.unwrap_or(65536)),
        Format::Vdi => 1 << 20,
        Format::Vhd => u64::from(diskfab_image::vhd::DEFAULT_BLOCK),
        Format::Raw | Format::Vmdk => 64 << 10,
        Format::Vhdx => u64::from(cluster_size.unwrap_or(diskfab_image::vhdx::DEFAULT_BLOCK)),
    };
    let range = if format == Format::Vhdx {
        1 << 20..=256 << 20
    } else {
        512..=2 << 20
    };
    if !unit.is_power_of_two() || !range.contains(&unit) {
        return Err(Error::Invalid(format!(
            "{} size must be a power of two from {} to {}",
            if format == Format::Vhdx {
                "block"
            } else {
                "cluster"
            },
            range.start(),
            range.end()
        )));
    }
    let (mut data, mut l2s) = (0u64, std::collections::BTreeSet::new());
    let mut buf = vec![0u8; CHUNK.max(unit) as usize];
    let mut off = 0;
    while off < size {
        let len = CHUNK.max(unit).min(size - off);
        if !d.is_zero_hint(off, len)? {
            d.read_at(&mut buf[..len as usize], off)?;
            for (i, piece) in buf[..len as usize].chunks(unit as usize).enumerate() {
                if !all_zero(piece) {
                    let c = off / unit + i as u64;
                    data += 1;
                    l2s.insert(c / (unit / 8));
                }
            }
        }
        off += len;
    }
    let clusters = size.div_ceil(unit);
    let (required, fully_allocated) = match format {
        Format::Raw => (size, size),
        Format::Vdi => {
            let head = (512 + clusters * 4).div_ceil(512) * 512;
            (head + data * unit, head + clusters * unit)
        }
        Format::Vhd => {
            // Dynamic: footer copy, header, BAT; each block is a sector bitmap and its data.
            let head = 1536 + (clusters * 4).div_ceil(512) * 512 + 512;
            (head + data * (512 + unit), head + clusters * (512 + unit))
        }
        Format::Vhdx => {
            // Headers, log, metadata, the BAT (1 MiB aligned), then whole payload blocks.
            let n = diskfab_image::vhdx::build(
                size.div_ceil(512) * 512,
                true,
                Some(unit as u32),
                [[0; 16]; 3],
            )?;
            let head = n.len - clusters * unit;
            (head + data * unit, n.len)
        }
        Format::Vmdk => {
            // monolithicSparse: header, descriptor, both grain directories and tables.
            let overhead = diskfab_image::vmdk::build(size.div_ceil(512) * 512, false, "m", 0)
                .map(|n| n.header.overhead * 512)?;
            (overhead + data * unit, overhead + clusters * unit)
        }
        Format::Qcow2 => (
            qcow2_bytes(size, unit, data, l2s.len() as u64),
            qcow2_bytes(size, unit, clusters, clusters.div_ceil(unit / 8)),
        ),
    };
    Ok(MeasureReport {
        format,
        required,
        fully_allocated,
    })
}
