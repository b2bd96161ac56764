//! `map`: which guest ranges hold data, read as zeroes or are unallocated, and which layer of the
//! backing chain provides them (like `qemu-img map`).

use crate::image::Image;
use crate::qcow2::ClusterKind;
use diskfab_storage::Result;
use serde::Serialize;

/// One extent of [`map`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Guest offset.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// `data`, `zero` or `unallocated` (reads as zeroes, provided by no layer).
    pub kind: &'static str,
    /// Chain depth of the layer providing it (0 = the image itself).
    pub depth: usize,
    /// That layer's path (absent for unallocated ranges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Maps the whole guest disk of `img`, at the finest allocation unit of its qcow2 layers (the
/// subcluster with extended L2 entries).
pub fn map(img: &Image) -> Result<Vec<Extent>> {
    let size = img.dev().size();
    let gran = img
        .layers
        .iter()
        .filter_map(|l| l.qcow.as_ref().map(|q| 1u64 << q.hdr.unit_bits()))
        .min()
        .unwrap_or(1 << 20)
        .max(512);
    let mut out: Vec<Extent> = Vec::new();
    let mut off = 0u64;
    // Without qcow2 layers, zero ranges are asked about in steps that double (up to 1 TiB), so
    // a sparse raw file of terabytes maps in a moment; a step that is not all zero is retried
    // at the granularity.
    let plain = img.layers.iter().all(|l| l.qcow.is_none());
    let mut step = gran;
    while off < size {
        let hole = hole(img, off)?;
        let len = if hole > 0 { hole } else { step }.min(size - off);
        let (kind, depth) = if hole > 0 {
            ("unallocated", 0)
        } else {
            classify(img, off, len)?
        };
        if plain {
            if kind != "zero" && len > gran {
                step = gran;
                continue;
            }
            step = if kind == "zero" {
                (step * 2).min(1 << 40)
            } else {
                gran
            };
        }
        let layer = (kind != "unallocated").then(|| img.layers[depth].path.display().to_string());
        match out.last_mut() {
            Some(e) if e.kind == kind && e.depth == depth && e.start + e.length == off => {
                e.length += len
            }
            _ => out.push(Extent {
                start: off,
                length: len,
                kind,
                depth,
                layer,
            }),
        }
        off += len;
    }
    Ok(out)
}

/// Bytes from `off` that no layer allocates, as far as whole qcow2 L1 ranges without an L2
/// table tell (0 when unknown): a sparse 64 PiB image maps in a moment, not cluster by cluster.
fn hole(img: &Image, off: u64) -> Result<u64> {
    let mut n = u64::MAX;
    for l in &img.layers {
        if off >= l.dev.size() {
            break; // this layer and those below it provide nothing here
        }
        match &l.qcow {
            Some(q) => match q.l1_hole(off)? {
                0 => return Ok(0),
                h => n = n.min(h),
            },
            None => return Ok(0),
        }
    }
    Ok(if n == u64::MAX { 0 } else { n })
}

fn classify(img: &Image, off: u64, len: u64) -> Result<(&'static str, usize)> {
    for (depth, l) in img.layers.iter().enumerate() {
        if off >= l.dev.size() {
            return Ok(("unallocated", 0));
        }
        match &l.qcow {
            Some(q) => match q.kind_at(off)? {
                ClusterKind::Unallocated => continue,
                ClusterKind::Zero => return Ok(("zero", depth)),
                ClusterKind::Data => return Ok(("data", depth)),
            },
            None => {
                let n = len.min(l.dev.size() - off);
                return Ok(if l.dev.is_zero_hint(off, n)? {
                    ("zero", depth)
                } else {
                    ("data", depth)
                });
            }
        }
    }
    Ok(("unallocated", 0))
}
