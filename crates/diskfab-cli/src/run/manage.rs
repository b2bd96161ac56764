//! Disk layout: `mkfs`, `part`; and `inspect`.

use super::disk_opts;
use crate::args::{Cli, Sel};
use crate::print;
use diskfab_core::fs::MkfsOptions;
use diskfab_core::open::Disk;
use diskfab_core::ops::manage;
use diskfab_core::part::TableKind;
use diskfab_core::select::VolumeSel;
use diskfab_core::storage::{Error, Result};
use std::path::Path;

/// `diskfab mkfs`.
pub(super) fn mkfs(cli: &Cli, sel: &Sel, fs_type: &str, label: &Option<String>) -> Result<()> {
    let opts = MkfsOptions {
        label: label.clone(),
        fs_type: fs_type.to_string(),
        uuid: None,
        time: None,
    };
    let number = match &sel.partition {
        None => None,
        Some(VolumeSel::Number(n)) => Some(*n),
        Some(lv) => {
            return Err(Error::Unsupported(format!(
                "mkfs on a logical volume ({lv}) is not supported yet"
            )))
        }
    };
    manage::mkfs(&sel.image, number, &opts, &disk_opts(cli, true))?;
    print::done(
        cli.json,
        &format!("created {fs_type} on {}", sel.image.display()),
        serde_json::json!({"mkfs": fs_type}),
    )
}

/// `diskfab part`.
pub(super) fn part(cli: &Cli, image: &Path, gpt: bool, mbr: bool, add: &[String]) -> Result<()> {
    let kind = if gpt {
        Some(TableKind::Gpt)
    } else if mbr {
        Some(TableKind::Mbr)
    } else {
        None
    };
    let specs = add
        .iter()
        .map(|s| manage::parse_part_spec(s))
        .collect::<Result<Vec<_>>>()?;
    let parts = manage::part(image, kind, &specs, &disk_opts(cli, true))?;
    print::parts(cli.json, &parts)
}

/// `diskfab inspect`.
pub(super) fn inspect(cli: &Cli, image: &Path, no_applications: bool, xml: bool) -> Result<()> {
    let disk = Disk::open(image, &disk_opts(cli, false))?;
    let opts = diskfab_core::ops::inspect::Options { no_applications };
    let r = diskfab_core::ops::inspect::inspect(&disk, opts)?;
    if xml {
        print!("{}", diskfab_core::ops::inspect_xml::to_xml(&r));
        return Ok(());
    }
    print::inspected(cli.json, &r)
}
