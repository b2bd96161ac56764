//! Editing paths inside the image: `mkdir`, `rm`, `chmod`, `chown`, `ln`, `mv`.

use super::open_fs;
use crate::args::{Cli, Sel};
use crate::print;
use diskfab_core::fs::{Filesystem, NewNode};
use diskfab_core::ops::files;
use diskfab_core::storage::Result;

/// Opens the filesystem writable, applies `f` to every path, commits once.
fn edit(
    cli: &Cli,
    sel: &Sel,
    paths: &[String],
    mut f: impl FnMut(&mut dyn Filesystem, &str) -> Result<()>,
) -> Result<()> {
    let mut s = open_fs(cli, sel, true)?;
    for p in paths {
        f(s.fs.as_mut(), p)?;
    }
    s.commit()?;
    print::done(
        cli.json,
        "",
        serde_json::json!({"ok": true, "paths": paths}),
    )
}

/// `diskfab mkdir`.
pub(super) fn mkdir(
    cli: &Cli,
    sel: &Sel,
    paths: &[String],
    parents: bool,
    mode: &str,
) -> Result<()> {
    let attr = NewNode::root(files::parse_mode(mode)?);
    edit(cli, sel, paths, |fs, p| files::mkdir(fs, p, parents, &attr))
}

/// `diskfab rm`.
pub(super) fn rm(
    cli: &Cli,
    sel: &Sel,
    paths: &[String],
    recursive: bool,
    force: bool,
) -> Result<()> {
    edit(cli, sel, paths, |fs, p| files::rm(fs, p, recursive, force))
}

/// `diskfab chmod`.
pub(super) fn chmod(cli: &Cli, sel: &Sel, mode: &str, paths: &[String]) -> Result<()> {
    let m = files::parse_mode(mode)?;
    edit(cli, sel, paths, |fs, p| files::chmod(fs, p, m))
}

/// `diskfab chown`.
pub(super) fn chown(cli: &Cli, sel: &Sel, owner: &str, paths: &[String]) -> Result<()> {
    edit(cli, sel, paths, |fs, p| files::chown(fs, p, owner))
}

/// `diskfab ln` (`link` is the one path it edits).
pub(super) fn ln(
    cli: &Cli,
    sel: &Sel,
    symbolic: bool,
    target: &str,
    link: &[String],
) -> Result<()> {
    edit(cli, sel, link, |fs, l| {
        files::ln(fs, target, l, symbolic, &NewNode::root(0o777))
    })
}

/// `diskfab mv` (`src` is the one path it edits).
pub(super) fn mv(cli: &Cli, sel: &Sel, src: &[String], dst: &str) -> Result<()> {
    edit(cli, sel, src, |fs, s| files::mv(fs, s, dst))
}
