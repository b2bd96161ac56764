//! Whole-image verbs: `create`, `clone`, `info`, `map`, `measure`.

use super::layout::{cluster, options, Layout, LAYOUT_HELP};
use super::{disk_opts, fmt, gate};
use crate::args::{Cli, Fmt};
use crate::print;
use crate::progress::count_bar;
use diskfab_core::image::{self, CreateOptions};
use diskfab_core::open::Disk;
use diskfab_core::ops::{images, info};
use diskfab_core::part::parse_size;
use diskfab_core::storage::{Error, Result};
use std::path::{Path, PathBuf};

/// `diskfab create`.
pub(super) fn create(
    json: bool,
    image: &Path,
    size: &Option<String>,
    format: Fmt,
    backing: &Option<PathBuf>,
    cluster_size: &Option<String>,
    o: &Option<String>,
) -> Result<()> {
    let size = size.as_deref().map(parse_size).transpose()?;
    let mut layout = Layout::default();
    for kv in options(o) {
        if !layout.apply(kv) {
            return Err(Error::Invalid(format!(
                "unknown option {kv:?}: use {LAYOUT_HELP}"
            )));
        }
    }
    let opts = CreateOptions {
        format: fmt(format),
        size,
        backing: backing.clone(),
        backing_format: None,
        cluster_size: cluster(cluster_size)?.or(layout.block_size()?),
        fixed: layout.fixed(),
        stream_optimized: layout.stream_optimized,
        zstd: layout.zstd,
        extended_l2: layout.extended_l2,
        force_size: layout.force_size,
        azure: layout.azure,
    };
    image::create(image, &opts)?;
    match size.filter(|&s| opts.azure && image::vhd::azure_size(s) != s) {
        Some(s) => {
            let to = image::vhd::azure_size(s);
            print::done(
                json,
                &format!(
                    "created {} ({to} bytes: {s} rounded up to a whole MiB for Azure)",
                    image.display()
                ),
                serde_json::json!({"created": image, "virtual_size": to, "rounded_up_from": s}),
            )
        }
        None => print::done(
            json,
            &format!("created {}", image.display()),
            serde_json::json!({"created": image}),
        ),
    }
}

/// `diskfab clone`.
pub(super) fn clone(
    base: &Path,
    count: usize,
    out: &Path,
    cluster_size: &Option<String>,
    json: bool,
) -> Result<()> {
    let cluster_size = cluster(cluster_size)?;
    if count == 0 {
        return Err(Error::Invalid("--count must be at least 1".into()));
    }
    let stem = base.file_stem().and_then(|s| s.to_str()).ok_or_else(|| {
        Error::Invalid(format!("{}: base has no usable file name", base.display()))
    })?;
    let width = count.to_string().len().max(4);
    let names: Vec<String> = (1..=count)
        .map(|i| format!("{stem}-{i:0width$}.qcow2"))
        .collect();
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("{}", out.display()), e))?;
    let pb = count_bar(count as u64, json);
    let paths = image::clone_many(base, out, &names, cluster_size)?;
    pb.finish_and_clear();
    print::clones(json, &paths)
}

/// `diskfab info`.
pub(super) fn info(cli: &Cli, image: &Path) -> Result<()> {
    let disk = Disk::open(image, &disk_opts(cli, false))?;
    let report = info::info(&disk)?;
    print::info(cli.json, &report)?;
    // Everything readable was printed; an unreadable filesystem still fails the command.
    match report.volumes.iter().find_map(|v| v.error.as_ref()) {
        Some(e) => Err(Error::BadImage(format!("{}: {e}", image.display()))),
        None => Ok(()),
    }
}

/// `diskfab map`.
pub(super) fn map(cli: &Cli, image: &Path) -> Result<()> {
    let img = image::Image::open(
        image,
        &image::OpenOptions {
            writable: false,
            gate: gate(cli),
        },
    )?;
    print::mapped(cli.json, &image::map(&img)?)
}

/// `diskfab measure`.
pub(super) fn measure(
    cli: &Cli,
    src: &Path,
    format: Fmt,
    cluster_size: &Option<String>,
) -> Result<()> {
    let r = images::measure(src, fmt(format), cluster(cluster_size)?, &gate(cli))?;
    print::measured(cli.json, &r)
}
