//! Which subvolume is `/`: `DISKFAB_BTRFS_SUBVOL`, else the default subvolume, except that a
//! top level (id 5) holding nothing but subvolumes, one of them named `root` or `@` (Fedora's
//! and Ubuntu's layouts), is entered at that subvolume so the OS root is `/`.

use crate::csum::name_hash;
use crate::fs::BtrfsFs;
use crate::items::parse_dir_entries;
use crate::key::{Key, DIR_ITEM, FIRST_FREE, FS_TREE, LAST_FREE, ROOT_ITEM, ROOT_TREE_DIR};
use diskfab_fs::path;
use diskfab_storage::{Error, Result};

/// The environment variable naming the subvolume to show as `/`: a path from the top level
/// (`root`, `home`, `snapshots/1`), `/` for the top level itself, or `id:N`.
pub const ENV_SUBVOL: &str = "DISKFAB_BTRFS_SUBVOL";

/// Names that mark an OS root subvolume in a top level that holds only subvolumes.
const ROOT_NAMES: [&[u8]; 2] = [b"root", b"@"];

/// The subvolume the root tree's `default` entry names (5 when there is none).
pub fn default_subvol(fs: &mut BtrfsFs) -> Result<u64> {
    let k = Key::new(ROOT_TREE_DIR, DIR_ITEM, name_hash(b"default"));
    let root = fs.vol.root_tree();
    for (_, d) in fs.vol.items(root, k, k, 1)? {
        for e in parse_dir_entries(&d)? {
            if e.name == b"default" && e.location.ty == ROOT_ITEM {
                return Ok(e.location.objectid);
            }
        }
    }
    Ok(FS_TREE)
}

/// The OS-root subvolume of a Fedora-style top level, if the top level has that shape.
fn os_root_in_top_level(fs: &mut BtrfsFs) -> Result<Option<u64>> {
    let top = fs.subvol_root(FS_TREE)?;
    let entries = fs.raw_entries(top)?;
    if entries.is_empty() || entries.iter().any(|e| e.location.ty != ROOT_ITEM) {
        return Ok(None);
    }
    Ok(entries
        .iter()
        .find(|e| ROOT_NAMES.contains(&e.name.as_slice()))
        .map(|e| e.location.objectid))
}

/// Roots `fs` at the subvolume `choice` names (see [`ENV_SUBVOL`]), or by the default rule.
pub fn select(fs: &mut BtrfsFs, choice: Option<&str>) -> Result<()> {
    let id = match choice.map(str::trim).filter(|c| !c.is_empty()) {
        None => match default_subvol(fs)? {
            FS_TREE => os_root_in_top_level(fs)?.unwrap_or(FS_TREE),
            id => id,
        },
        Some("/") => FS_TREE,
        Some(c) if c.starts_with("id:") => c[3..]
            .parse::<u64>()
            .map_err(|_| Error::Invalid(format!("{ENV_SUBVOL}={c:?}: id:N wants a number")))?,
        Some(c) => {
            let ino = path::resolve(fs, c.as_bytes(), true)
                .map_err(|e| Error::Invalid(format!("{ENV_SUBVOL}={c:?}: {e}")))?;
            let (tree, _, obj) = fs.decode(ino)?;
            if obj != FIRST_FREE {
                return Err(Error::Invalid(format!(
                    "{ENV_SUBVOL}={c:?} is a directory, not a subvolume"
                )));
            }
            tree
        }
    };
    if id != FS_TREE && !(FIRST_FREE..=LAST_FREE).contains(&id) {
        return Err(Error::Invalid(format!(
            "btrfs subvolume id {id} is not a subvolume id"
        )));
    }
    fs.root_ino = fs.subvol_root(id)?;
    fs.subvol = id;
    Ok(())
}
