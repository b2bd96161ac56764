//! Opening an image file (and its backing chain) as a guest-visible device.

use crate::compress::{Compressor, Packed};
use crate::gate::{BackingGate, Role};
use crate::header::parse_qcow2_header;
use crate::host::Host;
use crate::qcow2::Qcow2Dev;
use crate::vhd_dev::VhdDev;
use crate::vhdx_dev::VhdxDev;
use crate::vmdk_dev::{Opened as VmdkOpened, VmdkDev};
use crate::vmdk_stream::StreamDev;
use crate::{detect_format_file, Format};
use diskfab_storage::{open_error, DevRef, Error, FileDev, Result};
use serde::Serialize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open the top image for writing (backing images are always read-only).
    pub writable: bool,
    /// Policy for backing files.
    pub gate: BackingGate,
}

/// One backing layer in [`ImageInfo::chain`].
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// Canonical path of the layer.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its virtual size.
    pub virtual_size: u64,
}

/// What `info` reports about an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// The image path as given.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Guest-visible size.
    pub virtual_size: u64,
    /// Bytes allocated on the host for this file.
    pub actual_size: u64,
    /// qcow2 cluster size.
    pub cluster_size: Option<u32>,
    /// The backing file name as stored in the image.
    pub backing_file: Option<String>,
    /// The backing format recorded in the image.
    pub backing_format: Option<Format>,
    /// Backing layers, nearest first.
    pub chain: Vec<LayerInfo>,
    /// qcow2 dirty bit (lazy refcounts).
    pub dirty: bool,
    /// qcow2 corrupt bit.
    pub corrupt: bool,
    /// Format details (qcow2: version, refcount bits, snapshots...).
    pub format_specific: Option<serde_json::Value>,
}

/// An open image.
pub struct Image {
    path: PathBuf,
    format: Format,
    dev: DevRef,
    qcow: Option<Arc<Qcow2Dev>>,
    chain: Vec<LayerInfo>,
    pub(crate) layers: Vec<Layer>,
    vdi: Option<Arc<crate::vdi::VdiDev>>,
    detail: Option<Detail>,
}

/// The open device of a format whose `info` details need it.
#[derive(Clone)]
enum Detail {
    Vhd(Arc<VhdDev>),
    Vhdx(Arc<VhdxDev>),
    Vmdk(Arc<VmdkDev>),
    VmdkStream(Arc<StreamDev>),
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}, {})", self.path.display(), self.format)
    }
}

fn read_head(file: &std::fs::File, path: &Path, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut done = 0;
    while done < n {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) => return Err(Error::io(format!("{}", path.display()), e)),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

struct Opened {
    format: Format,
    dev: DevRef,
    qcow: Option<Arc<Qcow2Dev>>,
    chain: Vec<LayerInfo>,
    layers: Vec<Layer>,
    vdi: Option<Arc<crate::vdi::VdiDev>>,
    detail: Option<Detail>,
}

impl Opened {
    /// A single-file image without backing.
    fn single(path: &Path, format: Format, dev: DevRef) -> Opened {
        Opened {
            format,
            layers: vec![Layer {
                path: path.to_path_buf(),
                dev: dev.clone(),
                qcow: None,
            }],
            dev,
            qcow: None,
            chain: Vec::new(),
            vdi: None,
            detail: None,
        }
    }
}

/// One layer of an open chain (top first), for `map`.
#[derive(Clone)]
pub(crate) struct Layer {
    pub(crate) path: PathBuf,
    pub(crate) dev: DevRef,
    pub(crate) qcow: Option<Arc<Qcow2Dev>>,
}

/// Opens the top image `path` (the user named it: no gate) and its chain.
fn open_layer(
    path: &Path,
    writable: bool,
    gate: &BackingGate,
    seen: &mut Vec<(u64, u64)>,
) -> Result<Opened> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    if let Some(id) = crate::gate::file_id(&file) {
        seen.push(id);
    }
    open_file_layer(file, path, None, writable, gate, seen)
}

/// Opens one layer from its open `file` (at `path`), as `forced` or as detected.
fn open_file_layer(
    file: std::fs::File,
    path: &Path,
    forced: Option<Format>,
    writable: bool,
    gate: &BackingGate,
    seen: &mut Vec<(u64, u64)>,
) -> Result<Opened> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("{}", path.display()), e))?;
    if meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is a directory, not an image",
            path.display()
        )));
    }
    let head = read_head(&file, path, 4096)?;
    let format = match forced {
        Some(f) => f,
        None => {
            let mut tail = [0u8; 512];
            let len = meta.len();
            if len >= 512 {
                file.read_exact_at(&mut tail, len - 512)
                    .map_err(|e| Error::io(format!("{}", path.display()), e))?;
            }
            detect_format_file(&head, &tail, len)
        }
    };
    match format {
        Format::Vhd => {
            let v = Arc::new(VhdDev::open(
                Host::new(file, path.to_path_buf()),
                &head,
                writable,
            )?);
            let mut o = Opened::single(path, format, v.clone());
            o.detail = Some(Detail::Vhd(v));
            Ok(o)
        }
        Format::Vhdx => {
            let v = Arc::new(VhdxDev::open(
                Host::new(file, path.to_path_buf()),
                &head,
                writable,
            )?);
            let mut o = Opened::single(path, format, v.clone());
            o.detail = Some(Detail::Vhdx(v));
            Ok(o)
        }
        Format::Vmdk => Ok(match VmdkDev::open(file, path, &head, writable, gate)? {
            VmdkOpened::Dev(d) => {
                let d = Arc::new(d);
                let mut o = Opened::single(path, format, d.clone());
                o.detail = Some(Detail::Vmdk(d));
                o
            }
            VmdkOpened::Stream(d) => {
                let d = Arc::new(d);
                let mut o = Opened::single(path, format, d.clone());
                o.detail = Some(Detail::VmdkStream(d));
                o
            }
        }),
        Format::Raw => {
            let dev: DevRef = Arc::new(FileDev::from_file(file, path.to_path_buf(), writable)?);
            Ok(Opened::single(path, format, dev))
        }
        Format::Vdi => {
            let mut h512 = head.clone();
            h512.resize(512, 0);
            let hdr = crate::vdi::parse_vdi_header(&h512).map_err(|e| e.context(path.display()))?;
            let v = Arc::new(crate::vdi::VdiDev::open(
                Host::new(file, path.to_path_buf()),
                hdr,
                writable,
            )?);
            let dev: DevRef = v.clone();
            let layers = vec![Layer {
                path: path.to_path_buf(),
                dev: dev.clone(),
                qcow: None,
            }];
            Ok(Opened {
                format,
                dev,
                qcow: None,
                chain: Vec::new(),
                layers,
                vdi: Some(v),
                detail: None,
            })
        }
        Format::Qcow2 => {
            let first = parse_qcow2_header(&head).or_else(|e| {
                // Headers with a large cluster may keep the backing name beyond 4 KiB.
                let cs = head
                    .get(20..24)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match cs {
                    Some(bits @ 13..=21) => parse_qcow2_header(&read_head(&file, path, 1 << bits)?),
                    _ => Err(e),
                }
            });
            let hdr = first.map_err(|e| e.context(path.display()))?;
            let mut chain = Vec::new();
            let mut below = Vec::new();
            let backing = match &hdr.backing_file {
                None => None,
                Some(name) => {
                    let b = open_backing(path, &hdr, name, gate, seen)?;
                    chain.push(b.1);
                    chain.extend(b.0.chain);
                    below = b.0.layers;
                    Some(b.0.dev)
                }
            };
            let data = open_data_file(path, &hdr, writable, gate)?;
            let host = Host::new(file, path.to_path_buf());
            let mut q = Qcow2Dev::open(host, hdr, backing, writable)?;
            if let Some(d) = data {
                q = q.with_data_file(d)?;
            }
            let q = Arc::new(q);
            let mut layers = vec![Layer {
                path: path.to_path_buf(),
                dev: q.clone(),
                qcow: Some(q.clone()),
            }];
            layers.extend(below);
            Ok(Opened {
                format,
                dev: q.clone(),
                qcow: Some(q),
                chain,
                layers,
                vdi: None,
                detail: None,
            })
        }
    }
}

/// Opens the backing file `name` of qcow2 image `path` (header `hdr`) through the gate: a
/// structured image anywhere, raw bytes only with trust (allowed directory, any-backing, or a
/// trust mark in `hdr` that verifies). The gate's descriptor is the one read.
fn open_backing(
    path: &Path,
    hdr: &crate::Qcow2Header,
    name: &str,
    gate: &BackingGate,
    seen: &mut Vec<(u64, u64)>,
) -> Result<(Opened, LayerInfo)> {
    let n = gate.open_named(Role::Backing, path, name, seen.len())?;
    if seen.contains(&n.id) {
        return Err(Error::Denied(format!(
            "{}: backing chain loop: {name:?} ({}) is already in the chain; refusing to follow it",
            path.display(),
            n.path.display()
        )));
    }
    seen.push(n.id);
    let declared = match hdr.backing_format.as_deref() {
        None | Some("") => None,
        Some(f) => Some(f.parse::<Format>().map_err(|e| e.context(path.display()))?),
    };
    let fmt = match crate::gate::structured(&n.file, n.len) {
        // An image either way: read raw as the overlay says, else as its header says.
        Some(found) => match declared {
            Some(Format::Raw) => Format::Raw,
            _ => found,
        },
        None => {
            if !gate.trusts_raw(&n.path) {
                if let Err(why) = crate::trust::verify_header(hdr, n.len) {
                    return Err(gate.refuse_raw(Role::Backing, path, name, &n, &why));
                }
            }
            declared.unwrap_or(Format::Raw)
        }
    };
    let canon = n.path.clone();
    let o = open_file_layer(n.file, &canon, Some(fmt), false, gate, seen)?;
    let info = LayerInfo {
        path: canon,
        format: o.format,
        virtual_size: o.dev.size(),
    };
    Ok((o, info))
}

/// Opens the external data file a qcow2 header names, through the gate, read-only: raw bytes by
/// nature, so only from an allowed directory or with any-backing. Writable opens are refused
/// before anything is written (opening writable clears autoclear bits, among them the one
/// saying the data file is a raw image).
fn open_data_file(
    path: &Path,
    hdr: &crate::Qcow2Header,
    writable: bool,
    gate: &BackingGate,
) -> Result<Option<Host>> {
    let Some(name) = &hdr.data_file else {
        return Ok(None);
    };
    if writable {
        return Err(Error::Unsupported(format!(
            "{}: writing qcow2 images with an external data file ({name}); open it read-only",
            path.display()
        )));
    }
    let n = gate.open_named(Role::DataFile, path, name, 0)?;
    if !gate.trusts_raw(&n.path) {
        return Err(gate.refuse_raw(Role::DataFile, path, name, &n, ""));
    }
    Ok(Some(Host::new(n.file, n.path)))
}

impl Image {
    /// Opens `path`, detecting its format by content, with its backing chain through the gate.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Image> {
        let mut seen = Vec::new();
        let o = open_layer(path, opts.writable, &opts.gate, &mut seen)?;
        Ok(Image {
            path: path.to_path_buf(),
            format: o.format,
            dev: o.dev,
            qcow: o.qcow,
            chain: o.chain,
            layers: o.layers,
            vdi: o.vdi,
            detail: o.detail,
        })
    }

    /// The paths of the layers, top image first (index = the `depth` of [`crate::map`]).
    pub fn layer_paths(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.path.clone()).collect()
    }

    /// The guest-visible device.
    pub fn dev(&self) -> DevRef {
        self.dev.clone()
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The path the image was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes cluster-aligned `data` at `offset` as compressed clusters where the format can
    /// (qcow2; zlib or zstd per the image header); elsewhere a plain write.
    pub fn write_compressed(&self, data: &[u8], offset: u64) -> Result<()> {
        let Some(q) = &self.qcow else {
            return self.dev.write_at(data, offset);
        };
        let cs = q.hdr.cluster_size();
        if !offset.is_multiple_of(cs) {
            return self.dev.write_at(data, offset);
        }
        for (i, c) in data.chunks(cs as usize).enumerate() {
            q.write_compressed(offset / cs + i as u64, c)?;
        }
        Ok(())
    }

    /// The compressor of this image's compressed units: qcow2 clusters (zlib or zstd per the
    /// header) and streamOptimized VMDK grains; `None` for formats that store plain data only.
    /// It runs on any thread; [`Image::write_packed`] stores what it made.
    pub fn compressor(&self) -> Option<Compressor> {
        match (&self.qcow, &self.detail) {
            (Some(q), _) => Some(q.compressor()),
            (None, Some(Detail::VmdkStream(s))) => Some(s.compressor()),
            _ => None,
        }
    }

    /// Stores one unit at `offset` (`data`, and `packed` made from it by
    /// [`Image::compressor`]): compressed where the format can, otherwise a plain write.
    pub fn write_packed(&self, offset: u64, data: &[u8], packed: &Packed) -> Result<()> {
        let unit = self.compressor().map(|c| c.unit());
        match (&self.qcow, &self.detail, unit) {
            (Some(q), _, Some(u)) if offset.is_multiple_of(u) => {
                q.write_packed(offset / u, data, packed)
            }
            (None, Some(Detail::VmdkStream(s)), Some(u)) if offset.is_multiple_of(u) => {
                s.write_packed(offset / u, data, packed)
            }
            _ => self.dev.write_at(data, offset),
        }
    }

    /// (allocated, total) blocks or grains of a VDI, dynamic VHD or sparse VMDK; walking a
    /// VMDK's grain tables validates every entry.
    pub(crate) fn allocation(&self) -> Result<Option<(u64, u64)>> {
        let size = self.dev.size();
        Ok(match &self.detail {
            Some(Detail::Vhd(v)) => v
                .dynamic
                .as_ref()
                .map(|d| (v.allocated(), size.div_ceil(u64::from(d.block_size)))),
            Some(Detail::Vhdx(v)) => (!v.meta.leave_allocated)
                .then(|| (v.allocated(), size.div_ceil(u64::from(v.meta.block_size)))),
            Some(Detail::Vmdk(v)) => match v.sparse() {
                Some(s) => Some((s.allocated()?, size.div_ceil(s.hdr.grain_bytes()))),
                None => None,
            },
            _ => self
                .vdi
                .as_ref()
                .map(|v| (u64::from(v.allocated()), u64::from(v.hdr.blocks_in_image))),
        })
    }

    /// Persists all writes.
    pub fn flush(&self) -> Result<()> {
        self.dev.flush()
    }

    /// Format, sizes and backing chain.
    pub fn info(&self) -> Result<ImageInfo> {
        let actual_size = std::fs::metadata(&self.path)
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
            .unwrap_or(0);
        let mut info = ImageInfo {
            path: self.path.clone(),
            format: self.format,
            virtual_size: self.dev.size(),
            actual_size,
            cluster_size: None,
            backing_file: None,
            backing_format: None,
            chain: self.chain.clone(),
            dirty: false,
            corrupt: false,
            format_specific: None,
        };
        if let Some(v) = &self.vdi {
            info.cluster_size = Some(v.hdr.block_size);
            info.format_specific = Some(serde_json::json!({
                "type": if v.hdr.image_type == 2 { "static" } else { "dynamic" },
                "block_size": v.hdr.block_size,
                "blocks": v.hdr.blocks_in_image,
                "blocks_allocated": v.allocated(),
            }));
        }
        match &self.detail {
            Some(Detail::Vhd(v)) => {
                let f = &v.footer;
                let mut j = serde_json::json!({
                    "type": if v.dynamic.is_some() { "dynamic" } else { "fixed" },
                    "creator": f.creator(),
                    "current_size": f.current_size,
                    "geometry": [f.cylinders, f.heads, f.sectors],
                });
                if let Some(d) = &v.dynamic {
                    info.cluster_size = Some(d.block_size);
                    j["block_size"] = d.block_size.into();
                    j["blocks"] = self.dev.size().div_ceil(u64::from(d.block_size)).into();
                    j["blocks_allocated"] = v.allocated().into();
                }
                info.format_specific = Some(j);
            }
            Some(Detail::Vhdx(v)) => {
                let m = &v.meta;
                info.cluster_size = Some(m.block_size);
                info.format_specific = Some(serde_json::json!({
                    "type": if m.leave_allocated { "fixed" } else { "dynamic" },
                    "block_size": m.block_size,
                    "logical_sector_size": m.logical_sector,
                    "physical_sector_size": m.physical_sector,
                    "blocks": self.dev.size().div_ceil(u64::from(m.block_size)),
                    "blocks_allocated": v.allocated(),
                }));
            }
            Some(Detail::Vmdk(v)) => {
                let sparse = v.sparse();
                info.cluster_size = sparse.map(|s| s.hdr.grain_bytes() as u32);
                let extents: Vec<serde_json::Value> = v
                    .extents
                    .iter()
                    .map(|e| {
                        let kind = match &e.kind {
                            crate::vmdk_dev::Kind::Flat { .. } => "flat",
                            crate::vmdk_dev::Kind::Zero => "zero",
                            crate::vmdk_dev::Kind::Sparse(s) if s.hdr.compressed() => "compressed",
                            crate::vmdk_dev::Kind::Sparse(_) => "sparse",
                        };
                        serde_json::json!({"type": kind, "file": e.file})
                    })
                    .collect();
                info.format_specific = Some(serde_json::json!({
                    "create_type": v.desc.create_type,
                    "cid": v.desc.cid,
                    "grain_size": sparse.map(|s| s.hdr.grain_bytes()),
                    "grains_allocated": sparse.map(|s| s.allocated()).transpose()?,
                    "extents": extents,
                }));
            }
            Some(Detail::VmdkStream(s)) => {
                info.cluster_size = Some(s.hdr.grain_bytes() as u32);
                info.format_specific = Some(serde_json::json!({
                    "create_type": "streamOptimized",
                    "grain_size": s.hdr.grain_bytes(),
                }));
            }
            None => {}
        }
        if let Some(q) = &self.qcow {
            let h = &q.hdr;
            info.actual_size = q.host.allocated();
            info.cluster_size = Some(h.cluster_size() as u32);
            info.backing_file = h.backing_file.clone();
            // Unknown names never get here: opening the chain already refused them.
            info.backing_format = h.backing_format.as_deref().and_then(|f| f.parse().ok());
            info.dirty = h.incompatible & crate::header::INCOMPAT_DIRTY != 0;
            info.corrupt = h.incompatible & crate::header::INCOMPAT_CORRUPT != 0;
            info.format_specific = Some(serde_json::json!({
                "version": h.version,
                "compat": if h.version >= 3 { "1.1" } else { "0.10" },
                "refcount_bits": h.refcount_bits(),
                "snapshots": h.nb_snapshots,
                "l1_entries": h.l1_size,
                "bitmaps": h.has_bitmaps,
                "compression_type": if h.compression_type == 1 { "zstd" } else { "zlib" },
                "extended_l2": h.extended_l2(),
                "data_file": h.data_file,
                "snapshot_list": q.snapshots,
                "data_file_raw": h.data_file.is_some()
                    && h.autoclear & crate::header::AUTOCLEAR_DATA_FILE_RAW != 0,
            }));
        }
        Ok(info)
    }
}
