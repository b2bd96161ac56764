//! Reading and copying files: `ls`, `cat`, `copy-in`, `copy-out`.

use super::open_fs;
use crate::args::{Cli, Sel};
use crate::print;
use crate::progress::bytes_bar;
use diskfab_core::ops::{files, hostcopy};
use diskfab_core::storage::{Error, Result};
use std::io::Write;
use std::path::Path;

/// `diskfab ls`.
pub(super) fn ls(cli: &Cli, sel: &Sel, path: &str, long: bool, recursive: bool) -> Result<()> {
    let mut s = open_fs(cli, sel, false)?;
    let entries = files::ls(s.fs.as_mut(), path, recursive)?;
    print::ls(cli.json, long, recursive, &entries)
}

/// `diskfab cat`.
pub(super) fn cat(cli: &Cli, sel: &Sel, paths: &[String]) -> Result<()> {
    let mut s = open_fs(cli, sel, false)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    for p in paths {
        files::cat(s.fs.as_mut(), p, &mut w)?;
    }
    w.flush().map_err(|e| Error::io("writing output", e))
}

/// `diskfab copy-in`.
pub(super) fn copy_in(cli: &Cli, sel: &Sel, paths: &[String]) -> Result<()> {
    let (dest, srcs) = split_last(paths)?;
    let srcs: Vec<&Path> = srcs.iter().map(Path::new).collect();
    let total = srcs.iter().map(|p| tree_size(p)).sum();
    let pb = bytes_bar(Some(total), cli.json);
    let mut s = open_fs(cli, sel, true)?;
    let r = hostcopy::copy_in(s.fs.as_mut(), &srcs, dest, &|n| pb.inc(n))?;
    s.commit()?;
    pb.finish_and_clear();
    print::copy(cli.json, &r)
}

/// `diskfab copy-out`.
pub(super) fn copy_out(cli: &Cli, sel: &Sel, paths: &[String]) -> Result<()> {
    let (dest, srcs) = split_last(paths)?;
    let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
    let pb = bytes_bar(None, cli.json);
    let mut s = open_fs(cli, sel, false)?;
    let r = hostcopy::copy_out(s.fs.as_mut(), &srcs, Path::new(dest), &|n| pb.inc(n))?;
    pb.finish_and_clear();
    print::copy(cli.json, &r)
}

fn split_last(paths: &[String]) -> Result<(&str, &[String])> {
    match paths.split_last() {
        Some((last, rest)) if !rest.is_empty() => Ok((last.as_str(), rest)),
        _ => Err(Error::Invalid(
            "need at least one source and a destination".into(),
        )),
    }
}

/// Bytes of regular files under a host path (for the progress bar total).
fn tree_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0)
    } else if m.is_file() {
        m.len()
    } else {
        0
    }
}
