//! Format options (`-o KEY=VALUE,...`) shared by `create` and `convert`.

use diskfab_core::part::parse_size;
use diskfab_core::storage::{Error, Result};

/// Layout options shared by `create` and `convert` (`-o`).
#[derive(Default)]
pub(super) struct Layout {
    pub fixed: bool,
    pub stream_optimized: bool,
    pub zstd: bool,
    pub extended_l2: bool,
    /// VHDX block size as given.
    pub block_size: Option<String>,
    /// VHD: size forced (no CHS rounding).
    pub force_size: bool,
    /// VHD for Azure (fixed, whole MiB, forced size).
    pub azure: bool,
    /// `subformat=dynamic` or `static=off` was given.
    pub dynamic_asked: bool,
}

impl Layout {
    /// The VHDX block size, if given.
    pub fn block_size(&self) -> Result<Option<u32>> {
        cluster(&self.block_size)
    }

    /// Whether the output is fully allocated (`azure=on` implies it).
    pub fn fixed(&self) -> bool {
        self.fixed || (self.azure && !self.dynamic_asked)
    }

    /// Applies one `KEY=VALUE`; returns false if the key is not a layout option.
    pub fn apply(&mut self, kv: &str) -> bool {
        match kv.split_once('=') {
            Some(("static", "on")) | Some(("subformat", "fixed")) => self.fixed = true,
            Some(("static", "off")) | Some(("subformat", "dynamic")) => {
                self.fixed = false;
                self.dynamic_asked = true;
            }
            Some(("force_size", "on")) => self.force_size = true,
            Some(("force_size", "off")) => self.force_size = false,
            Some(("azure", "on")) => self.azure = true,
            Some(("azure", "off")) => self.azure = false,
            Some(("subformat", "streamOptimized")) => self.stream_optimized = true,
            Some(("subformat", "monolithicSparse")) => self.stream_optimized = false,
            Some(("compression_type", "zstd")) | Some(("compression", "zstd")) => self.zstd = true,
            Some(("compression_type", "zlib")) | Some(("compression", "zlib")) => self.zstd = false,
            Some(("block_size", v)) => self.block_size = Some(v.to_string()),
            Some(("extended_l2", "on")) => self.extended_l2 = true,
            Some(("extended_l2", "off")) => self.extended_l2 = false,
            _ => return false,
        }
        true
    }
}

pub(super) const LAYOUT_HELP: &str = "static=on|off, subformat=fixed|dynamic|monolithicSparse|streamOptimized, compression_type=zlib|zstd, extended_l2=on|off, block_size=SIZE, force_size=on|off, azure=on|off";

/// The comma-separated `KEY=VALUE` items of `-o`.
pub(super) fn options(s: &Option<String>) -> impl Iterator<Item = &str> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
}

/// A cluster or block size argument.
pub(super) fn cluster(s: &Option<String>) -> Result<Option<u32>> {
    s.as_deref()
        .map(|s| {
            let v = parse_size(s)?;
            u32::try_from(v).map_err(|_| Error::Invalid(format!("cluster size {s} is too large")))
        })
        .transpose()
}
