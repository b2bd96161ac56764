//! VMware VMDK: pure parsing and building of the hosted sparse extent header, the text
//! descriptor and stream markers (no I/O). Every field is validated before anything trusts it.
//!
//! Layout facts (VMware Virtual Disk Format 1.1): a sparse extent starts with a 512-byte
//! little-endian header (`KDMV`); guest data lives in grains (power-of-two sectors, 64 KiB by
//! default) found through a grain directory (GD) of grain tables (GT, 512 u32 sector offsets
//! each), optionally duplicated (redundant GD). Stream-optimized extents hold deflate
//! (zlib) compressed grains, each behind a 12-byte marker (guest sector, compressed size), and
//! metadata behind 512-byte markers; their GD position is in a footer (a header copy) near the
//! end of the file. Flat extents are plain files named by a text descriptor.

use diskfab_storage::bytes::{le_u16, le_u32, le_u64};
use diskfab_storage::{Error, Result};

/// `KDMV`, little-endian, at offset 0 of a sparse extent.
pub const MAGIC: [u8; 4] = *b"KDMV";
/// First line of a text descriptor.
pub const DESCRIPTOR_SIGNATURE: &[u8] = b"# Disk DescriptorFile";
/// Largest descriptor accepted (a text descriptor file, or the embedded one).
pub const MAX_DESCRIPTOR: u64 = 64 << 10;
/// `gdOffset` of a stream-optimized header whose GD is found through the footer.
pub const GD_AT_END: u64 = u64::MAX;
/// Flag: the newline-detection characters are valid.
pub const FLAG_NL_TEST: u32 = 1;
/// Flag: a redundant grain directory exists.
pub const FLAG_RGD: u32 = 2;
/// Flag: GT entry 1 means "zeroed grain".
pub const FLAG_ZERO_GRAIN: u32 = 4;
/// Flag: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flag: the extent uses markers (stream-optimized).
pub const FLAG_MARKERS: u32 = 1 << 17;
/// Metadata marker: end of stream.
pub const MARKER_EOS: u32 = 0;
/// Metadata marker: grain table follows.
pub const MARKER_GT: u32 = 1;
/// Metadata marker: grain directory follows.
pub const MARKER_GD: u32 = 2;
/// Metadata marker: footer follows.
pub const MARKER_FOOTER: u32 = 3;
/// Grain-table entries per table (the only value VMware and QEMU write).
pub const GTES_PER_GT: u64 = 512;
/// Largest capacity accepted, in bytes (64 TiB).
pub const MAX_CAPACITY: u64 = 64 << 40;
/// Largest grain directory accepted, in entries (16 MiB of directory).
pub const MAX_GD_ENTRIES: u64 = 1 << 22;
/// Largest capacity of a sparse extent diskfab creates (2 TiB: sector offsets are 32-bit).
pub const MAX_CREATE: u64 = (2 << 40) - (1 << 20);
/// Grain size diskfab creates, in sectors (64 KiB).
pub const DEFAULT_GRAIN: u64 = 128;
/// Most extents accepted in a descriptor.
pub const MAX_EXTENTS: usize = 1024;

/// A validated sparse extent header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    /// 1, 2 or 3.
    pub version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Size in sectors.
    pub capacity: u64,
    /// Sectors per grain (power of two).
    pub grain_size: u64,
    /// Embedded descriptor position, in sectors (0 = none).
    pub descriptor_offset: u64,
    /// Embedded descriptor size, in sectors.
    pub descriptor_size: u64,
    /// Redundant GD position, in sectors.
    pub rgd_offset: u64,
    /// GD position, in sectors ([`GD_AT_END`]: see the footer).
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain.
    pub overhead: u64,
}

impl SparseHeader {
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_size * 512
    }
    /// Guest size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * 512
    }
    /// Entries of the grain directory.
    pub fn gd_entries(&self) -> u64 {
        self.capacity.div_ceil(self.grain_size * GTES_PER_GT)
    }
    /// Sectors of the grain directory.
    pub fn gd_sectors(&self) -> u64 {
        (self.gd_entries() * 4).div_ceil(512)
    }
    /// Grains are compressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
    /// Grains and metadata carry markers.
    pub fn markers(&self) -> bool {
        self.flags & FLAG_MARKERS != 0
    }
}

/// Parses and validates a sparse extent header (512 bytes). Never panics.
pub fn parse_sparse_header(b: &[u8]) -> Result<SparseHeader> {
    if b.len() < 512 || b[..4] != MAGIC {
        return Err(Error::bad("not a VMDK sparse extent (bad magic)"));
    }
    let h = SparseHeader {
        version: le_u32(b, 4)?,
        flags: le_u32(b, 8)?,
        capacity: le_u64(b, 12)?,
        grain_size: le_u64(b, 20)?,
        descriptor_offset: le_u64(b, 28)?,
        descriptor_size: le_u64(b, 36)?,
        rgd_offset: le_u64(b, 48)?,
        gd_offset: le_u64(b, 56)?,
        overhead: le_u64(b, 64)?,
    };
    if !(1..=3).contains(&h.version) {
        return Err(Error::Unsupported(format!("VMDK version {}", h.version)));
    }
    if h.flags & FLAG_NL_TEST != 0 && b[73..77] != *b"\n \r\n" {
        return Err(Error::bad(
            "VMDK newline-detection characters are mangled (was the file copied in text mode?)",
        ));
    }
    if le_u32(b, 44)? as u64 != GTES_PER_GT {
        return Err(Error::Unsupported(format!(
            "VMDK with {} grain-table entries per table (only 512)",
            le_u32(b, 44)?
        )));
    }
    if !h.grain_size.is_power_of_two() || h.grain_size > 2048 {
        return Err(Error::bad(format!(
            "VMDK grain size of {} sectors is not a power of two up to 1 MiB",
            h.grain_size
        )));
    }
    if h.capacity == 0 || h.capacity > MAX_CAPACITY / 512 || h.gd_entries() > MAX_GD_ENTRIES {
        return Err(Error::bad(format!(
            "VMDK capacity of {} sectors is out of range",
            h.capacity
        )));
    }
    if h.compressed() && le_u16(b, 77)? != 1 {
        return Err(Error::Unsupported(format!(
            "VMDK compression algorithm {}",
            le_u16(b, 77)?
        )));
    }
    let limit = 1u64 << 40;
    if (h.gd_offset != GD_AT_END && (h.gd_offset == 0 || h.gd_offset > limit))
        || h.rgd_offset > limit
        || h.overhead > limit
        || h.descriptor_offset > limit
        || h.descriptor_size > limit
    {
        return Err(Error::bad("VMDK metadata offsets are out of range"));
    }
    Ok(h)
}

/// Serialises a sparse extent header.
pub fn sparse_header_bytes(h: &SparseHeader) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..4].copy_from_slice(&MAGIC);
    let p32 = |b: &mut [u8; 512], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let p64 = |b: &mut [u8; 512], o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    p32(&mut b, 4, h.version);
    p32(&mut b, 8, h.flags);
    p64(&mut b, 12, h.capacity);
    p64(&mut b, 20, h.grain_size);
    p64(&mut b, 28, h.descriptor_offset);
    p64(&mut b, 36, h.descriptor_size);
    p32(&mut b, 44, GTES_PER_GT as u32);
    p64(&mut b, 48, h.rgd_offset);
    p64(&mut b, 56, h.gd_offset);
    p64(&mut b, 64, h.overhead);
    b[73..77].copy_from_slice(b"\n \r\n");
    if h.compressed() {
        b[77] = 1;
    }
    b
}

/// Access of a descriptor extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-write.
    Rw,
    /// Read-only.
    RdOnly,
    /// No access.
    NoAccess,
}

/// One extent line of a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentDesc {
    /// Access.
    pub access: Access,
    /// Size in sectors.
    pub sectors: u64,
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`, ...
    pub kind: String,
    /// File name (absent for `ZERO`).
    pub file: Option<String>,
    /// Start in the file, in sectors (`FLAT`).
    pub offset: u64,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `createType`.
    pub create_type: String,
    /// Content id.
    pub cid: Option<u32>,
    /// Parent content id (`ffffffff` = none).
    pub parent_cid: Option<u32>,
    /// `parentFileNameHint`.
    pub parent_hint: Option<String>,
    /// The extents, in guest order.
    pub extents: Vec<ExtentDesc>,
}

impl Descriptor {
    /// Whether the descriptor names a parent (a delta disk).
    pub fn has_parent(&self) -> bool {
        self.parent_hint.is_some() || self.parent_cid.is_some_and(|c| c != u32::MAX)
    }
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn parse_extent(line: &str) -> Result<ExtentDesc> {
    let bad = || Error::bad(format!("VMDK descriptor extent line {line:?} is malformed"));
    let (head, rest) = match line.find('"') {
        Some(q) => (&line[..q], Some(&line[q + 1..])),
        None => (line, None),
    };
    let mut words = head.split_whitespace();
    let access = match words.next() {
        Some("RW") => Access::Rw,
        Some("RDONLY") => Access::RdOnly,
        Some("NOACCESS") => Access::NoAccess,
        _ => return Err(bad()),
    };
    let sectors: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let kind = words.next().ok_or_else(bad)?.to_string();
    if words.next().is_some() {
        return Err(bad());
    }
    let (file, offset) = match rest {
        None => (None, 0),
        Some(r) => {
            let end = r.find('"').ok_or_else(bad)?;
            let tail = r[end + 1..].trim();
            let offset = if tail.is_empty() {
                0
            } else {
                tail.parse().map_err(|_| bad())?
            };
            (Some(r[..end].to_string()), offset)
        }
    };
    if sectors > MAX_CAPACITY / 512 || offset > MAX_CAPACITY / 512 {
        return Err(bad());
    }
    Ok(ExtentDesc {
        access,
        sectors,
        kind,
        file,
        offset,
    })
}

/// Parses a text descriptor (text up to the first NUL; at most [`MAX_DESCRIPTOR`] bytes).
/// Never panics.
pub fn parse_descriptor(raw: &[u8]) -> Result<Descriptor> {
    if raw.len() as u64 > MAX_DESCRIPTOR {
        return Err(Error::bad(format!(
            "VMDK descriptor of {} bytes is larger than {MAX_DESCRIPTOR}",
            raw.len()
        )));
    }
    let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
    let text = std::str::from_utf8(raw).map_err(|_| Error::bad("VMDK descriptor is not UTF-8"))?;
    let mut d = Descriptor::default();
    let hex = |v: &str| u32::from_str_radix(unquote(v), 16).ok();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            if d.extents.len() >= MAX_EXTENTS {
                return Err(Error::bad(format!(
                    "VMDK descriptor has more than {MAX_EXTENTS} extents"
                )));
            }
            d.extents.push(parse_extent(line)?);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::bad(format!(
                "VMDK descriptor line {line:?} is malformed"
            )));
        };
        match k.trim() {
            "createType" => d.create_type = unquote(v).to_string(),
            "CID" => d.cid = hex(v),
            "parentCID" => d.parent_cid = hex(v),
            "parentFileNameHint" => d.parent_hint = Some(unquote(v).to_string()),
            _ => {}
        }
    }
    Ok(d)
}

/// Checks that an extent file name stays in the descriptor's directory: a plain file name,
/// relative, without `/`, `..` or NUL.
pub fn check_extent_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.starts_with('/') {
        "is an absolute path"
    } else if name.split('/').any(|c| c == "..") {
        "climbs out of the descriptor's directory (..)"
    } else if name.contains('/') || name == "." {
        "is not in the descriptor's directory"
    } else if name.contains('\0') || name.len() > 255 {
        "is not a valid file name"
    } else {
        return Ok(());
    };
    Err(Error::bad(format!(
        "VMDK extent file {name:?} {why}; only files next to the descriptor are opened"
    )))
}

/// The text descriptor diskfab writes for a single-extent image.
pub fn descriptor_text(
    create_type: &str,
    extent: &str,
    sectors: u64,
    file: &str,
    cid: u32,
) -> String {
    let cyl = (sectors / (16 * 63)).min(16383);
    format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"{create_type}\"\n\n# Extent description\nRW {sectors} {extent} \"{file}\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cyl}\"\nddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
    )
}

/// A 512-byte metadata marker.
pub fn meta_marker(num_sectors: u64, kind: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..8].copy_from_slice(&num_sectors.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

/// Parses a marker: (value, size, type). `size` > 0 is a grain marker (type is then meaningless).
pub fn parse_marker(b: &[u8]) -> Option<(u64, u32, u32)> {
    Some((le_u64(b, 0).ok()?, le_u32(b, 8).ok()?, le_u32(b, 12).ok()?))
}

/// A new, empty sparse VMDK: byte runs to write and the file length.
#[derive(Debug, Clone)]
pub struct NewVmdk {
    /// (offset, bytes) to write; everything else is zero.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// File length.
    pub len: u64,
    /// The header.
    pub header: SparseHeader,
}

const DESC_SECTORS: u64 = 20;

/// Builds an empty monolithicSparse (grain tables preallocated, redundant GD) or
/// streamOptimized (GD, footer and end-of-stream after the header area) VMDK of `size` bytes
/// (a multiple of 512). `file` is the image's own file name, recorded in its descriptor.
pub fn build(size: u64, stream: bool, file: &str, cid: u32) -> Result<NewVmdk> {
    if size == 0 || size > MAX_CREATE || !size.is_multiple_of(512) {
        return Err(Error::Invalid(format!(
            "VMDK size {size} must be a multiple of 512 up to 2 TiB"
        )));
    }
    if file.contains('"') || file.contains('\n') {
        return Err(Error::Invalid(format!(
            "VMDK file name {file:?} cannot be recorded in a descriptor"
        )));
    }
    let ctype = if stream {
        "streamOptimized"
    } else {
        "monolithicSparse"
    };
    let desc = descriptor_text(ctype, "SPARSE", size / 512, file, cid);
    let mut h = SparseHeader {
        version: if stream { 3 } else { 1 },
        flags: if stream {
            FLAG_NL_TEST | FLAG_COMPRESSED | FLAG_MARKERS
        } else {
            FLAG_NL_TEST | FLAG_RGD
        },
        capacity: size / 512,
        grain_size: DEFAULT_GRAIN,
        descriptor_offset: 1,
        descriptor_size: DESC_SECTORS,
        rgd_offset: 0,
        gd_offset: GD_AT_END,
        overhead: 0,
    };
    let (gde, gds) = (h.gd_entries(), h.gd_sectors());
    let gt_sectors = GTES_PER_GT * 4 / 512;
    let mut head = Vec::new();
    let segments = if stream {
        h.overhead = (1 + DESC_SECTORS).div_ceil(DEFAULT_GRAIN) * DEFAULT_GRAIN;
        let at = h.overhead * 512;
        head.extend_from_slice(&sparse_header_bytes(&h));
        head.extend_from_slice(desc.as_bytes());
        let trailer = stream_trailer(&h, &vec![0; gde as usize], h.overhead + 1);
        vec![(0, head), (at, trailer)]
    } else {
        h.rgd_offset = 1 + DESC_SECTORS;
        let rgts = h.rgd_offset + gds;
        h.gd_offset = rgts + gde * gt_sectors;
        let gts = h.gd_offset + gds;
        h.overhead = (gts + gde * gt_sectors).div_ceil(DEFAULT_GRAIN) * DEFAULT_GRAIN;
        let dir = |first: u64| -> Vec<u8> {
            (0..gde)
                .flat_map(|i| ((first + i * gt_sectors) as u32).to_le_bytes())
                .collect()
        };
        head.extend_from_slice(&sparse_header_bytes(&h));
        head.extend_from_slice(desc.as_bytes());
        head.resize((h.rgd_offset * 512) as usize, 0);
        head.extend_from_slice(&dir(rgts));
        vec![(0, head), (h.gd_offset * 512, dir(gts))]
    };
    let len = segments
        .iter()
        .map(|(o, b)| o + b.len() as u64)
        .max()
        .unwrap_or(0)
        .max(h.overhead * 512)
        .div_ceil(512)
        * 512;
    Ok(NewVmdk {
        segments,
        len,
        header: h,
    })
}

/// The end of a stream-optimized extent: GD marker and GD (at sector `gd_at`, the sector after
/// its marker), footer marker and footer, end-of-stream marker.
pub fn stream_trailer(h: &SparseHeader, gd: &[u32], gd_at: u64) -> Vec<u8> {
    let gds = h.gd_sectors();
    let mut t = Vec::with_capacity(((gds + 4) * 512) as usize);
    t.extend_from_slice(&meta_marker(gds, MARKER_GD));
    t.extend(gd.iter().flat_map(|e| e.to_le_bytes()));
    t.resize(((1 + gds) * 512) as usize, 0);
    t.extend_from_slice(&meta_marker(1, MARKER_FOOTER));
    let mut f = h.clone();
    f.gd_offset = gd_at;
    t.extend_from_slice(&sparse_header_bytes(&f));
    t.extend_from_slice(&meta_marker(0, MARKER_EOS));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_parse_and_hostile_names_are_refused() {
        let d = parse_descriptor(
            b"# Disk DescriptorFile\nversion=1\nCID=12ab\nparentCID=ffffffff\n\
              createType=\"monolithicFlat\"\nRW 2048 FLAT \"a b-flat.vmdk\" 0\nRDONLY 8 ZERO\n\0junk",
        )
        .unwrap();
        assert_eq!(d.create_type, "monolithicFlat");
        assert_eq!(d.cid, Some(0x12ab));
        assert!(!d.has_parent());
        assert_eq!(d.extents.len(), 2);
        assert_eq!(d.extents[0].file.as_deref(), Some("a b-flat.vmdk"));
        assert_eq!(d.extents[1].kind, "ZERO");
        for n in ["/etc/shadow", "../x", "a/../../b", "sub/x", "", "."] {
            assert!(check_extent_name(n).is_err(), "{n}");
        }
        assert!(check_extent_name("disk-flat.vmdk").is_ok());
        assert!(parse_descriptor(b"RW x FLAT \"a\"").is_err());
        assert!(parse_descriptor(b"RW 1 FLAT \"a").is_err());
        assert!(parse_descriptor(&vec![b'#'; 70000]).is_err());
    }

    #[test]
    fn built_headers_parse_back() {
        for stream in [false, true] {
            let n = build(10 << 20, stream, "x.vmdk", 1).unwrap();
            let h = parse_sparse_header(&n.segments[0].1).unwrap();
            assert_eq!(h, n.header);
            assert_eq!(h.capacity_bytes(), 10 << 20);
            assert_eq!(h.compressed(), stream);
        }
        let mut b = sparse_header_bytes(&build(1 << 20, false, "x", 1).unwrap().header);
        b[75] = b'\n';
        assert!(parse_sparse_header(&b).is_err());
    }
}
