//! An open VMDK as a [`BlockDev`]: a sparse file (monolithicSparse, streamOptimized) or a text
//! descriptor naming flat, zero and sparse extents. Extent files are opened only through the
//! [`BackingGate`], and only if they are regular files directly next to the descriptor (no
//! absolute paths, no `..`, no symlinks that resolve elsewhere, never the descriptor itself).
//! A sparse extent is structured (its header is verified); a flat extent is raw bytes, opened
//! without explicit trust only if its name ends in `.vmdk` (VMware's `x-flat.vmdk`,
//! `x-f001.vmdk`): a host secret is not named so.

use crate::gate::{BackingGate, Role};
use crate::host::Host;
use crate::vmdk::{
    check_extent_name, parse_descriptor, parse_marker, parse_sparse_header, Access, Descriptor,
    SparseHeader, GD_AT_END, MARKER_EOS, MARKER_FOOTER, MAX_CAPACITY, MAX_DESCRIPTOR,
};
use crate::vmdk_sparse::{Grain, SparseExtent};
use crate::vmdk_stream::StreamDev;
use diskfab_storage::limits::check_budget;
use diskfab_storage::{check_range, BlockDev, Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) enum Kind {
    Flat { host: Host, offset: u64 },
    Zero,
    Sparse(Box<SparseExtent>),
}

/// One extent in guest order.
pub(crate) struct Extent {
    start: u64,
    len: u64,
    writable: bool,
    pub(crate) kind: Kind,
    /// File name as in the descriptor.
    pub(crate) file: Option<String>,
}

/// An open VMDK.
pub(crate) struct VmdkDev {
    path: PathBuf,
    size: u64,
    writable: bool,
    pub(crate) extents: Vec<Extent>,
    /// The descriptor (embedded or text).
    pub(crate) desc: Descriptor,
    /// Where the descriptor text is (file, offset, bytes), for the new CID on the first write.
    desc_at: Option<(Host, u64, u64)>,
    cid_changed: AtomicBool,
}

impl std::fmt::Debug for VmdkDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmdkDev({})", self.path.display())
    }
}

/// What opening a VMDK gives.
pub(crate) enum Opened {
    /// Readable (and, unless compressed, writable) image.
    Dev(VmdkDev),
    /// An empty stream-optimized image opened for sequential writing.
    Stream(StreamDev),
}

fn bad(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::bad(format!("{}: {m}", path.display()))
}

/// The header to use for a sparse extent: for stream-optimized extents whose GD is at the
/// end, the footer (checked: footer marker, footer, end-of-stream marker end the file).
fn effective_header(host: &Host, hdr: SparseHeader) -> Result<SparseHeader> {
    if hdr.gd_offset != GD_AT_END {
        return Ok(hdr);
    }
    let len = host.len()?;
    if len < 1536 {
        return Err(bad(&host.path, "stream-optimized VMDK has no footer"));
    }
    let mut t = [0u8; 1536];
    host.read(&mut t, len - 1536)?;
    let (fm, eos) = (parse_marker(&t[..512]), parse_marker(&t[1024..]));
    if fm.map(|m| (m.1, m.2)) != Some((0, MARKER_FOOTER)) || eos != Some((0, 0, MARKER_EOS)) {
        return Err(bad(
            &host.path,
            "stream-optimized VMDK does not end with footer and end-of-stream markers",
        ));
    }
    let f = parse_sparse_header(&t[512..1024]).map_err(|e| e.context(host.path.display()))?;
    if f.gd_offset == GD_AT_END
        || (f.capacity, f.grain_size, f.flags) != (hdr.capacity, hdr.grain_size, hdr.flags)
    {
        return Err(bad(
            &host.path,
            "stream-optimized VMDK footer does not match its header",
        ));
    }
    Ok(f)
}

fn embedded_descriptor(host: &Host, hdr: &SparseHeader) -> Result<Descriptor> {
    if hdr.descriptor_offset == 0 || hdr.descriptor_size == 0 {
        return Ok(Descriptor::default());
    }
    let n = hdr.descriptor_size.min(MAX_DESCRIPTOR / 512) * 512;
    let mut raw = vec![0u8; n as usize];
    host.read(&mut raw, hdr.descriptor_offset * 512)?;
    // Informational only (the header is authoritative), except that a parent is refused.
    let d = parse_descriptor(&raw).unwrap_or_default();
    if d.has_parent() {
        return Err(Error::Unsupported(format!(
            "{}: VMDK delta disk with a parent",
            host.path.display()
        )));
    }
    Ok(d)
}

/// Opens a sparse extent file (`head`: its first bytes).
fn open_sparse(host: Host, head: &[u8], writable: bool) -> Result<(SparseExtent, bool)> {
    let hdr = parse_sparse_header(head).map_err(|e| e.context(host.path.display()))?;
    let at_end = hdr.gd_offset == GD_AT_END;
    let eff = effective_header(&host, hdr)?;
    if writable && eff.compressed() && !at_end {
        return Err(Error::Unsupported(format!(
            "{}: writing a compressed VMDK whose grain directory is not at the end",
            host.path.display()
        )));
    }
    Ok((SparseExtent::open(host, eff)?, at_end))
}

impl VmdkDev {
    /// Opens a VMDK file: a sparse extent (`KDMV`) or a text descriptor.
    pub(crate) fn open(
        file: File,
        path: &Path,
        head: &[u8],
        writable: bool,
        gate: &BackingGate,
    ) -> Result<Opened> {
        Self::open_file(
            Host::new(file, path.to_path_buf()),
            path,
            head,
            writable,
            gate,
        )
    }

    /// [`VmdkDev::open`] on a host file.
    pub(crate) fn open_file(
        host: Host,
        path: &Path,
        head: &[u8],
        writable: bool,
        gate: &BackingGate,
    ) -> Result<Opened> {
        if !head.starts_with(&crate::vmdk::MAGIC) {
            return Self::open_descriptor(host, path, writable, gate).map(Opened::Dev);
        }
        let hdr = parse_sparse_header(head).map_err(|e| e.context(path.display()))?;
        let desc = embedded_descriptor(&host, &hdr)?;
        let desc_at = match (writable, hdr.descriptor_offset, hdr.descriptor_size) {
            (true, o, n) if o > 0 && n > 0 => Some((
                host.try_clone()?,
                o * 512,
                n.min(MAX_DESCRIPTOR / 512) * 512,
            )),
            _ => None,
        };
        let (sparse, at_end) = open_sparse(host, head, writable)?;
        if writable && sparse.hdr.compressed() {
            if sparse.has_tables()? {
                return Err(Error::Unsupported(format!(
                    "{}: a stream-optimized VMDK can only be written once, when it is empty \
                     (convert it to monolithicSparse to change it)",
                    path.display()
                )));
            }
            let hdr = sparse.hdr.clone();
            let trailer_at = (hdr.gd_offset - 1) * 512;
            if !at_end || trailer_at < hdr.overhead * 512 {
                return Err(bad(
                    path,
                    "stream-optimized VMDK trailer overlaps its header",
                ));
            }
            return StreamDev::open(sparse.host, hdr, trailer_at).map(Opened::Stream);
        }
        if writable {
            sparse.check_exclusive()?;
        }
        let size = sparse.hdr.capacity_bytes();
        Ok(Opened::Dev(VmdkDev {
            path: path.to_path_buf(),
            size,
            writable,
            extents: vec![Extent {
                start: 0,
                len: size,
                writable,
                kind: Kind::Sparse(Box::new(sparse)),
                file: None,
            }],
            desc,
            desc_at,
            cid_changed: AtomicBool::new(false),
        }))
    }

    fn open_descriptor(
        host: Host,
        path: &Path,
        writable: bool,
        gate: &BackingGate,
    ) -> Result<VmdkDev> {
        let len = host.len()?;
        if len > MAX_DESCRIPTOR {
            return Err(bad(
                path,
                format!("VMDK descriptor of {len} bytes is too large"),
            ));
        }
        let mut raw = vec![0u8; len as usize];
        host.read(&mut raw, 0)?;
        let desc = parse_descriptor(&raw).map_err(|e| e.context(path.display()))?;
        if desc.has_parent() {
            return Err(Error::Unsupported(format!(
                "{}: VMDK delta disk with a parent",
                path.display()
            )));
        }
        if desc.extents.is_empty() {
            return Err(bad(path, "VMDK descriptor has no extents"));
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let canon = |p: &Path| std::fs::canonicalize(p);
        let canon_dir = canon(dir).map_err(|e| Error::io(format!("{}", dir.display()), e))?;
        let canon_self = canon(path).map_err(|e| Error::io(format!("{}", path.display()), e))?;
        let mut extents = Vec::with_capacity(desc.extents.len());
        let mut start = 0u64;
        // Grain directories of all sparse extents together (a descriptor may name the same
        // sparse file 1024 times).
        let mut gd_total = 0u64;
        for e in &desc.extents {
            let len = e.sectors * 512;
            if e.access == Access::NoAccess {
                return Err(Error::Unsupported(format!(
                    "{}: VMDK extent with NOACCESS",
                    path.display()
                )));
            }
            let ew = writable && e.access == Access::Rw;
            let kind = match (e.kind.as_str(), &e.file) {
                ("ZERO", _) => Kind::Zero,
                (k @ ("FLAT" | "SPARSE"), Some(name)) => {
                    check_extent_name(name).map_err(|e| e.context(path.display()))?;
                    let n = gate.open_named_rw(Role::Extent, path, name, 0, ew)?;
                    if n.path.parent() != Some(canon_dir.as_path()) || n.path == canon_self {
                        return Err(bad(
                            path,
                            format!("VMDK extent file {name:?} resolves outside the image's directory or to the descriptor"),
                        ));
                    }
                    if k == "FLAT"
                        && !name.to_ascii_lowercase().ends_with(".vmdk")
                        && !gate.trusts_raw(&n.path)
                    {
                        return Err(gate.refuse_raw(Role::Extent, path, name, &n, ""));
                    }
                    let (f, c, flen) = (n.file, n.path, n.len);
                    let h = Host::new(f, c);
                    if k == "FLAT" {
                        if flen < e.offset * 512 + len {
                            return Err(bad(
                                path,
                                format!(
                                "VMDK flat extent {name:?} is {} bytes, the descriptor needs {}",
                                flen,
                                e.offset * 512 + len
                            ),
                            ));
                        }
                        Kind::Flat {
                            host: h,
                            offset: e.offset * 512,
                        }
                    } else {
                        let mut head = [0u8; 512];
                        h.read(&mut head, 0)?;
                        let (s, _) = open_sparse(h, &head, ew)?;
                        gd_total += 2 * 4 * s.hdr.gd_entries();
                        check_budget(gd_total, "the grain directories of the VMDK's extents")?;
                        if s.hdr.compressed() && ew {
                            return Err(Error::Unsupported(format!(
                                "{}: writing compressed VMDK extents",
                                path.display()
                            )));
                        }
                        if ew {
                            s.check_exclusive()?;
                        }
                        if s.hdr.capacity_bytes() < len {
                            return Err(bad(path, format!(
                                "VMDK sparse extent {name:?} holds {} bytes, the descriptor needs {len}",
                                s.hdr.capacity_bytes()
                            )));
                        }
                        Kind::Sparse(Box::new(s))
                    }
                }
                (k, _) => {
                    return Err(Error::Unsupported(format!(
                        "{}: VMDK extent type {k:?} (createType {:?})",
                        path.display(),
                        desc.create_type
                    )))
                }
            };
            extents.push(Extent {
                start,
                len,
                writable: ew,
                kind,
                file: e.file.clone(),
            });
            start += len;
            if start > MAX_CAPACITY {
                return Err(bad(path, "VMDK extents add up to more than 64 TiB"));
            }
        }
        if start == 0 {
            return Err(bad(path, "VMDK descriptor describes an empty disk"));
        }
        Ok(VmdkDev {
            path: path.to_path_buf(),
            size: start,
            writable,
            extents,
            desc,
            desc_at: writable.then_some((host, 0, len)),
            cid_changed: AtomicBool::new(false),
        })
    }

    /// The index of the extent holding guest offset `pos`.
    fn extent_at(&self, pos: u64) -> usize {
        self.extents
            .partition_point(|e| e.start + e.len <= pos)
            .min(self.extents.len() - 1)
    }

    /// Calls `f(extent, offset inside the extent, range of buf)` for each piece of
    /// `[offset, offset+len)`, split at extent and grain boundaries.
    fn pieces(
        &self,
        offset: u64,
        len: usize,
        mut f: impl FnMut(&Extent, u64, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        check_range(self.size, offset, len as u64)?;
        let mut done = 0usize;
        while done < len {
            let pos = offset + done as u64;
            let e = &self.extents[self.extent_at(pos)];
            let inner = pos - e.start;
            let mut n = (e.len - inner).min((len - done) as u64);
            if let Kind::Sparse(s) = &e.kind {
                let gb = s.hdr.grain_bytes();
                n = n.min(gb - inner % gb);
            }
            let n = n as usize;
            f(e, inner, done..done + n)?;
            done += n;
        }
        Ok(())
    }

    /// Gives the descriptor a new content id (CID), once, before the first write: delta disks
    /// made elsewhere record their parent's CID, and this is how they notice the change.
    /// Only a `CID=` line of 8 hex digits is rewritten (same length, in place).
    fn new_cid(&self) -> Result<()> {
        let Some((host, at, len)) = &self.desc_at else {
            return Ok(());
        };
        if self.cid_changed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut raw = vec![0u8; *len as usize];
        host.read(&mut raw, *at)?;
        let Some(pos) = raw
            .windows(13)
            .position(|w| w.starts_with(b"\nCID=") && w[5..13].iter().all(u8::is_ascii_hexdigit))
        else {
            return Ok(());
        };
        let r = crate::create::random_uuid()?;
        let cid = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        host.write(format!("{cid:08x}").as_bytes(), at + pos as u64 + 5)
    }

    /// The sparse extent of a monolithic file.
    pub(crate) fn sparse(&self) -> Option<&SparseExtent> {
        match self.extents.first().map(|e| &e.kind) {
            Some(Kind::Sparse(s)) if self.extents.len() == 1 => Some(s),
            _ => None,
        }
    }
}

impl BlockDev for VmdkDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.pieces(offset, buf.len(), |e, inner, r| match &e.kind {
            Kind::Zero => {
                buf[r].fill(0);
                Ok(())
            }
            Kind::Flat { host, offset } => host.read(&mut buf[r], offset + inner),
            Kind::Sparse(s) => s.read_in_grain(&mut buf[r], inner),
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!(
                "{} is open read-only",
                self.path.display()
            )));
        }
        self.new_cid()?;
        self.pieces(offset, buf.len(), |e, inner, r| {
            let data = &buf[r];
            if !e.writable {
                return Err(Error::ReadOnly(format!(
                    "{}: extent {:?} is read-only",
                    self.path.display(),
                    e.file
                )));
            }
            match &e.kind {
                Kind::Zero if data.iter().all(|&b| b == 0) => Ok(()),
                Kind::Zero => Err(Error::Unsupported(format!(
                    "{}: writing data into a ZERO extent",
                    self.path.display()
                ))),
                Kind::Flat { host, offset } => host.write(data, offset + inner),
                Kind::Sparse(s) => s.write_in_grain(data, inner),
            }
        })
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        for e in &self.extents {
            match &e.kind {
                Kind::Flat { host, .. } => host.sync()?,
                Kind::Sparse(s) => s.host.sync()?,
                Kind::Zero => {}
            }
        }
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        let mut zero = true;
        self.pieces(offset, len as usize, |e, inner, _| {
            zero = zero
                && match &e.kind {
                    Kind::Zero => true,
                    Kind::Flat { .. } => false,
                    Kind::Sparse(s) => matches!(
                        s.grain(inner / s.hdr.grain_bytes())?,
                        Grain::Unalloc | Grain::Zero
                    ),
                };
            Ok(())
        })?;
        Ok(zero)
    }
}
