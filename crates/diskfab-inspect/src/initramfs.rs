//! Kernel modules inside initramfs images: concatenated cpio (newc) archives, an uncompressed
//! first segment (early microcode) possibly followed by a gzip, xz, zstd or lz4 compressed one.
//! Nothing is extracted: entry names are only matched as strings, and every size is bounded.

use crate::system::HYPERVISOR_DRIVERS;
use diskfab_storage::bytes::{le_u32, slice};
use serde::Serialize;
use std::io::{Read, Write};

/// Largest initramfs file read.
pub const MAX_INITRAMFS_BYTES: u64 = 512 << 20;
/// Largest decompressed segment (bigger ones are cut with a warning).
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// Most cpio entries looked at.
const MAX_ENTRIES: usize = 1_000_000;
/// Longest cpio entry name.
const MAX_NAME: usize = 4096;

/// What one initramfs holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Initramfs {
    /// Path in the guest.
    pub path: String,
    /// Segments in order: `cpio` (uncompressed), `gzip`, `xz`, `zstd`, `lz4`.
    pub segments: Vec<String>,
    /// Number of kernel modules inside.
    pub modules: usize,
    /// Hypervisor drivers among them.
    pub drivers: Vec<String>,
}

fn hex8(b: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// Walks the cpio archives at the start of `d` (zero padding between them is skipped), pushing
/// entry names; returns where a non-cpio byte sequence starts (or `d.len()`).
fn cpio_names(d: &[u8], names: &mut Vec<String>) -> Result<usize, String> {
    let mut pos = 0usize;
    loop {
        while d.get(pos) == Some(&0) {
            pos += 1;
        }
        let Some(h) = d.get(pos..pos + 110) else {
            return Ok(pos.min(d.len()));
        };
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Ok(pos);
        }
        if names.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} cpio entries"));
        }
        let field = |i: usize| hex8(&h[6 + i * 8..14 + i * 8]).ok_or("bad cpio header field");
        let filesize = field(6)? as usize;
        let namesize = field(11)? as usize;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(format!("cpio name of {namesize} bytes"));
        }
        let name = d
            .get(pos + 110..pos + 110 + namesize - 1)
            .ok_or("cpio name past the end")?;
        let name = String::from_utf8_lossy(name).into_owned();
        let data = (pos + 110 + namesize + 3) & !3;
        let next = data
            .checked_add(filesize)
            .map(|e| (e + 3) & !3)
            .ok_or("cpio size overflow")?;
        if next > d.len() && name != "TRAILER!!!" {
            return Err(format!("cpio entry {name:?} runs past the end"));
        }
        if name != "TRAILER!!!" {
            names.push(name);
        }
        pos = next.min(d.len());
    }
}

/// A writer that refuses to grow past a cap (bounded decompression).
struct Capped(Vec<u8>, u64);
impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() as u64 + b.len() as u64 > self.1 {
            return Err(std::io::Error::other("decompressed size limit"));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_capped(mut r: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.by_ref()
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > cap {
        return Err("decompressed size limit".into());
    }
    Ok(out)
}

const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Largest compressed block of the legacy lz4 format (the bound for 8 MiB of input).
const LZ4_LEGACY_MAX_BLOCK: usize = (8 << 20) + (8 << 20) / 255 + 16;

/// Whether `d` starts with the magic of a segment kind other than legacy lz4.
fn other_magic(d: &[u8]) -> bool {
    d.starts_with(b"0707")
        || d.starts_with(&[0x1f, 0x8b])
        || d.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || d.starts_with(&[0x04, 0x22, 0x4d, 0x18])
}

/// Linux's legacy lz4 format (`lz4 -l`): magic, then blocks of [le32 size][lz4 block of ≤ 8 MiB].
/// The stream has no end marker: it ends at zero padding, at the end of the data or where another
/// segment's magic starts. Returns (bytes, bytes consumed).
fn lz4_legacy(d: &[u8], cap: u64) -> Result<(Vec<u8>, usize), String> {
    let mut out = Capped(Vec::new(), cap);
    let mut pos = 4;
    while let Ok(s) = slice(d, pos, 4) {
        if s == LZ4_LEGACY_MAGIC {
            pos += 4; // a following legacy stream
            continue;
        }
        let n = le_u32(s, 0).map_err(|e| e.to_string())? as usize;
        if n == 0 || other_magic(&d[pos..]) {
            break;
        }
        if n > LZ4_LEGACY_MAX_BLOCK {
            return Err(format!("lz4 block of {n} bytes"));
        }
        let block = d
            .get(pos + 4..pos + 4 + n)
            .ok_or("lz4 block runs past the end")?;
        let b = lz4_flex::block::decompress(block, 8 << 20).map_err(|e| format!("lz4: {e}"))?;
        out.write_all(&b).map_err(|e| e.to_string())?;
        pos += 4 + n;
    }
    Ok((out.0, pos.min(d.len())))
}

/// Consecutive gzip members (one stream to the kernel): (bytes, bytes consumed).
fn gzip_members(d: &[u8], cap: u64) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut rest = d;
    while rest.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        let left = cap.saturating_sub(out.len() as u64);
        out.extend(read_capped(&mut dec, left).map_err(|e| format!("gzip: {e}"))?);
        rest = dec.into_inner();
    }
    Ok((out, d.len() - rest.len()))
}

/// Decompresses the segment at the start of `d` into at most `cap` bytes:
/// (method, bytes, compressed bytes consumed).
fn decompress(d: &[u8], cap: u64) -> Result<(&'static str, Vec<u8>, usize), String> {
    let mut input = d;
    let (kind, out) = match d.get(..6).unwrap_or(d) {
        [0x1f, 0x8b, ..] => {
            let (out, used) = gzip_members(d, cap)?;
            return Ok(("gzip", out, used));
        }
        [0x02, 0x21, 0x4c, 0x18, ..] => {
            let (out, used) = lz4_legacy(d, cap)?;
            return Ok(("lz4", out, used));
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0] => {
            // liblzma (the reference xz implementation), one stream: its members' padding and
            // any following segment are left for the caller, as for the other formats.
            let dec = xz2::bufread::XzDecoder::new(&mut input);
            ("xz", read_capped(dec, cap).map_err(|e| format!("xz: {e}"))?)
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let dec = ruzstd::decoding::StreamingDecoder::new(&mut input)
                .map_err(|e| format!("zstd: {e}"))?;
            (
                "zstd",
                read_capped(dec, cap).map_err(|e| format!("zstd: {e}"))?,
            )
        }
        [0x04, 0x22, 0x4d, 0x18, ..] => {
            let dec = lz4_flex::frame::FrameDecoder::new(&mut input);
            (
                "lz4",
                read_capped(dec, cap).map_err(|e| format!("lz4: {e}"))?,
            )
        }
        _ => return Err("unknown compression after the cpio archives".into()),
    };
    Ok((kind, out, d.len() - input.len()))
}

/// Most segments (cpio runs and compressed streams) looked at.
const MAX_SEGMENTS: usize = 64;

/// Entry names of every archive in an initramfs, with the segment kinds in order; the first
/// problem met ends the walk and is returned as a warning next to what could be read.
pub fn entries(d: &[u8]) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut names = Vec::new();
    let mut segments = Vec::new();
    let warn = walk(d, &mut names, &mut segments).err();
    (names, segments, warn)
}

fn walk(d: &[u8], names: &mut Vec<String>, segments: &mut Vec<String>) -> Result<(), String> {
    let mut pos = 0usize;
    let mut budget = MAX_DECOMPRESSED;
    loop {
        while d.get(pos) == Some(&0) {
            pos += 1;
        }
        if pos >= d.len() {
            return Ok(());
        }
        if segments.len() >= MAX_SEGMENTS {
            return Err(format!("more than {MAX_SEGMENTS} segments"));
        }
        let at = pos;
        if d[pos..].starts_with(b"0707") {
            pos += cpio_names(&d[pos..], names)?;
            segments.push("cpio".into());
            if pos == at {
                return Err(format!("unknown data at offset {at}"));
            }
            continue;
        }
        let (kind, inner, used) = decompress(&d[pos..], budget)
            .map_err(|e| format!("segment {} at offset {at}: {e}", segments.len() + 1))?;
        segments.push(kind.into());
        budget -= inner.len() as u64;
        let end = cpio_names(&inner, names)?;
        if end < inner.len() {
            return Err(format!(
                "data after the cpio archives of the {kind} segment"
            ));
        }
        pos += used.max(1);
    }
}

/// The module name of a kernel module entry (`…/kernel/…/virtio_blk.ko.xz` → `virtio_blk`).
pub fn module_name(entry: &str) -> Option<String> {
    if !entry.contains("/kernel/") && !entry.starts_with("kernel/") {
        return None;
    }
    let file = entry.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|s| file.strip_suffix(s))?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

/// Reads an initramfs image: its segments, module count and hypervisor drivers.
pub fn inspect(path: &str, d: &[u8], warnings: &mut Vec<String>) -> Initramfs {
    let (names, segments, warn) = entries(d);
    if let Some(w) = warn {
        warnings.push(format!("{path}: {w}"));
    }
    let mut mods: Vec<String> = names.iter().filter_map(|n| module_name(n)).collect();
    mods.sort();
    mods.dedup();
    Initramfs {
        path: path.into(),
        segments,
        modules: mods.len(),
        drivers: HYPERVISOR_DRIVERS
            .iter()
            .filter(|d| mods.iter().any(|m| m == *d))
            .map(|d| d.to_string())
            .collect(),
    }
}

/// Fuzzing entry point: an initramfs image through the cpio walker and decompressors. Returns
/// the number of segments read.
pub fn fuzz_initramfs(data: &[u8]) -> usize {
    inspect("fuzz", data, &mut Vec::new()).segments.len()
}

/// Fuzzing entry point: uncompressed cpio archives through the entry walker alone. Returns the
/// number of entry names read.
pub fn fuzz_cpio(data: &[u8]) -> usize {
    let mut names = Vec::new();
    let _ = cpio_names(data, &mut names);
    names.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("070701{}", "00000000".repeat(6)).into_bytes();
        h.extend(format!("{:08x}", data.len()).bytes());
        h.extend("00000000".repeat(4).bytes());
        h.extend(format!("{:08x}00000000", name.len() + 1).bytes());
        h.extend(name.bytes());
        h.push(0);
        while h.len() % 4 != 0 {
            h.push(0);
        }
        h.extend(data);
        while h.len() % 4 != 0 {
            h.push(0);
        }
        h
    }

    #[test]
    fn hostile_cpio_names_and_sizes_are_bounded_and_never_extracted() {
        let mut a = entry("../../etc/passwd", b"x");
        a.extend(entry(
            "/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko",
            b"",
        ));
        a.extend(entry("TRAILER!!!", b""));
        let (names, seg, w) = entries(&a);
        assert_eq!(names.len(), 2);
        assert_eq!((seg, w), (vec!["cpio".to_string()], None));
        // A file size of 4 GiB in a 200-byte archive.
        let mut huge = entry("big", b"");
        huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff");
        assert!(entries(&huge).2.unwrap().contains("past the end"));
        let mut long = entry("n", b"");
        long[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"7fffffff");
        assert!(entries(&long).2.is_some());
        let mut nothex = entry("n", b"");
        nothex[6 + 6 * 8] = b'z';
        assert!(entries(&nothex).2.is_some());
        assert_eq!(
            module_name("usr/lib/modules/6.1/kernel/net/vmw-vsock.ko.zst").as_deref(),
            Some("vmw_vsock")
        );
        assert_eq!(module_name("usr/lib/firmware/a.ko"), None);
    }
}
