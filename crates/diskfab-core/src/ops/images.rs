//! Whole-image operations: convert (sparse-aware, reading and writing on two threads) and compare.

use diskfab_image::{create, BackingGate, CreateOptions, Format, Image, OpenOptions};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

const CHUNK: u64 = 1 << 20;

/// Options of [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Output format.
    pub format: Format,
    /// qcow2 cluster size.
    pub cluster_size: Option<u32>,
    /// Make the output an overlay of this base (stored as given); only ranges that differ from
    /// the base are written.
    pub backing: Option<PathBuf>,
    /// Policy for backing files of the source (and of the new output's base).
    pub gate: BackingGate,
    /// Fully allocated output layout (VDI static, VHD fixed).
    pub fixed: bool,
    /// VMDK output is streamOptimized (deflated, written in order) instead of monolithicSparse.
    pub stream_optimized: bool,
    /// Write compressed qcow2 clusters.
    pub compress: bool,
    /// Use zstd for compressed clusters (zlib otherwise).
    pub zstd: bool,
    /// qcow2 output with extended L2 entries (32 subclusters per cluster).
    pub extended_l2: bool,
    /// VHD: the size exactly as given (no CHS rounding by any reader).
    pub force_size: bool,
    /// VHD for Azure: fixed, size rounded up to a whole MiB and forced.
    pub azure: bool,
}

/// What [`convert`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConvertReport {
    /// Guest size.
    pub virtual_size: u64,
    /// Bytes written to the output.
    pub written: u64,
    /// Bytes skipped as zero, unallocated or equal to the base.
    pub skipped: u64,
    /// Output file size on the host.
    pub output_allocated: u64,
    /// The output's guest size when it differs from the source's (`azure=on` rounds up to a
    /// whole MiB; the added tail reads as zeroes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_size: Option<u64>,
}

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

/// Converts `src` into a new image `dst` (never overwritten). Unallocated and zero ranges are not
/// written; with a backing base, ranges equal to the base are not written either. A failed
/// conversion removes the partial output.
pub fn convert(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    let s = Image::open(
        src,
        &OpenOptions {
            writable: false,
            gate: opts.gate.clone(),
        },
    )?;
    let sdev = s.dev();
    let size = sdev.size();
    if opts.format == Format::Raw && opts.backing.is_some() {
        return Err(Error::Invalid(
            "raw images cannot have a backing file".into(),
        ));
    }
    create(
        dst,
        &CreateOptions {
            format: opts.format,
            size: Some(size),
            backing: opts.backing.clone(),
            backing_format: None,
            cluster_size: opts.cluster_size,
            fixed: opts.fixed,
            // A compressed VMDK is a stream-optimized one.
            stream_optimized: opts.stream_optimized
                || (opts.compress && opts.format == Format::Vmdk),
            zstd: opts.zstd,
            extended_l2: opts.extended_l2,
            force_size: opts.force_size,
            azure: opts.azure,
        },
    )?;
    let r = convert_into(&sdev, dst, opts, progress);
    if r.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    r
}

fn convert_into(
    sdev: &DevRef,
    dst: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    let d = Image::open(
        dst,
        &OpenOptions {
            writable: true,
            gate: opts.gate.clone(),
        },
    )?;
    let ddev = d.dev();
    let size = sdev.size();
    let has_base = opts.backing.is_some();
    let mut rep = ConvertReport {
        virtual_size: size,
        ..Default::default()
    };
    std::thread::scope(|sc| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(u64, Option<Vec<u8>>)>>(8);
        let src = sdev.clone();
        sc.spawn(move || {
            let mut off = 0u64;
            while off < size {
                let len = CHUNK.min(size - off);
                let item = (|| -> Result<(u64, Option<Vec<u8>>)> {
                    if !has_base && src.is_zero_hint(off, len)? {
                        return Ok((off, None));
                    }
                    let mut b = vec![0u8; len as usize];
                    src.read_at(&mut b, off)?;
                    Ok((off, Some(b)))
                })();
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    return;
                }
                off += len;
            }
        });
        let mut below = if has_base {
            vec![0u8; CHUNK as usize]
        } else {
            Vec::new()
        };
        for item in rx {
            let (off, data) = item?;
            let len = CHUNK.min(size - off);
            match data {
                None => rep.skipped += len,
                Some(b) if has_base => {
                    // The new overlay reads its base where unwritten: write only what differs.
                    ddev.read_at(&mut below[..b.len()], off)?;
                    if below[..b.len()] == b[..] {
                        rep.skipped += len;
                    } else if all_zero(&b) {
                        ddev.write_zeroes(off, len)?;
                        rep.written += len;
                    } else {
                        ddev.write_at(&b, off)?;
                        rep.written += len;
                    }
                }
                Some(b) if opts.compress => write_compressed(&d, &b, off, &mut rep)?,
                Some(b) => write_nonzero(&ddev, &b, off, &mut rep)?,
            }
            progress(len);
        }
        Ok(())
    })?;
    d.flush()?;
    rep.output_size = Some(ddev.size()).filter(|&n| n != size);
    rep.output_allocated = std::fs::metadata(dst)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap_or(0);
    Ok(rep)
}

/// Writes the non-zero 64 KiB pieces of a chunk (zero pieces stay unallocated).
fn write_nonzero(d: &DevRef, b: &[u8], off: u64, rep: &mut ConvertReport) -> Result<()> {
    const PIECE: usize = 64 << 10;
    let mut i = 0;
    while i < b.len() {
        let j = (i + PIECE).min(b.len());
        if all_zero(&b[i..j]) {
            rep.skipped += (j - i) as u64;
            i = j;
            continue;
        }
        // Extend over following non-zero pieces for one larger write.
        let mut k = j;
        while k < b.len() {
            let e = (k + PIECE).min(b.len());
            if all_zero(&b[k..e]) {
                break;
            }
            k = e;
        }
        d.write_at(&b[i..k], off + i as u64)?;
        rep.written += (k - i) as u64;
        i = k;
    }
    Ok(())
}

/// Writes the non-zero 64 KiB pieces of a chunk as compressed clusters.
fn write_compressed(d: &Image, b: &[u8], off: u64, rep: &mut ConvertReport) -> Result<()> {
    const PIECE: usize = 64 << 10;
    for (i, p) in b.chunks(PIECE).enumerate() {
        if all_zero(p) {
            rep.skipped += p.len() as u64;
        } else {
            d.write_compressed(p, off + (i * PIECE) as u64)?;
            rep.written += p.len() as u64;
        }
    }
    Ok(())
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
    while off < sa.max(sb) {
        let len =
            CHUNK
                .min(sa.max(sb) - off)
                .min(if off < common { common - off } else { u64::MAX });
        let n = len as usize;
        let za = off >= sa || da.is_zero_hint(off, len.min(sa.saturating_sub(off)))?;
        let zb = off >= sb || db.is_zero_hint(off, len.min(sb.saturating_sub(off)))?;
        if !(za && zb) {
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
