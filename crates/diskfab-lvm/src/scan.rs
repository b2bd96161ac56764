//! Reading PVs from devices: the label, every metadata area and the text of each, checked
//! against its CRC; then grouping PVs into volume groups by the copy with the highest seqno.

use crate::crc::{lvm_crc, INITIAL_CRC};
use crate::label::{
    self, Area, PvHeader, LABEL_SCAN_SECTORS, MDA_HEADER_SIZE, RAW_LOCN_IGNORED, SECTOR,
};
use crate::model::{self, VolumeGroup};
use crate::text;
use diskfab_storage::{limits, DevRef, Error, Result};

/// One readable copy of a VG's metadata.
#[derive(Debug, Clone)]
pub struct MetaCopy {
    /// Offset of the metadata area it came from.
    pub mda_offset: u64,
    /// CRC of the text (equal CRCs: the same text).
    pub checksum: u32,
    /// The parsed VG.
    pub vg: VolumeGroup,
}

/// What one PV holds.
#[derive(Debug, Clone)]
pub struct PvScan {
    /// Its label and header.
    pub header: PvHeader,
    /// The metadata copies that passed every check (one per metadata area at most).
    pub copies: Vec<MetaCopy>,
    /// Copies that failed, and disagreements between copies.
    pub warnings: Vec<String>,
}

impl PvScan {
    /// The copy with the highest seqno.
    pub fn best(&self) -> Option<&MetaCopy> {
        self.copies.iter().max_by_key(|c| c.vg.seqno)
    }
}

/// Whether `dev` starts with an LVM2 label (magic only).
pub fn is_pv(dev: &DevRef) -> Result<bool> {
    let n = (LABEL_SCAN_SECTORS * SECTOR) as u64;
    if dev.size() < n {
        return Ok(false);
    }
    let mut head = vec![0u8; n as usize];
    dev.read_at(&mut head, 0)?;
    Ok(label::has_label(&head))
}

/// Reads the PV on `dev`: `Ok(None)` when there is no LVM2 label.
pub fn scan_pv(dev: &DevRef) -> Result<Option<PvScan>> {
    let n = LABEL_SCAN_SECTORS * SECTOR;
    if dev.size() < n as u64 {
        return Ok(None);
    }
    let mut head = vec![0u8; n];
    dev.read_at(&mut head, 0)?;
    let Some(header) = label::parse_label(&head)? else {
        return Ok(None);
    };
    let mut scan = PvScan {
        header,
        copies: Vec::new(),
        warnings: Vec::new(),
    };
    for area in scan.header.metadata_areas.clone() {
        match read_copy(dev, area) {
            Ok(Some(c)) => scan.copies.push(c),
            Ok(None) => {}
            Err(e) => scan.warnings.push(format!(
                "PV {}: metadata area at {}: {e}",
                scan.header.uuid, area.offset
            )),
        }
    }
    let seqnos: Vec<u64> = scan.copies.iter().map(|c| c.vg.seqno).collect();
    if seqnos.windows(2).any(|w| w[0] != w[1]) {
        scan.warnings.push(format!(
            "PV {}: metadata areas disagree (seqno {seqnos:?}); using the highest",
            scan.header.uuid
        ));
    }
    Ok(Some(scan))
}

/// The committed metadata of one area; `Ok(None)` for an empty or ignored area.
fn read_copy(dev: &DevRef, area: Area) -> Result<Option<MetaCopy>> {
    let end = area.offset.checked_add(area.size);
    if end.is_none_or(|e| e > dev.size()) {
        return Err(Error::bad("metadata area beyond the device end"));
    }
    let mut h = vec![0u8; MDA_HEADER_SIZE as usize];
    dev.read_at(&mut h, area.offset)?;
    let mda = label::parse_mda_header(&h, area)?;
    let Some(l) = mda.locns.first() else {
        return Ok(None);
    };
    if l.flags & RAW_LOCN_IGNORED != 0 || l.size == 0 {
        return Ok(None);
    }
    let mut text = limits::alloc_bytes(l.size, "LVM metadata text")?;
    let mut at = 0usize;
    for (off, len) in label::text_ranges(&mda, l) {
        let len = len as usize;
        dev.read_at(&mut text[at..at + len], area.offset + off)?;
        at += len;
    }
    let crc = lvm_crc(INITIAL_CRC, &text);
    if crc != l.checksum {
        return Err(Error::bad(format!(
            "metadata text checksum mismatch (stored {:#010x}, computed {crc:#010x})",
            l.checksum
        )));
    }
    let vg = model::volume_group(&text::parse(&text)?)?;
    Ok(Some(MetaCopy {
        mda_offset: area.offset,
        checksum: crc,
        vg,
    }))
}

/// A volume group assembled from the PVs found: its chosen metadata and the devices present.
#[derive(Debug, Clone)]
pub struct AssembledVg {
    /// The metadata with the highest seqno seen on any PV of the VG.
    pub vg: VolumeGroup,
    /// For each PV of [`VolumeGroup::pvs`]: its device, when found.
    pub devs: Vec<Option<DevRef>>,
    /// Problems: failed copies, seqno disagreements, missing PVs, bad PV geometry.
    pub warnings: Vec<String>,
    /// Set when the PVs' geometry makes the whole VG unusable.
    pub error: Option<String>,
}

fn plain(uuid: &str) -> String {
    uuid.chars().filter(|c| *c != '-').collect()
}

/// Groups scanned PVs into volume groups (by VG id), choosing the metadata with the highest
/// seqno and warning when PVs or copies disagree. PVs without metadata join the VG that
/// lists their UUID.
pub fn assemble(pvs: &[(DevRef, PvScan)]) -> Vec<AssembledVg> {
    let mut out: Vec<AssembledVg> = Vec::new();
    for (_, scan) in pvs {
        let Some(best) = scan.best() else { continue };
        let warnings = scan.warnings.clone();
        match out.iter_mut().find(|a| a.vg.id == best.vg.id) {
            Some(a) => {
                a.warnings.extend(warnings);
                if best.vg.seqno != a.vg.seqno {
                    a.warnings.push(format!(
                        "VG {}: PVs disagree on the metadata (seqno {} and {}); using {}",
                        a.vg.name,
                        a.vg.seqno,
                        best.vg.seqno,
                        a.vg.seqno.max(best.vg.seqno)
                    ));
                    if best.vg.seqno > a.vg.seqno {
                        a.vg = best.vg.clone();
                    }
                }
            }
            None => out.push(AssembledVg {
                vg: best.vg.clone(),
                devs: Vec::new(),
                warnings,
                error: None,
            }),
        }
    }
    for a in &mut out {
        attach_devices(a, pvs);
    }
    out
}

fn attach_devices(a: &mut AssembledVg, pvs: &[(DevRef, PvScan)]) {
    a.devs = vec![None; a.vg.pvs.len()];
    for (i, p) in a.vg.pvs.iter().enumerate() {
        let found = pvs
            .iter()
            .find(|(_, s)| s.header.uuid == plain(&p.id))
            .map(|(d, s)| (d, s));
        let Some((dev, scan)) = found else {
            a.warnings.push(format!(
                "VG {}: PV {} ({}) is missing",
                a.vg.name, p.id, p.key
            ));
            continue;
        };
        if let Err(e) = check_pv_geometry(&a.vg, p, dev, &scan.header) {
            a.error = Some(e.to_string());
        }
        a.devs[i] = Some(dev.clone());
    }
}

/// The extents must lie on the device, after the label and clear of every metadata area, so
/// that writes to LVs can never touch LVM's own structures.
fn check_pv_geometry(
    vg: &VolumeGroup,
    p: &model::PvMeta,
    dev: &DevRef,
    h: &PvHeader,
) -> Result<()> {
    let len = p.pe_count.checked_mul(vg.extent_size);
    let end = len.and_then(|l| l.checked_add(p.pe_start));
    let bad = |what: String| Error::bad(format!("LVM VG {}: PV {}: {what}", vg.name, p.id));
    let Some(end) = end.filter(|e| *e <= dev.size()) else {
        return Err(bad(format!(
            "{} extents at {} do not fit the {}-byte device",
            p.pe_count,
            p.pe_start,
            dev.size()
        )));
    };
    if p.pe_count > 0 && p.pe_start < (LABEL_SCAN_SECTORS * SECTOR) as u64 {
        return Err(bad("extents overlap the label".into()));
    }
    for m in &h.metadata_areas {
        if p.pe_count > 0 && m.offset < end && p.pe_start < m.offset.saturating_add(m.size) {
            return Err(bad(format!(
                "extents overlap the metadata area at {}",
                m.offset
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::{build, MdaHeader, RawLocn};
    use crate::model::tests::vg_text;
    use crate::LvDev;
    use diskfab_storage::{BlockDev, MemDev};
    use std::sync::Arc;

    const PV1: &str = "PV1aaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const PV2: &str = "PV2bbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SIZE: u64 = 2 << 20;

    /// A PV image: label in sector 0, one metadata area per text at `areas`, the text of each
    /// at `at` inside its area (wrapping past the end like LVM's circular buffer).
    fn pv(uuid: &str, copies: &[(Area, u64, &str)]) -> Vec<u8> {
        let mut d = vec![0u8; SIZE as usize];
        let areas: Vec<Area> = copies.iter().map(|c| c.0).collect();
        let data = Area {
            offset: 1 << 20,
            size: 0,
        };
        d[..512].copy_from_slice(&build::label(uuid, SIZE, &[data], &areas));
        for &(area, at, text) in copies {
            let t = text.as_bytes();
            let l = RawLocn {
                offset: at,
                size: t.len() as u64,
                checksum: lvm_crc(INITIAL_CRC, t),
                flags: 0,
            };
            let base = area.offset as usize;
            d[base..base + 512].copy_from_slice(&build::mda_header(area, &[l]));
            let mda = MdaHeader {
                start: area.offset,
                size: area.size,
                locns: vec![],
            };
            let mut done = 0usize;
            for (off, len) in label::text_ranges(&mda, &l) {
                let (o, n) = (base + off as usize, len as usize);
                d[o..o + n].copy_from_slice(&t[done..done + n]);
                done += n;
            }
        }
        d
    }

    fn lvs() -> String {
        // pe_start 2048 sectors = 1 MiB, extents of 8 sectors: root linear, data striped.
        "  root { id = \"r\" status = [\"VISIBLE\"] segment_count = 1\n   segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] } }\n  data { id = \"d\" status = [\"VISIBLE\"] segment_count = 1\n   segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 2 stripe_size = 2 stripes = [\"pv0\", 10, \"pv1\", 0] } }".into()
    }

    fn dev(b: Vec<u8>) -> DevRef {
        Arc::new(MemDev::from_vec(b, true))
    }

    #[test]
    fn highest_seqno_wins_over_areas_and_wrapped_text_is_read() {
        let (old, new) = (vg_text(3, &lvs()), vg_text(4, &lvs()));
        let a1 = Area {
            offset: 4096,
            size: 64 << 10,
        };
        let a2 = Area {
            offset: 128 << 10,
            size: 8192,
        };
        // The newer copy starts 1000 bytes before its area's end and wraps.
        let d = dev(pv(PV1, &[(a1, 512, &old), (a2, 8192 - 1000, &new)]));
        let scan = scan_pv(&d).unwrap().unwrap();
        assert_eq!(scan.copies.len(), 2);
        assert_eq!(scan.best().unwrap().vg.seqno, 4);
        assert!(
            scan.warnings.iter().any(|w| w.contains("disagree")),
            "{:?}",
            scan.warnings
        );
    }

    #[test]
    fn a_copy_with_a_bad_text_checksum_is_skipped_with_a_warning() {
        let t = vg_text(5, &lvs());
        let a1 = Area {
            offset: 4096,
            size: 64 << 10,
        };
        let mut b = pv(PV1, &[(a1, 512, &t)]);
        b[4096 + 600] ^= 0x20;
        let scan = scan_pv(&dev(b)).unwrap().unwrap();
        assert!(scan.copies.is_empty());
        assert!(
            scan.warnings[0].contains("checksum mismatch"),
            "{:?}",
            scan.warnings
        );
    }

    #[test]
    fn striped_lv_interleaves_chunks_over_both_pvs_and_writes_land_there() {
        let t = vg_text(1, &lvs());
        let a = Area {
            offset: 4096,
            size: 64 << 10,
        };
        let (d1, d2) = (dev(pv(PV1, &[(a, 512, &t)])), dev(pv(PV2, &[(a, 512, &t)])));
        let scans = vec![
            (d1.clone(), scan_pv(&d1).unwrap().unwrap()),
            (d2.clone(), scan_pv(&d2).unwrap().unwrap()),
        ];
        let vg = assemble(&scans).remove(0);
        let lv = LvDev::open(&vg, "data").unwrap();
        assert_eq!(lv.size(), 4 * 4096);
        // 1 KiB chunks: chunk k goes to PV k%2 at row k/2 of its stripe area.
        let data: Vec<u8> = (0..lv.size()).map(|i| (i / 1024) as u8).collect();
        lv.write_at(&data, 0).unwrap();
        let mut chunk = [0u8; 1024];
        for k in 0..16u64 {
            let (d, base) = if k % 2 == 0 {
                (&d1, (1 << 20) + 10 * 4096)
            } else {
                (&d2, 1 << 20)
            };
            d.read_at(&mut chunk, base + (k / 2) * 1024).unwrap();
            assert!(chunk.iter().all(|&c| c == k as u8), "chunk {k}");
        }
        let mut back = vec![0u8; 3000];
        lv.read_at(&mut back, 500).unwrap();
        assert_eq!(back, data[500..3500]);
        assert!(lv.read_at(&mut back, lv.size() - 10).is_err());
        // The metadata is untouched by LV writes.
        assert!(scan_pv(&d1).unwrap().unwrap().copies.len() == 1);
    }
}
