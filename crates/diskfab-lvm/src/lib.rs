//! diskfab volume-manager layer: LVM2 and LUKS.
//!
//! LVM2: [`label`] (PV label, PV header, metadata-area header; pure), [`text`] (the text
//! metadata format; pure, bounded), [`model`] (VG/PV/LV/segment model, validated; pure),
//! [`scan`] (reading PVs from devices, choosing the metadata copy with the highest seqno,
//! grouping PVs into VGs) and [`LvDev`] (a linear or striped LV as a `BlockDev`). Other segment
//! types (thin, raid, cache, mirror, snapshot, vdo, ...) are reported by name and refused.
//!
//! LUKS: [`luks`] detects LUKS1/LUKS2 and reports the header (cipher, UUID, key slots); nothing
//! is decrypted.
#![deny(missing_docs)]

pub mod crc;
pub mod label;
pub mod luks;
mod lvdev;
pub mod model;
pub mod scan;
pub mod text;

pub use lvdev::{mapper_name, LvDev};
pub use model::{LvMeta, PvMeta, Segment, VolumeGroup};
pub use scan::{assemble, is_pv, scan_pv, AssembledVg, PvScan};

use diskfab_storage::{BlockDev, DevRef, MemDev};
use std::sync::Arc;

/// Fuzz entry: `data` as the start of a PV (label, metadata areas, text, every LV mapped and
/// read; the device is zero-padded to the size its label records, at most 1 MiB), then as
/// metadata text on its own. Returns a count so work is not optimised away.
pub fn fuzz_lvm(data: &[u8]) -> usize {
    let mut n = 0;
    let recorded = label::parse_label(data)
        .ok()
        .flatten()
        .map_or(0, |h| h.device_size.min(1 << 20) as usize);
    let mut bytes = data.to_vec();
    if bytes.len() < recorded {
        bytes.resize(recorded, 0);
    }
    let dev: DevRef = Arc::new(MemDev::from_vec(bytes, false));
    if let Ok(Some(scan)) = scan_pv(&dev) {
        n += scan.copies.len() + scan.warnings.len();
        for a in assemble(&[(dev.clone(), scan)]) {
            for lv in &a.vg.lvs {
                if let Ok(d) = LvDev::open(&a, &lv.name) {
                    let mut b = [0u8; 512];
                    let len = d.size().min(512) as usize;
                    n += d.read_at(&mut b[..len], 0).is_ok() as usize;
                    let last = d.size().saturating_sub(len as u64);
                    n += d.read_at(&mut b[..len], last).is_ok() as usize;
                }
            }
        }
    }
    if let Ok(top) = text::parse(data) {
        n += top.items.len();
        n += model::volume_group(&top)
            .map(|vg| vg.lvs.len())
            .unwrap_or(0);
    }
    n
}

/// Fuzz entry: `data` as the start of a device that may hold a LUKS1 or LUKS2 header.
pub fn fuzz_luks(data: &[u8]) -> usize {
    let dev: DevRef = Arc::new(MemDev::from_vec(data.to_vec(), false));
    let mut n = luks::probe(&dev)
        .map(|i| i.map_or(1, |i| 2 + i.keyslots.len()))
        .unwrap_or(0);
    n += luks::parse_luks2(data)
        .map(|i| i.keyslots.len())
        .unwrap_or(0);
    n + luks::parse_luks1(data)
        .map(|i| i.keyslots.len())
        .unwrap_or(0)
}
