//! Pure parsers of LVM2's binary structures: the physical-volume label (`LABELONE` in one of
//! the first four sectors), the PV header that follows it (UUID, device size, data and
//! metadata areas) and the metadata-area header (magic, raw locations of the text metadata).
//! Every field is bounds-checked and every checksum verified.

use crate::crc::{lvm_crc, INITIAL_CRC};
use diskfab_storage::bytes::{le_u32, le_u64, slice};
use diskfab_storage::{Error, Result};

/// Sector size LVM2 labels and headers are laid out in.
pub const SECTOR: usize = 512;
/// The label is in one of the first this many sectors.
pub const LABEL_SCAN_SECTORS: usize = 4;
/// Size of a metadata-area header; wrapped metadata text continues right after it.
pub const MDA_HEADER_SIZE: u64 = 512;
/// The metadata-area magic.
pub const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// Raw-location flag: this copy is to be ignored (`pvchange --metadataignore`).
pub const RAW_LOCN_IGNORED: u32 = 1;
/// At most this many data or metadata areas are accepted in a PV header.
const MAX_AREAS: usize = 8;

/// A byte range on the PV (`disk_locn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Area {
    /// Byte offset from the start of the PV.
    pub offset: u64,
    /// Length in bytes (0 for a data area means "to the end of the device").
    pub size: u64,
}

/// The PV label and header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvHeader {
    /// Sector the label was found in (0..=3).
    pub label_sector: u64,
    /// PV UUID, 32 characters without dashes.
    pub uuid: String,
    /// Device size recorded by pvcreate, bytes.
    pub device_size: u64,
    /// Data areas.
    pub data_areas: Vec<Area>,
    /// Metadata areas (each starts with an mda header).
    pub metadata_areas: Vec<Area>,
}

/// Whether the first sectors hold an LVM2 label (magic only, no checksum): for probing.
pub fn has_label(head: &[u8]) -> bool {
    (0..LABEL_SCAN_SECTORS)
        .any(|i| head.get(i * SECTOR..i * SECTOR + 8) == Some(b"LABELONE".as_slice()))
}

/// Parses the label and PV header from the first [`LABEL_SCAN_SECTORS`] sectors of a device.
/// `Ok(None)`: no label at all; an error: a label that is damaged.
pub fn parse_label(head: &[u8]) -> Result<Option<PvHeader>> {
    for i in 0..LABEL_SCAN_SECTORS {
        let Some(sector) = head.get(i * SECTOR..(i + 1) * SECTOR) else {
            break;
        };
        if &sector[..8] != b"LABELONE" {
            continue;
        }
        return parse_label_sector(sector, i as u64).map(Some);
    }
    Ok(None)
}

fn parse_label_sector(s: &[u8], index: u64) -> Result<PvHeader> {
    let sector_xl = le_u64(s, 8)?;
    if sector_xl != index {
        return Err(Error::bad(format!(
            "LVM label in sector {index} says it is in sector {sector_xl}"
        )));
    }
    let stored = le_u32(s, 16)?;
    let computed = lvm_crc(INITIAL_CRC, slice(s, 20, SECTOR - 20)?);
    if stored != computed {
        return Err(Error::bad(format!(
            "LVM label checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        )));
    }
    if slice(s, 24, 8)? != b"LVM2 001" {
        return Err(Error::Unsupported(format!(
            "LVM label type {:?} (only LVM2 001 is known)",
            String::from_utf8_lossy(slice(s, 24, 8)?)
        )));
    }
    let off = le_u32(s, 20)? as usize;
    if !(32..SECTOR).contains(&off) {
        return Err(Error::bad(format!(
            "LVM PV header offset {off} outside the label sector"
        )));
    }
    parse_pv_header(slice(s, off, SECTOR - off)?, index)
}

fn parse_pv_header(h: &[u8], label_sector: u64) -> Result<PvHeader> {
    let uuid_raw = slice(h, 0, 32)?;
    if !uuid_raw.iter().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::bad(
            "LVM PV UUID holds characters outside [A-Za-z0-9]",
        ));
    }
    let uuid = String::from_utf8_lossy(uuid_raw).into_owned();
    let device_size = le_u64(h, 32)?;
    let mut pos = 40;
    let data_areas = area_list(h, &mut pos, "data")?;
    let metadata_areas = area_list(h, &mut pos, "metadata")?;
    Ok(PvHeader {
        label_sector,
        uuid,
        device_size,
        data_areas,
        metadata_areas,
    })
}

/// A zero-terminated list of `disk_locn` entries starting at `*pos`.
fn area_list(h: &[u8], pos: &mut usize, what: &str) -> Result<Vec<Area>> {
    let mut out = Vec::new();
    loop {
        let offset = le_u64(h, *pos)?;
        let size = le_u64(h, *pos + 8)?;
        *pos += 16;
        if offset == 0 {
            return Ok(out);
        }
        if out.len() == MAX_AREAS {
            return Err(Error::bad(format!(
                "LVM PV header lists more than {MAX_AREAS} {what} areas"
            )));
        }
        out.push(Area { offset, size });
    }
}

/// One raw location in a metadata-area header: where a copy of the text metadata is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLocn {
    /// Offset of the text from the start of the metadata area.
    pub offset: u64,
    /// Length of the text.
    pub size: u64,
    /// LVM2 CRC of the text.
    pub checksum: u32,
    /// Flags ([`RAW_LOCN_IGNORED`]).
    pub flags: u32,
}

/// A parsed metadata-area header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// Absolute start of the area on the PV, bytes (as recorded).
    pub start: u64,
    /// Size of the area, bytes.
    pub size: u64,
    /// Raw locations (the first is the committed metadata).
    pub locns: Vec<RawLocn>,
}

/// Parses the 512-byte header at the start of a metadata area located at `area`.
pub fn parse_mda_header(b: &[u8], area: Area) -> Result<MdaHeader> {
    let h = slice(b, 0, MDA_HEADER_SIZE as usize)?;
    let stored = le_u32(h, 0)?;
    let computed = lvm_crc(INITIAL_CRC, slice(h, 4, h.len() - 4)?);
    if stored != computed {
        return Err(Error::bad(format!(
            "LVM metadata area at {} has a bad header checksum (stored {stored:#010x}, computed {computed:#010x})",
            area.offset
        )));
    }
    if slice(h, 4, 16)? != MDA_MAGIC {
        return Err(Error::bad(format!(
            "LVM metadata area at {} has no LVM2 magic",
            area.offset
        )));
    }
    let version = le_u32(h, 20)?;
    if version != 1 {
        return Err(Error::Unsupported(format!(
            "LVM metadata area header version {version}"
        )));
    }
    let start = le_u64(h, 24)?;
    let size = le_u64(h, 32)?;
    if start != area.offset || size != area.size || size <= MDA_HEADER_SIZE {
        return Err(Error::bad(format!(
            "LVM metadata area header says {size} bytes at {start}, the PV header {} at {}",
            area.size, area.offset
        )));
    }
    let mut locns = Vec::new();
    let mut pos = 40;
    while pos + 24 <= h.len() {
        let offset = le_u64(h, pos)?;
        if offset == 0 {
            break;
        }
        let l = RawLocn {
            offset,
            size: le_u64(h, pos + 8)?,
            checksum: le_u32(h, pos + 16)?,
            flags: le_u32(h, pos + 20)?,
        };
        if l.offset < MDA_HEADER_SIZE || l.offset >= size || l.size > size - MDA_HEADER_SIZE {
            return Err(Error::bad(format!(
                "LVM metadata location ({} bytes at {}) outside its {size}-byte area",
                l.size, l.offset
            )));
        }
        locns.push(l);
        pos += 24;
    }
    Ok(MdaHeader { start, size, locns })
}

/// The (at most two) byte ranges, relative to the area start, that hold the text of `l`:
/// text that runs past the area end continues right after the header (a circular buffer).
pub fn text_ranges(mda: &MdaHeader, l: &RawLocn) -> [(u64, u64); 2] {
    let first = l.size.min(mda.size - l.offset);
    [(l.offset, first), (MDA_HEADER_SIZE, l.size - first)]
}

#[cfg(test)]
pub(crate) mod build {
    //! Builders for tests: a label sector and an mda header with correct checksums.
    use super::*;

    pub fn label(uuid: &str, dev_size: u64, data: &[Area], mdas: &[Area]) -> Vec<u8> {
        let mut s = vec![0u8; SECTOR];
        s[..8].copy_from_slice(b"LABELONE");
        s[20..24].copy_from_slice(&32u32.to_le_bytes());
        s[24..32].copy_from_slice(b"LVM2 001");
        s[32..64].copy_from_slice(uuid.as_bytes());
        s[64..72].copy_from_slice(&dev_size.to_le_bytes());
        let mut p = 72;
        for list in [data, mdas] {
            for a in list {
                s[p..p + 8].copy_from_slice(&a.offset.to_le_bytes());
                s[p + 8..p + 16].copy_from_slice(&a.size.to_le_bytes());
                p += 16;
            }
            p += 16;
        }
        let crc = lvm_crc(INITIAL_CRC, &s[20..]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }

    pub fn mda_header(area: Area, locns: &[RawLocn]) -> Vec<u8> {
        let mut h = vec![0u8; MDA_HEADER_SIZE as usize];
        h[4..20].copy_from_slice(MDA_MAGIC);
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&area.offset.to_le_bytes());
        h[32..40].copy_from_slice(&area.size.to_le_bytes());
        for (i, l) in locns.iter().enumerate() {
            let p = 40 + i * 24;
            h[p..p + 8].copy_from_slice(&l.offset.to_le_bytes());
            h[p + 8..p + 16].copy_from_slice(&l.size.to_le_bytes());
            h[p + 16..p + 20].copy_from_slice(&l.checksum.to_le_bytes());
            h[p + 20..p + 24].copy_from_slice(&l.flags.to_le_bytes());
        }
        let crc = lvm_crc(INITIAL_CRC, &h[4..]);
        h[..4].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "PV1aaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn label_round_trips_and_damage_is_detected() {
        let mda = Area {
            offset: 4096,
            size: 1 << 20,
        };
        let mut head = vec![0u8; 2048];
        let s = build::label(
            UUID,
            1 << 30,
            &[Area {
                offset: 1 << 20,
                size: 0,
            }],
            &[mda],
        );
        head[512..1024].copy_from_slice(&s);
        // The label claims sector 0 but sits in sector 1.
        assert!(parse_label(&head).is_err());
        head[..512].copy_from_slice(&s);
        head[512..1024].fill(0);
        let pv = parse_label(&head).unwrap().unwrap();
        assert_eq!(pv.uuid, UUID);
        assert_eq!(pv.metadata_areas, vec![mda]);
        head[100] ^= 1;
        let e = parse_label(&head).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        assert!(parse_label(&[0u8; 2048]).unwrap().is_none());
    }

    #[test]
    fn mda_header_checks_checksum_magic_and_locations() {
        let area = Area {
            offset: 4096,
            size: 1 << 20,
        };
        let l = RawLocn {
            offset: 512,
            size: 100,
            checksum: 0,
            flags: 0,
        };
        let h = build::mda_header(area, &[l]);
        assert_eq!(parse_mda_header(&h, area).unwrap().locns, vec![l]);
        let mut bad = h.clone();
        bad[50] ^= 1;
        assert!(parse_mda_header(&bad, area).is_err());
        let outside = RawLocn {
            offset: 2 << 20,
            ..l
        };
        assert!(parse_mda_header(&build::mda_header(area, &[outside]), area).is_err());
        let wrong_area = Area {
            offset: 8192,
            ..area
        };
        assert!(parse_mda_header(&h, wrong_area).is_err());
    }

    #[test]
    fn wrapped_text_continues_after_the_header() {
        let mda = MdaHeader {
            start: 4096,
            size: 4096,
            locns: vec![],
        };
        let l = RawLocn {
            offset: 4000,
            size: 200,
            checksum: 0,
            flags: 0,
        };
        assert_eq!(text_ranges(&mda, &l), [(4000, 96), (512, 104)]);
    }
}
