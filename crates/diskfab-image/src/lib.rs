//! diskfab image formats: raw, qcow2 (v2/v3) with backing chains, VDI, VHD, VHDX and VMDK, as
//! [`BlockDev`]s.
//!
//! Formats are detected by magic ([`FormatDriver::probe`], plus [`FormatDriver::probe_file`] for
//! fixed VHDs, whose only signature is their footer), never by file name. Backing files, data
//! files and VMDK extents are opened only through the [`BackingGate`], read-only, depth-limited
//! and loop-checked: structured images anywhere, raw bytes only with explicit trust or the
//! [`trust`] mark diskfab puts in every overlay it writes.
//!
//! Why our own qcow2 engine rather than `imago` (0.2.6, evaluated from its source): imago has a
//! `sync` feature and an `ImplicitOpenGate` hook for backing files, so neither the async runtime
//! nor the backing policy is the blocker. These are:
//! - it refuses images with the compression-type incompatible bit, i.e. zstd-compressed
//!   clusters (`qemu-img convert -c -o compression_type=zstd`); diskfab reads and writes them;
//! - its discard/zeroing calls (`discard_to_zero`, `discard_to_any`, `discard_to_backing`) take
//!   `&mut self`, so a shared `BlockDev` (`&self`, used from several threads) would need an
//!   exclusive lock around every read as well;
//! - errors come back as `io::Error`, losing the BadImage / Unsupported / ReadOnly classes that
//!   map to exit code 3 and to the user-facing messages;
//! - what surrounds the engine needs the tables directly anyway: `is_zero_hint` for sparse
//!   copies, per-layer `map`, `check` with `qemu-img check` semantics, packed compressed-cluster
//!   writes for `convert -c`, and `clone_many` writing one prebuilt overlay N times.
//!
//! The engine is small (pure header parser, L1/L2 with a byte-bounded cache, 16-bit refcount
//! updates, allocate-on-write with COW from the backing chain), validates every table entry
//! before use, and is checked against `qemu-img check`/`compare`/`map` and fuzzed
//! ([`fuzz_qcow2`]).
#![deny(missing_docs)]

mod check;
pub mod compress;
mod create;
mod gate;
pub mod header;
mod host;
mod image;
mod map;
pub mod overlay;
mod qcow2;
mod refcount;
pub mod snapshot;
pub mod trust;
pub mod vdi;
pub mod vhd;
mod vhd_dev;
pub mod vhdx;
mod vhdx_dev;
pub mod vhdx_log;
mod vhdx_replay;
pub mod vmdk;
mod vmdk_dev;
mod vmdk_sparse;
mod vmdk_stream;

pub use check::{check, CheckReport};
pub use compress::{Codec, Compressor, Packed};
pub use create::{clone_many, create, relative, CreateOptions};
pub use gate::BackingGate;
pub use header::{parse_qcow2_header, Qcow2Header};
pub use image::{Image, ImageInfo, LayerInfo, OpenOptions};
pub use map::{map, Extent};

use diskfab_storage::{BlockDev, Error, Result};
use serde::Serialize;

/// An image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A plain (sparse) file.
    Raw,
    /// QEMU copy-on-write v2/v3.
    #[default]
    Qcow2,
    /// VirtualBox disk image (dynamic or static).
    Vdi,
    /// Microsoft Virtual Hard Disk (fixed or dynamic), `vpc` as in QEMU.
    #[serde(rename = "vpc")]
    Vhd,
    /// VMware virtual disk (monolithicSparse, streamOptimized, monolithicFlat).
    Vmdk,
    /// Microsoft Hyper-V virtual hard disk v2 (fixed or dynamic).
    Vhdx,
}

impl Format {
    /// The format's name as on the command line and in qcow2 backing-format extensions.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vdi => "vdi",
            Format::Vhd => "vpc",
            Format::Vmdk => "vmdk",
            Format::Vhdx => "vhdx",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            "vdi" => Ok(Format::Vdi),
            "vpc" | "vhd" => Ok(Format::Vhd),
            "vmdk" => Ok(Format::Vmdk),
            "vhdx" => Ok(Format::Vhdx),
            other => Err(Error::Unsupported(format!("image format {other:?}"))),
        }
    }
}

/// A format driver: recognises its format from the first bytes of a file.
pub trait FormatDriver: Sync {
    /// The format.
    fn format(&self) -> Format;
    /// The format's name as on the command line (`raw`, `qcow2`, ...).
    fn name(&self) -> &'static str {
        self.format().name()
    }
    /// Whether `header` (the first up to 4 KiB of the file) is this format.
    fn probe(&self, header: &[u8]) -> bool;
    /// Whether the file is this format, knowing also its last 512 bytes (`tail`) and its length:
    /// for signatures at the end (fixed VHD) and size-bounded text descriptors (VMDK).
    fn probe_file(&self, header: &[u8], tail: &[u8], len: u64) -> bool {
        let _ = (tail, len);
        self.probe(header)
    }
}

struct Qcow2Driver;
impl FormatDriver for Qcow2Driver {
    fn format(&self) -> Format {
        Format::Qcow2
    }
    fn probe(&self, header: &[u8]) -> bool {
        header.starts_with(&header::MAGIC)
    }
}

struct VdiDriver;
impl FormatDriver for VdiDriver {
    fn format(&self) -> Format {
        Format::Vdi
    }
    fn probe(&self, header: &[u8]) -> bool {
        header.len() >= 0x44 && header[0x40..0x44] == vdi::SIGNATURE.to_le_bytes()
    }
}

struct VhdDriver;
impl FormatDriver for VhdDriver {
    fn format(&self) -> Format {
        Format::Vhd
    }
    fn probe(&self, header: &[u8]) -> bool {
        header.starts_with(&vhd::COOKIE)
    }
    fn probe_file(&self, header: &[u8], tail: &[u8], len: u64) -> bool {
        // A fixed VHD is raw data plus a footer: only a footer that is valid (checksum, type,
        // a size that fits the file) counts.
        self.probe(header)
            || vhd::parse_vhd_footer(tail).is_ok_and(|f| {
                f.disk_type == vhd::TYPE_FIXED && f.virtual_size() <= len.saturating_sub(512)
            })
    }
}

struct VmdkDriver;
impl FormatDriver for VmdkDriver {
    fn format(&self) -> Format {
        Format::Vmdk
    }
    fn probe(&self, header: &[u8]) -> bool {
        header.starts_with(&vmdk::MAGIC) || header.starts_with(vmdk::DESCRIPTOR_SIGNATURE)
    }
    fn probe_file(&self, header: &[u8], _: &[u8], len: u64) -> bool {
        // A text descriptor is small: a large file starting with the signature is a raw disk
        // whose guest wrote it (it must not make diskfab open files named inside).
        header.starts_with(&vmdk::MAGIC)
            || (header.starts_with(vmdk::DESCRIPTOR_SIGNATURE) && len <= vmdk::MAX_DESCRIPTOR)
    }
}

struct VhdxDriver;
impl FormatDriver for VhdxDriver {
    fn format(&self) -> Format {
        Format::Vhdx
    }
    fn probe(&self, header: &[u8]) -> bool {
        header.starts_with(&vhdx::FILE_SIGNATURE)
    }
}

struct RawDriver;
impl FormatDriver for RawDriver {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn probe(&self, _: &[u8]) -> bool {
        true
    }
}

/// Every format driver, in probe order (raw last: it matches anything).
pub fn format_drivers() -> [&'static dyn FormatDriver; 6] {
    [
        &Qcow2Driver,
        &VdiDriver,
        &VhdDriver,
        &VmdkDriver,
        &VhdxDriver,
        &RawDriver,
    ]
}

/// Detects the format of a file from its first bytes.
pub fn detect_format(header: &[u8]) -> Format {
    format_drivers()
        .iter()
        .find(|d| d.probe(header))
        .map(|d| d.format())
        .unwrap_or(Format::Raw)
}

/// Detects the format of a file from its first bytes, its last 512 bytes and its length.
pub fn detect_format_file(header: &[u8], tail: &[u8], len: u64) -> Format {
    format_drivers()
        .iter()
        .find(|d| d.probe_file(header, tail, len))
        .map(|d| d.format())
        .unwrap_or(Format::Raw)
}

/// Fuzz entry point: parses `data` as a qcow2 header and, if that succeeds, opens it as an
/// in-memory image (no backing) and reads through its tables. Must never panic.
pub fn fuzz_qcow2(data: &[u8]) {
    let Ok(hdr) = parse_qcow2_header(data) else {
        return;
    };
    let Ok(host) = host::Host::memory(data) else {
        return;
    };
    let Ok(mut dev) = qcow2::Qcow2Dev::open(host, hdr.clone(), None, false) else {
        return;
    };
    if hdr.data_file.is_some() {
        // The same bytes stand in for the data file, so data-file reads are exercised too.
        let Ok(d) = host::Host::memory(data).and_then(|h| dev.with_data_file(h)) else {
            return;
        };
        dev = d;
    }
    let mut buf = vec![0u8; 4096];
    let cs = hdr.cluster_size();
    for i in 0..64u64 {
        let off = (i * cs).min(hdr.size.saturating_sub(4096));
        if hdr.size >= 4096 {
            let _ = dev.read_at(&mut buf, off);
        }
    }
    let _ = dev.is_zero_hint(0, hdr.size.min(16 << 20));
}

/// Fuzz entry point for the VDI header and block map. Must never panic.
pub fn fuzz_vdi(data: &[u8]) {
    let Ok(h) = vdi::parse_vdi_header(data) else {
        return;
    };
    let Ok(host) = host::Host::memory(data) else {
        return;
    };
    if let Ok(dev) = vdi::VdiDev::open(host, h.clone(), false) {
        let mut buf = vec![0u8; 4096];
        for i in 0..16u64 {
            let off = (i << 20).min(h.disk_size.saturating_sub(4096));
            if h.disk_size >= 4096 {
                let _ = dev.read_at(&mut buf, off);
            }
        }
    }
}

/// Fuzz entry point for the VHD footer, dynamic header and BAT. Must never panic.
pub fn fuzz_vhd(data: &[u8]) {
    let Ok(host) = host::Host::memory(data) else {
        return;
    };
    let head = &data[..data.len().min(4096)];
    if let Ok(dev) = vhd_dev::VhdDev::open(host, head, false) {
        read_some(&dev);
    }
}

/// Fuzz entry point for VMDK sparse and stream-optimized extents (header, footer, embedded
/// descriptor, grain directory and tables, compressed grains) and text descriptors (parsed
/// only: a fuzzed descriptor must not open files). Must never panic.
pub fn fuzz_vmdk(data: &[u8]) {
    let _ = vmdk::parse_descriptor(data);
    if !data.starts_with(&vmdk::MAGIC) {
        return;
    }
    let Ok(host) = host::Host::memory(data) else {
        return;
    };
    let head = &data[..data.len().min(4096)];
    if let Ok(vmdk_dev::Opened::Dev(dev)) = vmdk_dev::VmdkDev::open_file(
        host,
        std::path::Path::new("<memory>"),
        head,
        false,
        &BackingGate::default(),
    ) {
        read_some(&dev);
    }
}

/// Fuzz entry point for VHDX headers, region tables, metadata, BAT and the log (a pending log
/// is replayed in memory; the input is also parsed as a log on its own). Must never panic.
///
/// VHDX structures sit at 1 MiB boundaries, beyond a fuzzer's input length, so the input is
/// spread out: its first 320 KiB (identifier, headers, region tables) stay in place and each
/// following 64 KiB piece `k` goes to offset `(k + 1)` MiB of a sparse in-memory file, which
/// is then 32 MiB longer (holes read as zeroes), so blocks near the pieces are in the file.
pub fn fuzz_vhdx(data: &[u8]) {
    const HEAD: usize = 320 << 10;
    let Ok(host) = host::Host::memory(&data[..data.len().min(HEAD)]) else {
        return;
    };
    if data.len() > HEAD {
        for (k, piece) in data[HEAD..].chunks(64 << 10).enumerate() {
            if host.write(piece, (k as u64 + 1) << 20).is_err() {
                return;
            }
        }
    }
    let Ok(len) = host.len() else { return };
    if host
        .set_len(len.div_ceil(1 << 20) * (1 << 20) + (32 << 20))
        .is_err()
    {
        return;
    }
    fuzz_vhdx_log(data);
    let head = &data[..data.len().min(4096)];
    if let Ok(dev) = vhdx_dev::VhdxDev::open(host, head, false) {
        read_some(&dev);
    }
}

/// The log parser on its own. In `fuzz_vhdx`'s layout the log of a seed (qemu's and ours sit
/// at 1 MiB) starts at 320 KiB of the input, and its entries carry the first header's log GUID:
/// that part is parsed as a log with that GUID; a shorter input is parsed whole, with the GUID
/// of an entry at its start, so fuzzed entries get past the GUID check.
fn fuzz_vhdx_log(data: &[u8]) {
    const HEAD: usize = 320 << 10;
    let (log, at) = if data.len() > HEAD {
        (&data[HEAD..], (64 << 10) + 48)
    } else {
        (data, 32)
    };
    let n = log.len() / 4096 * 4096;
    if n == 0 || data.len() < at + 16 {
        return;
    }
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&data[at..at + 16]);
    let place = vhdx_log::LogPlace {
        offset: 1 << 20,
        guid,
        max_file: 1 << 40,
    };
    if let Ok(Some(r)) = vhdx_log::find_active(&log[..n], &place) {
        let o = vhdx_log::Overlay::new(r, 1 << 20);
        let mut buf = vec![0u8; 8192];
        o.patch(&mut buf, (1 << 20) - 4000);
    }
}

/// Reads a spread of 4 KiB blocks and zero hints of a fuzzed device.
fn read_some(dev: &dyn BlockDev) {
    let size = dev.size();
    let mut buf = vec![0u8; 4096];
    if size >= 4096 {
        for i in 0..32u64 {
            let off = (i * (size / 32)).min(size - 4096);
            let _ = dev.read_at(&mut buf, off);
        }
    }
    let _ = dev.is_zero_hint(0, size.min(16 << 20));
}
