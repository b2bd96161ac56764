//! `diskfab convert`.

use super::layout::{cluster, options, Layout, LAYOUT_HELP};
use super::{fmt, gate};
use crate::args::{Cli, Fmt};
use crate::print;
use crate::progress::bytes_bar;
use diskfab_core::image;
use diskfab_core::ops::images::{self, ConvertOptions};
use diskfab_core::storage::{Error, Result};
use std::path::{Path, PathBuf};

/// The options of a conversion from `-O`, `-c` and `-o KEY=VALUE,...`.
fn convert_options(
    cli: &Cli,
    format: Fmt,
    o: &Option<String>,
    compress: bool,
) -> Result<ConvertOptions> {
    let mut opts = ConvertOptions {
        format: fmt(format),
        gate: gate(cli),
        compress,
        ..Default::default()
    };
    let mut layout = Layout::default();
    for kv in options(o) {
        match kv.split_once('=') {
            Some(("cluster_size", v)) => opts.cluster_size = cluster(&Some(v.to_string()))?,
            Some(("backing", v)) => opts.backing = Some(PathBuf::from(v)),
            _ if layout.apply(kv) => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown option {kv:?}: use cluster_size=SIZE, backing=BASE, {LAYOUT_HELP}"
                )))
            }
        }
    }
    if let Some(b) = layout.block_size()? {
        opts.cluster_size = Some(b);
    }
    opts.fixed = layout.fixed();
    opts.force_size = layout.force_size;
    opts.azure = layout.azure;
    opts.stream_optimized = layout.stream_optimized;
    opts.zstd = layout.zstd;
    opts.extended_l2 = layout.extended_l2;
    Ok(opts)
}

/// The on/off switches of `diskfab convert`.
pub(super) struct Switches {
    /// `-p`: show a progress bar.
    pub progress: bool,
    /// `-c`: compress the output.
    pub compress: bool,
    /// `--no-sync`: skip the final flush to stable storage.
    pub no_sync: bool,
}

/// `diskfab convert`.
pub(super) fn convert(
    cli: &Cli,
    src: &Path,
    dst: &Path,
    format: Fmt,
    o: &Option<String>,
    sw: Switches,
) -> Result<()> {
    let Switches {
        progress,
        compress,
        no_sync,
    } = sw;
    let mut opts = convert_options(cli, format, o, compress)?;
    opts.no_sync = no_sync;
    let pb = if progress {
        // The bar's total is the source's guest size (a failed open is reported by
        // `convert` itself).
        let total = image::Image::open(
            src,
            &image::OpenOptions {
                writable: false,
                gate: gate(cli),
            },
        )
        .ok()
        .map(|i| i.dev().size());
        bytes_bar(total, cli.json)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let r = images::convert(src, dst, &opts, &|n| pb.inc(n))?;
    pb.finish_and_clear();
    print::converted(cli.json, &r)
}
