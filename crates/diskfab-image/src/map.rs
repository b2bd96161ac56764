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
    while off < size {
        let len = gran.min(size - off);
        let (kind, depth) = classify(img, off, len)?;
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
