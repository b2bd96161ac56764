//! Pure parsing and building of the qcow2 header (no I/O). Every field is validated before
//! anything else trusts it: images come from strangers.

use diskfab_storage::bytes::{be_u32, be_u64};
use diskfab_storage::{Error, Result};

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Largest virtual size accepted (2^56 bytes, far beyond any real disk).
pub const MAX_SIZE: u64 = 1 << 56;
/// Largest L1 table accepted, in entries (same bound as QEMU: 32 MiB of entries).
pub const MAX_L1_ENTRIES: u64 = 32 << 20 >> 3;
/// Largest refcount table accepted, in bytes (8 MiB, QEMU's bound).
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Host offsets must be below this (bits 56..63 of table entries are flags/reserved).
pub const MAX_HOST_OFFSET: u64 = 1 << 56;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_CRYPTO: u32 = 0x0537_be77;

/// Incompatible feature bits diskfab understands.
pub const INCOMPAT_DIRTY: u64 = 1;
/// Image marked corrupt by QEMU.
pub const INCOMPAT_CORRUPT: u64 = 2;
/// The guest data lives in an external data file named by a header extension.
pub const INCOMPAT_DATA_FILE: u64 = 4;
/// Autoclear bit: the external data file is a valid raw image of the guest (offset = guest).
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 2;
const INCOMPAT_COMPRESSION: u64 = 8;
/// Extended L2 entries: 128-bit entries with a 32-subcluster allocation/zero bitmap.
pub const INCOMPAT_EXTL2: u64 = 16;

/// A validated qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size (9..=21).
    pub cluster_bits: u32,
    /// Guest-visible size in bytes.
    pub size: u64,
    /// L1 entries.
    pub l1_size: u32,
    /// Host offset of the L1 table.
    pub l1_table_offset: u64,
    /// Host offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u32,
    /// Internal snapshots.
    pub nb_snapshots: u32,
    /// Host offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits.
    pub incompatible: u64,
    /// Compatible feature bits.
    pub compatible: u64,
    /// Autoclear feature bits.
    pub autoclear: u64,
    /// log2 of the refcount width in bits (0..=6).
    pub refcount_order: u32,
    /// Header length in bytes (72 for v2).
    pub header_length: u32,
    /// The backing file name as stored.
    pub backing_file: Option<String>,
    /// The backing format from the header extension (`raw`, `qcow2`, ...).
    pub backing_format: Option<String>,
    /// Whether a bitmaps extension is present (kept as is; never touched).
    pub has_bitmaps: bool,
    /// Compression of compressed clusters: 0 = zlib (deflate), 1 = zstd.
    pub compression_type: u8,
    /// The external data file name as stored (the data-file extension), when the image has one.
    pub data_file: Option<String>,
    /// The diskfab trust mark extension ([`crate::trust`]), when present with 32 bytes.
    pub trust_mark: Option<[u8; 32]>,
}

impl Qcow2Header {
    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
    /// Entries per L2 table (16-byte entries with extended L2, 8-byte otherwise).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_bytes()
    }
    /// Whether L2 entries are extended (subclusters).
    pub fn extended_l2(&self) -> bool {
        self.incompatible & INCOMPAT_EXTL2 != 0
    }
    /// Bytes per L2 entry: 16 with extended L2 entries, else 8.
    pub fn l2_entry_bytes(&self) -> u64 {
        if self.extended_l2() {
            16
        } else {
            8
        }
    }
    /// log2 of the allocation unit of L2 entries: the subcluster (cluster / 32) with extended
    /// L2 entries, else the cluster.
    pub fn unit_bits(&self) -> u32 {
        if self.extended_l2() {
            self.cluster_bits - 5
        } else {
            self.cluster_bits
        }
    }
    /// Refcount bits per entry.
    pub fn refcount_bits(&self) -> u32 {
        1 << self.refcount_order
    }
    /// Refcount entries per refcount block.
    pub fn refblock_entries(&self) -> u64 {
        self.cluster_size() * 8 / u64::from(self.refcount_bits())
    }
}

/// Parses and validates a qcow2 header from the first bytes of the file (at least the first
/// cluster, or the whole file if shorter). Never panics.
pub fn parse_qcow2_header(b: &[u8]) -> Result<Qcow2Header> {
    if b.len() < 72 || b[..4] != MAGIC {
        return Err(Error::bad(
            "not a qcow2 image (bad magic or shorter than a header)",
        ));
    }
    let version = be_u32(b, 4)?;
    if version != 2 && version != 3 {
        return Err(Error::Unsupported(format!("qcow2 version {version}")));
    }
    let backing_off = be_u64(b, 8)?;
    let backing_len = be_u32(b, 16)?;
    let cluster_bits = be_u32(b, 20)?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(Error::bad(format!(
            "qcow2 cluster_bits {cluster_bits} is outside 9..21"
        )));
    }
    let cs = 1u64 << cluster_bits;
    let size = be_u64(b, 24)?;
    if size > MAX_SIZE {
        return Err(Error::bad(format!("qcow2 virtual size {size} is absurd")));
    }
    if be_u32(b, 32)? != 0 {
        return Err(Error::Unsupported(
            "encrypted qcow2 images (AES/LUKS)".into(),
        ));
    }
    let l1_size = be_u32(b, 36)?;
    let l1_table_offset = be_u64(b, 40)?;
    let refcount_table_offset = be_u64(b, 48)?;
    let refcount_table_clusters = be_u32(b, 56)?;
    let nb_snapshots = be_u32(b, 60)?;
    let snapshots_offset = be_u64(b, 64)?;
    if nb_snapshots > crate::snapshot::MAX_SNAPSHOTS {
        return Err(Error::bad(format!(
            "qcow2 claims {nb_snapshots} internal snapshots (at most 65536)"
        )));
    }
    let (incompatible, compatible, autoclear, refcount_order, header_length) = if version == 3 {
        if b.len() < 104 {
            return Err(Error::bad("qcow2 v3 header is truncated"));
        }
        (
            be_u64(b, 72)?,
            be_u64(b, 80)?,
            be_u64(b, 88)?,
            be_u32(b, 96)?,
            be_u32(b, 100)?,
        )
    } else {
        (0, 0, 0, 4, 72)
    };
    check_features(incompatible, b, header_length)?;
    if refcount_order > 6 {
        return Err(Error::bad(format!(
            "qcow2 refcount_order {refcount_order} > 6"
        )));
    }
    if (version == 3 && header_length < 104) || u64::from(header_length) > cs.min(b.len() as u64) {
        return Err(Error::bad(format!(
            "qcow2 header length {header_length} is invalid"
        )));
    }
    let extl2 = incompatible & INCOMPAT_EXTL2 != 0;
    if extl2 && cluster_bits < 14 {
        return Err(Error::bad(format!(
            "qcow2 extended L2 entries need clusters of at least 16 KiB, not {cs} bytes"
        )));
    }
    let l2_entries = cs / if extl2 { 16 } else { 8 };
    let needed_l1 = size.div_ceil(cs * l2_entries);
    if u64::from(l1_size) < needed_l1 || u64::from(l1_size) > MAX_L1_ENTRIES {
        return Err(Error::bad(format!(
            "qcow2 L1 table has {l1_size} entries; {needed_l1} are needed for {size} bytes"
        )));
    }
    check_table_offset("L1 table", l1_table_offset, cs, l1_size != 0)?;
    check_table_offset("refcount table", refcount_table_offset, cs, true)?;
    if refcount_table_clusters == 0 || u64::from(refcount_table_clusters) * cs > MAX_REFTABLE_BYTES
    {
        return Err(Error::bad(format!(
            "qcow2 refcount table of {refcount_table_clusters} clusters is invalid"
        )));
    }
    let backing_file = parse_backing_name(b, backing_off, backing_len, cs)?;
    let ext = parse_extensions(b, header_length as usize)?;
    if (incompatible & INCOMPAT_DATA_FILE != 0) != ext.data_file.is_some() {
        return Err(Error::bad(
            "qcow2 external data file bit and data-file header extension disagree",
        ));
    }
    Ok(Qcow2Header {
        version,
        cluster_bits,
        size,
        l1_size,
        l1_table_offset,
        refcount_table_offset,
        refcount_table_clusters,
        nb_snapshots,
        snapshots_offset,
        incompatible,
        compatible,
        autoclear,
        refcount_order,
        header_length,
        backing_file,
        backing_format: ext.backing_format,
        has_bitmaps: ext.has_bitmaps,
        data_file: ext.data_file,
        trust_mark: ext.trust_mark,
        compression_type: if incompatible & INCOMPAT_COMPRESSION != 0 && header_length > 104 {
            b.get(104).copied().unwrap_or(0)
        } else {
            0
        },
    })
}

fn check_features(incompat: u64, b: &[u8], header_length: u32) -> Result<()> {
    let known = INCOMPAT_DIRTY
        | INCOMPAT_CORRUPT
        | INCOMPAT_DATA_FILE
        | INCOMPAT_COMPRESSION
        | INCOMPAT_EXTL2;
    if incompat & !known != 0 {
        return Err(Error::Unsupported(format!(
            "qcow2 incompatible feature bits {:#x}",
            incompat & !known
        )));
    }
    if incompat & INCOMPAT_COMPRESSION != 0
        && header_length > 104
        && b.get(104).copied().unwrap_or(0) > 1
    {
        return Err(Error::Unsupported(
            "qcow2 compression types other than zlib and zstd".into(),
        ));
    }
    Ok(())
}

fn check_table_offset(what: &str, off: u64, cs: u64, required: bool) -> Result<()> {
    if required && off == 0 {
        return Err(Error::bad(format!("qcow2 {what} offset is 0")));
    }
    if !off.is_multiple_of(cs) || off >= MAX_HOST_OFFSET {
        return Err(Error::bad(format!(
            "qcow2 {what} offset {off:#x} is not cluster-aligned or out of range"
        )));
    }
    Ok(())
}

fn parse_backing_name(b: &[u8], off: u64, len: u32, cs: u64) -> Result<Option<String>> {
    if off == 0 || len == 0 {
        return Ok(None);
    }
    if len > 1023 || off.saturating_add(u64::from(len)) > cs.min(b.len() as u64) {
        return Err(Error::bad(format!(
            "qcow2 backing file name ({len} bytes at {off}) lies outside the header cluster"
        )));
    }
    let raw = &b[off as usize..off as usize + len as usize];
    let s =
        std::str::from_utf8(raw).map_err(|_| Error::bad("qcow2 backing file name is not UTF-8"))?;
    if s.contains('\0') {
        return Err(Error::bad("qcow2 backing file name contains NUL"));
    }
    Ok(Some(s.to_string()))
}

/// What the header extensions say.
#[derive(Default)]
struct Extensions {
    backing_format: Option<String>,
    has_bitmaps: bool,
    data_file: Option<String>,
    trust_mark: Option<[u8; 32]>,
}

fn parse_extensions(b: &[u8], start: usize) -> Result<Extensions> {
    let mut off = start;
    let mut x = Extensions::default();
    for _ in 0..1024 {
        if off + 8 > b.len() {
            return Ok(x); // no end marker inside what we have: stop
        }
        let ty = be_u32(b, off)?;
        let len = be_u32(b, off + 4)? as usize;
        let data = off + 8;
        let end = data
            .checked_add(len)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| Error::bad("qcow2 header extension runs past the header"))?;
        match ty {
            EXT_END => return Ok(x),
            EXT_BACKING_FORMAT => {
                let s = std::str::from_utf8(&b[data..end])
                    .map_err(|_| Error::bad("qcow2 backing format is not UTF-8"))?;
                x.backing_format = Some(s.trim_end_matches('\0').to_string());
            }
            EXT_BITMAPS => x.has_bitmaps = true,
            EXT_CRYPTO => return Err(Error::Unsupported("encrypted qcow2 images".into())),
            EXT_DATA_FILE => x.data_file = Some(parse_data_file_name(&b[data..end])?),
            EXT_FEATURE_NAMES => {}
            crate::trust::EXT_TRUST_MARK => x.trust_mark = b[data..end].try_into().ok(),
            _ => {}
        }
        off = end.div_ceil(8) * 8;
    }
    Err(Error::bad("qcow2 has too many header extensions"))
}

/// Checks an external data file name: 1..=1023 bytes of UTF-8 without NUL, and a plain file
/// name (no `/`, not `.` or `..`): the data file must sit next to the image. Where it really
/// leads (symlinks) is then decided by the backing-file gate.
pub fn parse_data_file_name(raw: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| Error::bad("qcow2 external data file name is not UTF-8"))?;
    if s.is_empty() || s.len() > 1023 || s.contains('\0') {
        return Err(Error::bad(
            "qcow2 external data file name is empty, too long or contains NUL",
        ));
    }
    if s.contains('/') || s == "." || s == ".." {
        return Err(Error::bad(format!(
            "qcow2 external data file {s:?} is not a plain file name; diskfab opens data files \
             only next to the image (put it there and rewrite the name with \
             `qemu-img amend -o data_file=NAME`)"
        )));
    }
    Ok(s.to_string())
}

/// What to put in a new qcow2 header.
#[derive(Debug, Clone)]
pub struct NewHeader<'a> {
    /// log2 cluster size.
    pub cluster_bits: u32,
    /// Virtual size.
    pub size: u64,
    /// Backing file name as stored.
    pub backing: Option<&'a str>,
    /// Backing format name.
    pub backing_format: Option<&'a str>,
    /// Compressed clusters use zstd (compression type 1) instead of zlib.
    pub zstd: bool,
    /// Extended L2 entries (32 subclusters per cluster; clusters of 16 KiB or more).
    pub extended_l2: bool,
    /// The diskfab trust mark to store (set only by [`crate::trust::overlay_image`]).
    pub trust_mark: Option<[u8; 32]>,
}

/// Builds a complete, empty qcow2 v3 image (header, refcount table and blocks, L1 table) as
/// bytes. Everything is computed once; `clone_many` writes the same bytes N times. Images with
/// a backing file are built through [`crate::trust::overlay_image`], which adds the trust mark.
pub fn build_image(h: &NewHeader) -> Result<Vec<u8>> {
    let cs = 1u64 << h.cluster_bits;
    if h.extended_l2 && h.cluster_bits < 14 {
        return Err(Error::Invalid(
            "extended_l2 needs a cluster size of at least 16K".into(),
        ));
    }
    let l1_size = h
        .size
        .div_ceil(cs * (cs / if h.extended_l2 { 16 } else { 8 }));
    if l1_size > MAX_L1_ENTRIES {
        return Err(Error::Invalid(
            "image too large for this cluster size".into(),
        ));
    }
    let l1_clusters = (l1_size * 8).div_ceil(cs);
    let per_block = cs * 8 / 16;
    // Layout: header | refcount table (T) | refcount blocks (B) | L1 (L). Solve for T and B.
    let (mut t, mut blocks) = (1u64, 1u64);
    loop {
        let total = 1 + t + blocks + l1_clusters;
        let nb = total.div_ceil(per_block);
        let nt = (nb * 8).div_ceil(cs);
        if nb == blocks && nt == t {
            break;
        }
        blocks = nb;
        t = nt;
    }
    let total = 1 + t + blocks + l1_clusters;
    let mut img = vec![0u8; (total * cs) as usize];
    let reftable_off = cs;
    let refblocks_off = cs * (1 + t);
    let l1_off = cs * (1 + t + blocks);
    let mut hdr = Vec::with_capacity(512);
    hdr.extend_from_slice(&MAGIC);
    {
        let v = 3u32;
        hdr.extend_from_slice(&v.to_be_bytes());
    }
    hdr.extend_from_slice(&0u64.to_be_bytes()); // backing offset, patched below
    hdr.extend_from_slice(&0u32.to_be_bytes()); // backing length
    hdr.extend_from_slice(&h.cluster_bits.to_be_bytes());
    hdr.extend_from_slice(&h.size.to_be_bytes());
    hdr.extend_from_slice(&0u32.to_be_bytes()); // crypt
    hdr.extend_from_slice(&(l1_size as u32).to_be_bytes());
    hdr.extend_from_slice(&(if l1_size == 0 { 0 } else { l1_off }).to_be_bytes());
    hdr.extend_from_slice(&reftable_off.to_be_bytes());
    hdr.extend_from_slice(&(t as u32).to_be_bytes());
    hdr.extend_from_slice(&0u32.to_be_bytes()); // snapshots
    hdr.extend_from_slice(&0u64.to_be_bytes());
    let incompat = if h.zstd { INCOMPAT_COMPRESSION } else { 0 }
        | if h.extended_l2 { INCOMPAT_EXTL2 } else { 0 };
    hdr.extend_from_slice(&incompat.to_be_bytes()); // incompatible
    hdr.extend_from_slice(&0u64.to_be_bytes()); // compatible
    hdr.extend_from_slice(&0u64.to_be_bytes()); // autoclear
    hdr.extend_from_slice(&4u32.to_be_bytes()); // refcount_order: 16 bits
    hdr.extend_from_slice(&112u32.to_be_bytes()); // header_length
    hdr.extend_from_slice(&[u8::from(h.zstd), 0, 0, 0, 0, 0, 0, 0]); // compression type + padding
    if let Some(f) = h.backing_format {
        push_ext(&mut hdr, EXT_BACKING_FORMAT, f.as_bytes());
    }
    if let (Some(m), Some(_)) = (&h.trust_mark, h.backing) {
        push_ext(&mut hdr, crate::trust::EXT_TRUST_MARK, m);
    }
    push_ext(&mut hdr, EXT_END, &[]);
    if let Some(name) = h.backing {
        if name.is_empty() || name.len() > 1023 {
            return Err(Error::Invalid(
                "backing file name must be 1..1023 bytes".into(),
            ));
        }
        let off = hdr.len() as u64;
        hdr[8..16].copy_from_slice(&off.to_be_bytes());
        hdr[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        hdr.extend_from_slice(name.as_bytes());
    }
    if hdr.len() as u64 > cs {
        return Err(Error::Invalid(
            "backing file name does not fit in one cluster: use a larger cluster size".into(),
        ));
    }
    img[..hdr.len()].copy_from_slice(&hdr);
    for i in 0..blocks {
        let o = (reftable_off + i * 8) as usize;
        img[o..o + 8].copy_from_slice(&(refblocks_off + i * cs).to_be_bytes());
    }
    for c in 0..total {
        let o = (refblocks_off + c * 2) as usize;
        img[o..o + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    Ok(img)
}

fn push_ext(h: &mut Vec<u8>, ty: u32, data: &[u8]) {
    h.extend_from_slice(&ty.to_be_bytes());
    h.extend_from_slice(&(data.len() as u32).to_be_bytes());
    h.extend_from_slice(data);
    while !h.len().is_multiple_of(8) {
        h.push(0);
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
