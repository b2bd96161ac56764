//! The volume-group model built from parsed metadata text, validated: extents fit their PVs,
//! segments of an LV are contiguous and do not overlap, no two LVs share a physical extent,
//! striped geometry is consistent. Pure: no I/O.

use crate::text::{Section, Value};
use diskfab_storage::{Error, Result};
use serde::Serialize;

/// Bytes per LVM sector (sizes in the metadata are in 512-byte sectors).
pub const SECTOR: u64 = 512;
/// Most physical volumes in one VG.
const MAX_PVS: usize = 4096;
/// Most stripes in one segment (LVM allows 128).
const MAX_STRIPES: usize = 128;

/// A volume group as its metadata describes it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeGroup {
    /// VG name.
    pub name: String,
    /// VG UUID (with dashes, as written).
    pub id: String,
    /// Metadata sequence number: the highest one wins.
    pub seqno: u64,
    /// Extent size, bytes.
    pub extent_size: u64,
    /// Physical volumes.
    pub pvs: Vec<PvMeta>,
    /// Logical volumes (hidden ones included).
    pub lvs: Vec<LvMeta>,
}

/// A physical volume entry of the metadata.
#[derive(Debug, Clone, Serialize)]
pub struct PvMeta {
    /// Its key in the metadata (`pv0`).
    pub key: String,
    /// PV UUID with dashes.
    pub id: String,
    /// The device name LVM last saw (a hint only).
    pub device_hint: Option<String>,
    /// Start of the first extent, bytes from the PV start.
    pub pe_start: u64,
    /// Number of extents.
    pub pe_count: u64,
}

/// A logical volume.
#[derive(Debug, Clone, Serialize)]
pub struct LvMeta {
    /// LV name.
    pub name: String,
    /// LV UUID.
    pub id: String,
    /// Has the VISIBLE status flag (hidden LVs are parts of others: thin data, raid images).
    pub visible: bool,
    /// Segments in logical-extent order, contiguous from extent 0.
    pub segments: Vec<Segment>,
}

/// One segment of an LV.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// First logical extent.
    pub start_extent: u64,
    /// Number of logical extents.
    pub extent_count: u64,
    /// The segment type as LVM names it (`striped` also for linear).
    pub seg_type: String,
    /// Stripe size in bytes (0 for one stripe).
    pub stripe_size: u64,
    /// For `striped`: each stripe's PV (index into [`VolumeGroup::pvs`]) and first extent.
    pub stripes: Vec<(usize, u64)>,
}

impl LvMeta {
    /// Size in bytes.
    pub fn size(&self, extent_size: u64) -> u64 {
        let extents: u64 = self.segments.iter().map(|s| s.extent_count).sum();
        extents.saturating_mul(extent_size)
    }

    /// `linear`, `striped`, or the first type diskfab cannot map (`thin-pool`, `raid1`, ...).
    pub fn kind(&self) -> &str {
        if let Some(s) = self.segments.iter().find(|s| s.seg_type != "striped") {
            return &s.seg_type;
        }
        if self.segments.iter().any(|s| s.stripes.len() > 1) {
            "striped"
        } else {
            "linear"
        }
    }

    /// Whether every segment is linear or striped (so diskfab can map it).
    pub fn supported(&self) -> bool {
        self.segments.iter().all(|s| s.seg_type == "striped")
    }
}

fn bad(vg: &str, what: impl std::fmt::Display) -> Error {
    Error::bad(format!("LVM VG {vg}: {what}"))
}

fn uint(s: &Section, key: &str, vg: &str, ctx: &str) -> Result<u64> {
    let v = s
        .int(key)
        .ok_or_else(|| bad(vg, format!("{ctx}: no integer {key}")))?;
    u64::try_from(v).map_err(|_| bad(vg, format!("{ctx}: negative {key}")))
}

/// Builds the VG model from a whole metadata text (its one top-level section is the VG).
pub fn volume_group(top: &Section) -> Result<VolumeGroup> {
    let mut vgs = top.sections();
    let (name, s) = vgs
        .next()
        .ok_or_else(|| Error::bad("LVM metadata text holds no volume group"))?;
    if vgs.next().is_some() {
        return Err(Error::bad(
            "LVM metadata text holds more than one volume group",
        ));
    }
    let id = s.str("id").ok_or_else(|| bad(name, "no id"))?.to_string();
    let seqno = uint(s, "seqno", name, "VG")?;
    let ext_sectors = uint(s, "extent_size", name, "VG")?;
    if ext_sectors == 0 || ext_sectors > 1 << 32 {
        return Err(bad(name, format!("extent size of {ext_sectors} sectors")));
    }
    let extent_size = ext_sectors * SECTOR;
    let pvs = physical_volumes(s, name)?;
    let mut lvs = Vec::new();
    if let Some(list) = s.section("logical_volumes") {
        for (lv_name, l) in list.sections() {
            lvs.push(logical_volume(lv_name, l, &pvs, name)?);
        }
    }
    let vg = VolumeGroup {
        name: name.to_string(),
        id,
        seqno,
        extent_size,
        pvs,
        lvs,
    };
    check_no_shared_extents(&vg)?;
    Ok(vg)
}

fn physical_volumes(s: &Section, vg: &str) -> Result<Vec<PvMeta>> {
    let list = s
        .section("physical_volumes")
        .ok_or_else(|| bad(vg, "no physical_volumes"))?;
    let mut out = Vec::new();
    for (key, p) in list.sections() {
        if out.len() == MAX_PVS {
            return Err(bad(vg, format!("more than {MAX_PVS} PVs")));
        }
        let ctx = format!("PV {key}");
        let pe_start = uint(p, "pe_start", vg, &ctx)?
            .checked_mul(SECTOR)
            .ok_or_else(|| bad(vg, format!("{ctx}: absurd pe_start")))?;
        out.push(PvMeta {
            key: key.to_string(),
            id: p
                .str("id")
                .ok_or_else(|| bad(vg, format!("{ctx}: no id")))?
                .to_string(),
            device_hint: p.str("device").map(str::to_string),
            pe_start,
            pe_count: uint(p, "pe_count", vg, &ctx)?,
        });
    }
    Ok(out)
}

fn logical_volume(name: &str, l: &Section, pvs: &[PvMeta], vg: &str) -> Result<LvMeta> {
    let visible = l
        .list("status")
        .is_some_and(|st| st.iter().any(|v| *v == Value::Str("VISIBLE".into())));
    let mut segments = Vec::new();
    for (key, seg) in l.sections() {
        if key.starts_with("segment") {
            segments.push(segment(seg, pvs, vg, &format!("LV {name} {key}"))?);
        }
    }
    let declared = uint(l, "segment_count", vg, &format!("LV {name}"))?;
    if declared != segments.len() as u64 || segments.is_empty() {
        return Err(bad(
            vg,
            format!(
                "LV {name}: segment_count {declared}, {} segments",
                segments.len()
            ),
        ));
    }
    segments.sort_by_key(|s| s.start_extent);
    let mut next = 0u64;
    for s in &segments {
        if s.start_extent != next {
            let what = if s.start_extent < next {
                "overlap"
            } else {
                "leave a hole"
            };
            return Err(bad(
                vg,
                format!(
                    "LV {name}: segments {what} at logical extent {}",
                    s.start_extent
                ),
            ));
        }
        next = next
            .checked_add(s.extent_count)
            .ok_or_else(|| bad(vg, format!("LV {name}: absurd extent count")))?;
    }
    Ok(LvMeta {
        name: name.to_string(),
        id: l.str("id").unwrap_or_default().to_string(),
        visible,
        segments,
    })
}

fn segment(s: &Section, pvs: &[PvMeta], vg: &str, ctx: &str) -> Result<Segment> {
    let start_extent = uint(s, "start_extent", vg, ctx)?;
    let extent_count = uint(s, "extent_count", vg, ctx)?;
    let seg_type = s
        .str("type")
        .ok_or_else(|| bad(vg, format!("{ctx}: no type")))?
        .to_string();
    if extent_count == 0 || extent_count > 1 << 40 {
        return Err(bad(vg, format!("{ctx}: extent count {extent_count}")));
    }
    let mut seg = Segment {
        start_extent,
        extent_count,
        seg_type,
        stripe_size: 0,
        stripes: Vec::new(),
    };
    if seg.seg_type == "striped" {
        striped(s, pvs, vg, ctx, &mut seg)?;
    }
    Ok(seg)
}

fn striped(s: &Section, pvs: &[PvMeta], vg: &str, ctx: &str, seg: &mut Segment) -> Result<()> {
    let n = uint(s, "stripe_count", vg, ctx)? as usize;
    let list = s
        .list("stripes")
        .ok_or_else(|| bad(vg, format!("{ctx}: no stripes list")))?;
    if n == 0 || n > MAX_STRIPES || list.len() != 2 * n {
        return Err(bad(
            vg,
            format!("{ctx}: stripe_count {n} with {} list items", list.len()),
        ));
    }
    if !seg.extent_count.is_multiple_of(n as u64) {
        return Err(bad(
            vg,
            format!("{ctx}: {} extents over {n} stripes", seg.extent_count),
        ));
    }
    if n > 1 {
        let sz = uint(s, "stripe_size", vg, ctx)?;
        if !sz.is_power_of_two() || sz > 1 << 32 {
            return Err(bad(vg, format!("{ctx}: stripe size of {sz} sectors")));
        }
        seg.stripe_size = sz * SECTOR;
    }
    let area = seg.extent_count / n as u64;
    for pair in list.chunks_exact(2) {
        let (Value::Str(key), Value::Int(first)) = (&pair[0], &pair[1]) else {
            return Err(bad(
                vg,
                format!("{ctx}: stripes must be \"pvN\", extent pairs"),
            ));
        };
        let idx = pvs
            .iter()
            .position(|p| &p.key == key)
            .ok_or_else(|| bad(vg, format!("{ctx}: stripe on unknown PV {key}")))?;
        let first =
            u64::try_from(*first).map_err(|_| bad(vg, format!("{ctx}: negative extent")))?;
        if first
            .checked_add(area)
            .is_none_or(|end| end > pvs[idx].pe_count)
        {
            return Err(bad(
                vg,
                format!(
                    "{ctx}: extents {first}+{area} beyond PV {key}'s {} extents",
                    pvs[idx].pe_count
                ),
            ));
        }
        seg.stripes.push((idx, first));
    }
    Ok(())
}

/// No physical extent may belong to two LVs (or twice to one).
fn check_no_shared_extents(vg: &VolumeGroup) -> Result<()> {
    let mut used: Vec<(usize, u64, u64, &str)> = Vec::new();
    for lv in &vg.lvs {
        for s in &lv.segments {
            let n = s.stripes.len().max(1) as u64;
            for &(pv, first) in &s.stripes {
                used.push((pv, first, first + s.extent_count / n, &lv.name));
            }
        }
    }
    used.sort_unstable();
    for w in used.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.0 == b.0 && b.1 < a.2 {
            return Err(bad(
                &vg.name,
                format!(
                    "LVs {} and {} both use extent {} of PV {}",
                    a.3, b.3, b.1, vg.pvs[a.0].key
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::text::parse;

    pub(crate) fn vg_text(seqno: u64, lvs: &str) -> String {
        format!(
            "contents = \"Text Format Volume Group\"\nversion = 1\nvg {{\n id = \"VGID\"\n seqno = {seqno}\n extent_size = 8\n physical_volumes {{\n  pv0 {{ id = \"PV1aaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa\" pe_start = 2048 pe_count = 100 }}\n  pv1 {{ id = \"PV2bbb-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbbb\" pe_start = 2048 pe_count = 100 }}\n }}\n logical_volumes {{\n{lvs}\n }}\n}}\n"
        )
    }

    fn lv(name: &str, segs: &str, count: usize) -> String {
        format!("  {name} {{ id = \"x\" status = [\"READ\", \"VISIBLE\"] segment_count = {count}\n{segs}\n  }}")
    }

    fn seg(n: u32, start: u64, count: u64, stripes: &str, sc: u32) -> String {
        format!("   segment{n} {{ start_extent = {start} extent_count = {count} type = \"striped\" stripe_count = {sc} stripe_size = 16 stripes = [{stripes}] }}")
    }

    fn build(t: &str) -> Result<VolumeGroup> {
        volume_group(&parse(t.as_bytes())?)
    }

    #[test]
    fn linear_and_striped_lvs_are_modelled() {
        let t = vg_text(
            3,
            &[
                lv(
                    "root",
                    &(seg(1, 0, 10, "\"pv0\", 0", 1) + &seg(2, 10, 5, "\"pv1\", 0", 1)),
                    2,
                ),
                lv("data", &seg(1, 0, 8, "\"pv0\", 10, \"pv1\", 5", 2), 1),
            ]
            .join("\n"),
        );
        let vg = build(&t).unwrap();
        assert_eq!(vg.seqno, 3);
        assert_eq!(vg.extent_size, 4096);
        assert_eq!(vg.lvs[0].size(vg.extent_size), 15 * 4096);
        assert_eq!(vg.lvs[0].kind(), "linear");
        assert_eq!(vg.lvs[1].kind(), "striped");
        assert_eq!(vg.lvs[1].segments[0].stripe_size, 16 * 512);
    }

    #[test]
    fn hostile_geometry_is_refused() {
        let cases = [
            // overlapping logical extents
            lv(
                "a",
                &(seg(1, 0, 10, "\"pv0\", 0", 1) + &seg(2, 5, 5, "\"pv0\", 20", 1)),
                2,
            ),
            // absurd extent count
            lv("a", &seg(1, 0, 1 << 50, "\"pv0\", 0", 1), 1),
            // beyond the PV
            lv("a", &seg(1, 0, 10, "\"pv0\", 95", 1), 1),
            // two LVs on the same extents
            lv("a", &seg(1, 0, 10, "\"pv0\", 0", 1), 1)
                + "\n"
                + &lv("b", &seg(1, 0, 10, "\"pv0\", 5", 1), 1),
            // unknown PV
            lv("a", &seg(1, 0, 10, "\"pv9\", 0", 1), 1),
            // stripe count disagrees with the list
            lv("a", &seg(1, 0, 10, "\"pv0\", 0", 2), 1),
            // segment_count lies
            lv("a", &seg(1, 0, 10, "\"pv0\", 0", 1), 3),
        ];
        for c in cases {
            let e = build(&vg_text(1, &c)).unwrap_err();
            assert!(matches!(e, Error::BadImage(_)), "{e}");
        }
    }

    #[test]
    fn other_segment_types_are_kept_by_name() {
        let t = vg_text(
            1,
            &lv(
                "pool",
                "   segment1 { start_extent = 0 extent_count = 2 type = \"thin-pool\" }",
                1,
            ),
        );
        let vg = build(&t).unwrap();
        assert_eq!(vg.lvs[0].kind(), "thin-pool");
        assert!(!vg.lvs[0].supported());
    }
}
