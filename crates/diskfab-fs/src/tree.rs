//! Whole-tree helpers shared by every caller: the one recursive [`walk`] over a guest tree
//! (sorted, depth-limited, loop-safe), `mkdir -p` and `rm -r` on any [`Filesystem`].

use crate::path;
use crate::{DirEntry, FileType, Filesystem, Ino, NewNode};
use diskfab_storage::{Error, Result};
use std::collections::HashSet;

/// Deepest directory nesting walked.
pub const MAX_DEPTH: usize = 4096;

/// One entry met by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The path: the walk's start path, `/`, the names below it (raw bytes).
    pub path: Vec<u8>,
    /// The directory entry (name, inode, type as the directory records it).
    pub entry: DirEntry,
    /// The directory holding the entry.
    pub parent: Ino,
    /// Nesting below the start directory: 1 for its own entries.
    pub depth: usize,
}

/// What [`walk`] does after a visitor has seen a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Walk its entries (then call [`Visitor::leave`]).
    Into,
    /// Do not look inside.
    Over,
}

/// Callbacks of [`walk`]: `enter` for every entry in sorted order, `leave` after the entries
/// of a directory that was entered with [`Step::Into`].
pub trait Visitor {
    /// Sees one entry; for a directory, says whether to walk into it.
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step>;
    /// Called after all entries of a directory walked into.
    fn leave(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<()> {
        let _ = (fs, v);
        Ok(())
    }
}

/// Walks the tree below directory `dir` (whose path is `dir_path`), depth first, entries of
/// each directory sorted by name (byte order). Nesting deeper than [`MAX_DEPTH`] and a
/// directory met twice (a hard-linked directory: a loop or a hostile shared subtree) are
/// [`Error::BadImage`]. Directories are walked into only when the visitor returns
/// [`Step::Into`] for an entry whose node is a directory; the entry list of a directory is
/// read before its first entry is visited, so visitors may change the directory.
pub fn walk(
    fs: &mut dyn Filesystem,
    dir: Ino,
    dir_path: &[u8],
    visitor: &mut dyn Visitor,
) -> Result<()> {
    let mut seen = HashSet::from([dir]);
    walk_dir(fs, dir, dir_path, 1, &mut seen, visitor)
}

fn walk_dir(
    fs: &mut dyn Filesystem,
    dir: Ino,
    dir_path: &[u8],
    depth: usize,
    seen: &mut HashSet<Ino>,
    visitor: &mut dyn Visitor,
) -> Result<()> {
    // `depth` is that of the entries: the directory itself is nested `depth - 1` deep.
    if depth > MAX_DEPTH + 1 {
        return Err(Error::BadImage(format!(
            "{}: directories nested deeper than {MAX_DEPTH}",
            path::display_escaped(dir_path)
        )));
    }
    let mut entries = fs.read_dir(dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let v = Visit {
            path: join(dir_path, &entry.name),
            entry,
            parent: dir,
            depth,
        };
        if visitor.enter(fs, &v)? == Step::Over
            || fs.getattr(v.entry.ino)?.file_type != FileType::Directory
        {
            continue;
        }
        if !seen.insert(v.entry.ino) {
            return Err(Error::BadImage(format!(
                "{}: directory loop (a directory is linked twice)",
                path::display_escaped(&v.path)
            )));
        }
        walk_dir(fs, v.entry.ino, &v.path, depth + 1, seen, visitor)?;
        visitor.leave(fs, &v)?;
    }
    Ok(())
}

/// `dir` + `/` + `name`, without doubling the slash after `/`.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Creates directory `p` and any missing parents (existing directories, also reached through
/// symlinks, are fine). `..` is refused.
pub fn mkdir_all(fs: &mut dyn Filesystem, p: &[u8], attr: &NewNode) -> Result<Ino> {
    let mut cur = fs.root();
    for comp in path::components(p) {
        if comp == b".." {
            return Err(Error::Invalid(format!(
                "{}: '..' is not allowed here",
                path::display(p)
            )));
        }
        path::check_name(comp)?;
        cur = match fs.lookup(cur, comp)? {
            Some(ino) => {
                let ino = follow_dir(fs, ino)?;
                if fs.getattr(ino)?.file_type != FileType::Directory {
                    return Err(Error::Exists(format!(
                        "{}: a component is not a directory",
                        path::display(p)
                    )));
                }
                ino
            }
            None => fs.mkdir(cur, comp, attr)?,
        };
    }
    Ok(cur)
}

fn follow_dir(fs: &mut dyn Filesystem, ino: Ino) -> Result<Ino> {
    if fs.getattr(ino)?.file_type == FileType::Symlink {
        let t = fs.read_link(ino)?;
        // Symlinks inside the image resolve inside the image.
        return path::resolve(fs, &t, true);
    }
    Ok(ino)
}

/// Removes entry `name` of directory `parent` (inode `ino`), recursively when it is a directory.
pub fn remove_entry(fs: &mut dyn Filesystem, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
    if fs.getattr(ino)?.file_type == FileType::Directory {
        walk(fs, ino, name, &mut Remover)?;
        fs.rmdir(parent, name)
    } else {
        fs.unlink(parent, name)
    }
}

/// `rm -r`: files unlinked on the way down, directories removed on the way up.
struct Remover;

impl Visitor for Remover {
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        if v.entry.file_type == FileType::Directory {
            return Ok(Step::Into);
        }
        fs.unlink(v.parent, &v.entry.name)?;
        Ok(Step::Over)
    }
    fn leave(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<()> {
        fs.rmdir(v.parent, &v.entry.name)
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
