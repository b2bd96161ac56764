//! `customize`: virt-customize-style operations applied in place to one image.

use crate::open::{DiskOptions, FsSession};
use crate::select::VolumeSel;
use diskfab_customize::ops::Op;
use diskfab_customize::{CustomizeReport, Settings};
use diskfab_storage::Result;
use std::path::Path;

/// Applies `ops` to the filesystem of `image` (the OS root unless `partition` is given).
/// With `dry_run` the image is opened read-only and only the plan is returned.
pub fn customize(
    image: &Path,
    partition: Option<&VolumeSel>,
    ops: &[Op],
    settings: &Settings,
    dry_run: bool,
    opts: &DiskOptions,
) -> Result<CustomizeReport> {
    let opts = DiskOptions {
        writable: !dry_run,
        gate: opts.gate.clone(),
    };
    let mut s = FsSession::open(image, partition, &opts)?;
    let report = diskfab_customize::customize(s.fs.as_mut(), ops, settings, dry_run)?;
    if !dry_run {
        s.commit()?;
    }
    Ok(report)
}
