//! Thin qcow2 overlays built in memory with a few whole clusters of data and written to disk
//! in one call (stamp writes thousands of them). The tables are made by the same qcow2 engine
//! that writes every other image, running on an anonymous memory file.

use crate::create::new_file;
use crate::header::{parse_qcow2_header, NewHeader};
use crate::host::Host;
use crate::qcow2::Qcow2Dev;
use crate::Format;
use diskfab_storage::{BlockDev, Error, Result};
use std::io::Write;
use std::path::Path;

/// What the overlay looks like.
#[derive(Debug, Clone)]
pub struct OverlaySpec<'a> {
    /// Virtual size (the backing image's).
    pub size: u64,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Backing file name as stored (relative to the overlay's directory).
    pub backing: &'a str,
    /// Backing format.
    pub backing_format: Format,
}

/// Creates `path` (never overwriting) as an overlay holding `clusters`: (guest offset, data)
/// with offsets and lengths multiples of the cluster size. Returns the file length.
pub fn write_overlay<'d>(
    path: &Path,
    spec: &OverlaySpec,
    clusters: impl IntoIterator<Item = (u64, &'d [u8])>,
) -> Result<u64> {
    let fmt = spec.backing_format.to_string();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let bytes = crate::trust::overlay_image(
        dir,
        &NewHeader {
            cluster_bits: spec.cluster_bits,
            size: spec.size,
            backing: Some(spec.backing),
            backing_format: Some(&fmt),
            zstd: false,
            extended_l2: false,
            trust_mark: None,
        },
    )?;
    let hdr = parse_qcow2_header(&bytes)?;
    let cs = hdr.cluster_size();
    let dev = Qcow2Dev::open(Host::memory(&bytes)?, hdr, None, true)?;
    for (off, data) in clusters {
        if !off.is_multiple_of(cs) || !(data.len() as u64).is_multiple_of(cs) {
            return Err(Error::Invalid(format!(
                "overlay data at {off} (+{}) is not cluster-aligned",
                data.len()
            )));
        }
        dev.write_at(data, off)?;
    }
    dev.flush()?;
    let len = dev.host.len()?;
    let mut out = vec![0u8; len as usize];
    dev.host.read(&mut out, 0)?;
    let mut f = new_file(path)?;
    f.write_all(&out)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(len)
}
