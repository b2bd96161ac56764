//! Creating images: one (`create`) or thousands of thin overlays at once (`clone_many`).

use crate::header::NewHeader;
use crate::image::{Image, OpenOptions};
use crate::trust::overlay_image;
use crate::Format;
use diskfab_storage::{Error, Result};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Output format.
    pub format: Format,
    /// Virtual size; `None` only with a backing file (takes the backing's size).
    pub size: Option<u64>,
    /// Backing file (stored as given, relative to the new image's directory).
    pub backing: Option<PathBuf>,
    /// Backing format; detected when `None`.
    pub backing_format: Option<Format>,
    /// qcow2 cluster size (power of two, 512 B to 2 MiB; default 64 KiB); for VHDX the block
    /// size (power of two, 1 MiB to 256 MiB; default 32 MiB).
    pub cluster_size: Option<u32>,
    /// Fully allocated layout (VDI static, VHD and VHDX fixed); dynamic when false.
    pub fixed: bool,
    /// VMDK: streamOptimized (deflated grains, written once and in order, as by `convert`)
    /// rather than monolithicSparse.
    pub stream_optimized: bool,
    /// qcow2: compressed clusters use zstd rather than zlib.
    pub zstd: bool,
    /// qcow2: extended L2 entries (32 subclusters per cluster; clusters of 16 KiB or more).
    pub extended_l2: bool,
    /// VHD: the size exactly as given (maximal CHS geometry in the footer, so no reader rounds
    /// it to a geometry), like qemu's `force_size=on`.
    pub force_size: bool,
    /// VHD for Azure: fixed, the size rounded up to a whole MiB ([`crate::vhd::azure_size`])
    /// and forced.
    pub azure: bool,
}

fn cluster_bits(cs: Option<u32>) -> Result<u32> {
    let cs = cs.unwrap_or(65536);
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return Err(Error::Invalid(format!(
            "cluster size {cs} must be a power of two from 512 to 2M"
        )));
    }
    Ok(cs.trailing_zeros())
}

pub(crate) fn new_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(format!("{} (refusing to overwrite)", path.display()))
            } else {
                Error::io(format!("creating {}", path.display()), e)
            }
        })
}

/// Opens a base image read-only for its format and size. The user named it, and nothing of its
/// chain's content leaves this function, so raw files below it are not refused here
/// (`allow_any`; devices, pseudo files, depth and loops still are): the new overlay's own chain
/// goes through the gate when it is opened.
fn open_base(base: &Path, forced: Option<Format>) -> Result<(Format, u64)> {
    let gate = crate::BackingGate {
        allow_any: true,
        ..Default::default()
    };
    let img = Image::open(
        base,
        &OpenOptions {
            writable: false,
            gate,
        },
    )?;
    if let Some(f) = forced {
        if f != img.format() {
            return Err(Error::Invalid(format!(
                "{} is {}, not {f}",
                base.display(),
                img.format()
            )));
        }
    }
    Ok((img.format(), img.dev().size()))
}

/// Creates an empty image, or a thin qcow2 overlay of `opts.backing`. Never overwrites.
pub fn create(path: &Path, opts: &CreateOptions) -> Result<()> {
    let bits = if opts.format == Format::Vhdx {
        16
    } else {
        cluster_bits(opts.cluster_size)?
    };
    let (backing, size) = match &opts.backing {
        None => {
            let size = opts.size.ok_or_else(|| {
                Error::Invalid("a size is required (e.g. 4G) without --backing".into())
            })?;
            (None, size)
        }
        Some(b) => {
            if opts.format != Format::Qcow2 {
                return Err(Error::Invalid(format!(
                    "{} images cannot have a backing file: use -f qcow2",
                    opts.format
                )));
            }
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let resolved = if b.is_absolute() {
                b.clone()
            } else {
                dir.join(b)
            };
            let (fmt, bsize) = open_base(&resolved, opts.backing_format)?;
            let name = b
                .to_str()
                .ok_or_else(|| Error::Invalid("backing path is not UTF-8".into()))?;
            (Some((name.to_string(), fmt)), opts.size.unwrap_or(bsize))
        }
    };
    if size == 0 || size > crate::header::MAX_SIZE {
        return Err(Error::Invalid(format!("image size {size} is out of range")));
    }
    if (opts.force_size || opts.azure) && opts.format != Format::Vhd {
        return Err(Error::Invalid(format!(
            "force_size and azure are VHD options (-f vpc), not {}",
            opts.format
        )));
    }
    if opts.azure && !opts.fixed {
        return Err(Error::Invalid(
            "Azure needs a fixed VHD: azure=on cannot be combined with subformat=dynamic".into(),
        ));
    }
    let size = if opts.azure {
        crate::vhd::azure_size(size)
    } else {
        size.div_ceil(512) * 512
    };
    let file = new_file(path)?;
    let r = (|| match opts.format {
        Format::Raw => file
            .set_len(size)
            .map_err(|e| Error::io(format!("{}", path.display()), e)),
        Format::Vdi => {
            let (bytes, len) = crate::vdi::build(size, opts.fixed, random_uuid()?, random_uuid()?)?;
            (&file)
                .write_all(&bytes)
                .and_then(|_| file.set_len(len))
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))
        }
        Format::Vhd => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let stamp = now.saturating_sub(crate::vhd::EPOCH_OFFSET) as u32;
            let force = opts.force_size || opts.azure;
            crate::vhd::build(size, opts.fixed, force, random_uuid()?, stamp).and_then(|n| {
                file.write_all_at(&n.head, 0)
                    .and_then(|_| file.write_all_at(&n.footer, n.footer_at))
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))
            })
        }
        Format::Vhdx => {
            let guids = [random_uuid()?, random_uuid()?, random_uuid()?];
            crate::vhdx::build(size, opts.fixed, opts.cluster_size, guids).and_then(|n| {
                n.segments
                    .iter()
                    .try_for_each(|(o, b)| file.write_all_at(b, *o))
                    .and_then(|_| file.set_len(n.len))
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))
            })
        }
        Format::Vmdk => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::Invalid("VMDK file name is not UTF-8".into()))?;
            let cid = u32::from_le_bytes(random_uuid()?[..4].try_into().unwrap_or([1; 4]));
            crate::vmdk::build(size, opts.stream_optimized, name, cid).and_then(|n| {
                n.segments
                    .iter()
                    .try_for_each(|(o, b)| file.write_all_at(b, *o))
                    .and_then(|_| file.set_len(n.len))
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))
            })
        }
        Format::Qcow2 => {
            let fmt_name = backing.as_ref().map(|(_, f)| f.to_string());
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let bytes = overlay_image(
                dir,
                &NewHeader {
                    cluster_bits: bits,
                    size,
                    backing: backing.as_ref().map(|(n, _)| n.as_str()),
                    backing_format: fmt_name.as_deref(),
                    zstd: opts.zstd,
                    extended_l2: opts.extended_l2,
                    trust_mark: None,
                },
            )?;
            (&file)
                .write_all(&bytes)
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))
        }
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// 16 random bytes shaped as a version-4 UUID.
pub(crate) fn random_uuid() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// (offset, length) of the 512-byte blocks of `b` that are not all zero, merged into runs.
fn nonzero_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, blk) in b.chunks(512).enumerate() {
        if blk.iter().all(|&x| x == 0) {
            continue;
        }
        let off = i * 512;
        match runs.last_mut() {
            Some((o, l)) if *o + *l == off => *l += blk.len(),
            _ => runs.push((off, blk.len())),
        }
    }
    runs
}

/// The path of `to` relative to directory `from` (both absolute and canonical).
/// The path of `to` relative to directory `from` (both absolute), e.g. `../base.qcow2`.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c.as_os_str());
    }
    p
}

/// Creates one thin qcow2 overlay of `base` per name in `out_dir`. The base is opened and
/// verified once; the overlay bytes are built once (backing stored relative to `out_dir`) and
/// written to each new file (`O_EXCL`: existing files are never overwritten). All or nothing:
/// if one name exists ([`Error::Exists`]) or a write fails, the clones made by this call are
/// removed again. Names must be plain file names. No fsync per clone (like `qemu-img create`).
pub fn clone_many(
    base: &Path,
    out_dir: &Path,
    names: &[String],
    cluster_size: Option<u32>,
) -> Result<Vec<PathBuf>> {
    let bits = cluster_bits(cluster_size.or(Some(65536)))?;
    for n in names {
        if n.is_empty() || n.contains('/') || n == "." || n == ".." || n.contains('\0') {
            return Err(Error::Invalid(format!(
                "clone name {n:?} must be a plain file name"
            )));
        }
    }
    let (fmt, size) = open_base(base, None)?;
    let base_abs =
        std::fs::canonicalize(base).map_err(|e| Error::io(format!("{}", base.display()), e))?;
    let out_abs = std::fs::canonicalize(out_dir)
        .map_err(|e| Error::io(format!("{}", out_dir.display()), e))?;
    let rel = relative(&out_abs, &base_abs);
    let rel = rel
        .to_str()
        .ok_or_else(|| Error::Invalid("base path is not UTF-8".into()))?;
    let fmt_name = fmt.to_string();
    let bytes = overlay_image(
        &out_abs,
        &NewHeader {
            cluster_bits: bits,
            size,
            backing: Some(rel),
            backing_format: Some(&fmt_name),
            zstd: false,
            extended_l2: false,
            trust_mark: None,
        },
    )?;
    // The overlay is mostly zeroes: write only the non-zero 512-byte runs and let the file
    // length supply the rest (the zero tail reads back as zeroes, and takes no disk space).
    let segments = nonzero_runs(&bytes);
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let p = out_dir.join(n);
        let r = new_file(&p).and_then(|f| {
            segments
                .iter()
                .try_for_each(|&(off, len)| f.write_all_at(&bytes[off..off + len], off as u64))
                .and_then(|_| f.set_len(bytes.len() as u64))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&p);
                    Error::io(format!("writing {}", p.display()), e)
                })
        });
        if let Err(e) = r {
            // All or nothing: remove the clones this call made; never touch what existed.
            for made in &out {
                let _ = std::fs::remove_file(made);
            }
            return Err(e);
        }
        out.push(p);
    }
    // Like `qemu-img create`, no fsync per overlay: durability is the caller's (or the next
    // writer's) business, and 10,000 fsyncs/s is not possible on any disk.
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::relative;
    use std::path::{Path, PathBuf};

    #[test]
    fn relative_paths_climb_out_of_the_clone_directory() {
        assert_eq!(
            relative(Path::new("/a/b/clones"), Path::new("/a/b/base.qcow2")),
            PathBuf::from("../base.qcow2")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a/x/y.img")),
            PathBuf::from("x/y.img")
        );
    }
}
