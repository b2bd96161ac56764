//! The volume-manager layer between partitions and filesystems: volumes that are LVM2 PVs are
//! assembled into volume groups and each linear or striped LV becomes a volume of its own
//! (probed for a filesystem); LUKS headers are recognised and reported.

use crate::drivers::probe_fs;
use crate::open::Volume;
use diskfab_lvm::luks::{self, LuksInfo};
use diskfab_lvm::{assemble, scan_pv, AssembledVg, LvDev};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::sync::Arc;

/// Where an LV volume came from.
#[derive(Debug, Clone)]
pub struct LvVolume {
    /// Volume group name.
    pub vg: String,
    /// Logical volume name.
    pub name: String,
    /// The LV's byte range in the disk when it is one contiguous piece (one linear segment).
    pub disk_range: Option<(u64, u64)>,
}

/// One physical volume of a VG, as found on this disk.
#[derive(Debug, Clone, Serialize)]
pub struct PvReport {
    /// PV UUID.
    pub id: String,
    /// Partition number holding it (0 = whole disk); `None` when it is missing.
    pub partition: Option<u32>,
}

/// One logical volume of a VG.
#[derive(Debug, Clone, Serialize)]
pub struct LvReport {
    /// LV name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `linear`, `striped`, or the segment type diskfab does not read (`thin-pool`, ...).
    pub segment_type: String,
    /// Number of segments.
    pub segments: usize,
    /// The filesystem type found on it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Why the LV cannot be read (unsupported type, missing PV), if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error is "unsupported" (a segment type diskfab does not read), not damage.
    #[serde(skip)]
    pub unsupported: bool,
}

/// A volume group found on the disk.
#[derive(Debug, Clone, Serialize)]
pub struct VgReport {
    /// VG name.
    pub name: String,
    /// VG UUID.
    pub id: String,
    /// Metadata sequence number in use.
    pub seqno: u64,
    /// Extent size in bytes.
    pub extent_size: u64,
    /// Physical volumes.
    pub pvs: Vec<PvReport>,
    /// Visible logical volumes.
    pub lvs: Vec<LvReport>,
    /// Metadata problems found while assembling (bad copies, seqno disagreement, missing PVs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Finds PVs and LUKS headers among `volumes` (volumes without a filesystem), sets each
/// volume's `luks`, and appends one volume per readable LV. Returns the VGs found and the
/// PV labels that could not be read.
pub fn expand(volumes: &mut Vec<Volume>) -> Result<(Vec<VgReport>, Vec<String>)> {
    let mut pvs = Vec::new();
    let mut pv_parts = Vec::new();
    let mut label_errors = Vec::new();
    for v in volumes.iter_mut() {
        if v.fs.is_some() {
            continue;
        }
        v.luks = luks_of(&v.dev);
        v.swap = crate::swap::probe(&v.dev);
        match scan_pv(&v.dev) {
            Ok(Some(scan)) => {
                if scan.copies.is_empty() {
                    // No usable copy here: the VG (if another PV has one) cannot report it.
                    label_errors.extend(
                        scan.warnings
                            .iter()
                            .map(|w| format!("{}: {w}", v.describe())),
                    );
                }
                pv_parts.push((
                    scan.header.uuid.clone(),
                    v.partition.as_ref().map_or(0, |p| p.number),
                    v.partition.as_ref().map_or(0, |p| p.start),
                ));
                pvs.push((v.dev.clone(), scan));
            }
            Ok(None) => {}
            Err(e) => label_errors.push(format!("{}: {e}", v.describe())),
        }
    }
    let mut reports = Vec::new();
    for a in assemble(&pvs) {
        let mut r = report(&a, &pv_parts);
        for (lv, lr) in a.vg.lvs.iter().filter(|l| l.visible).zip(r.lvs.iter_mut()) {
            match LvDev::open(&a, &lv.name) {
                Ok(dev) => {
                    let dev: DevRef = Arc::new(dev);
                    let fs = match probe_fs(&dev) {
                        Ok(fs) => fs,
                        Err(e) => {
                            lr.error = Some(e.to_string());
                            continue;
                        }
                    };
                    lr.fs_type = fs
                        .as_ref()
                        .map(|(_, t)| t.clone())
                        .or_else(|| crate::swap::probe(&dev).map(|_| "swap".to_string()));
                    volumes.push(Volume {
                        partition: None,
                        luks: if fs.is_none() { luks_of(&dev) } else { None },
                        swap: if fs.is_none() {
                            crate::swap::probe(&dev)
                        } else {
                            None
                        },
                        dev,
                        fs,
                        lv: Some(LvVolume {
                            vg: a.vg.name.clone(),
                            name: lv.name.clone(),
                            disk_range: disk_range(&a, lv, &pv_parts),
                        }),
                    });
                }
                Err(Error::Unsupported(m)) => {
                    lr.error = Some(m);
                    lr.unsupported = true;
                }
                Err(e) => lr.error = Some(e.to_string()),
            }
        }
        reports.push(r);
    }
    Ok((reports, label_errors))
}

fn luks_of(dev: &DevRef) -> Option<LuksInfo> {
    luks::probe(dev).ok().flatten()
}

fn plain(uuid: &str) -> String {
    uuid.chars().filter(|c| *c != '-').collect()
}

fn report(a: &AssembledVg, parts: &[(String, u32, u64)]) -> VgReport {
    let vg = &a.vg;
    VgReport {
        name: vg.name.clone(),
        id: vg.id.clone(),
        seqno: vg.seqno,
        extent_size: vg.extent_size,
        pvs: vg
            .pvs
            .iter()
            .map(|p| PvReport {
                id: p.id.clone(),
                partition: parts.iter().find(|x| x.0 == plain(&p.id)).map(|x| x.1),
            })
            .collect(),
        lvs: vg
            .lvs
            .iter()
            .filter(|l| l.visible)
            .map(|l| LvReport {
                name: l.name.clone(),
                size: l.size(vg.extent_size),
                segment_type: l.kind().to_string(),
                segments: l.segments.len(),
                error: None,
                fs_type: None,
                unsupported: false,
            })
            .collect(),
        warnings: a.warnings.clone(),
    }
}

/// The disk byte range of an LV made of one linear segment on a PV of this disk.
fn disk_range(
    a: &AssembledVg,
    lv: &diskfab_lvm::LvMeta,
    parts: &[(String, u32, u64)],
) -> Option<(u64, u64)> {
    let [seg] = lv.segments.as_slice() else {
        return None;
    };
    let [(pv, first)] = seg.stripes.as_slice() else {
        return None;
    };
    let meta = a.vg.pvs.get(*pv)?;
    let part_start = parts.iter().find(|x| x.0 == plain(&meta.id))?.2;
    let start = part_start + meta.pe_start + first * a.vg.extent_size;
    Some((start, lv.size(a.vg.extent_size)))
}
