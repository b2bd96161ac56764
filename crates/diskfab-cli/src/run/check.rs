//! The verbs that answer a question about images: `compare` and `check`.

use super::gate;
use crate::args::Cli;
use crate::print;
use diskfab_core::image;
use diskfab_core::ops::images;
use diskfab_core::storage::Result;
use std::path::Path;

/// `diskfab compare`: exit 0 identical, 1 different.
pub(super) fn compare(cli: &Cli, a: &Path, b: &Path) -> Result<()> {
    let r = images::compare(a, b, &gate(cli))?;
    print::compared(cli.json, &r)?;
    if !r.identical {
        print::set_exit(1);
    }
    Ok(())
}

/// `diskfab check`: qemu-img's exit codes.
pub(super) fn check(cli: &Cli, image: &Path) -> Result<()> {
    let r = image::check(image)?;
    print::checked(cli.json, &r)?;
    print::set_exit(r.exit_code() as u8);
    Ok(())
}
