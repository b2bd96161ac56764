//! Whole-tree helpers shared by every caller: `mkdir -p` and `rm -r` on any [`Filesystem`].

use crate::path;
use crate::{FileType, Filesystem, Ino, NewNode};
use diskfab_storage::{Error, Result};

/// Deepest directory nesting walked.
pub const MAX_DEPTH: usize = 4096;

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
        remove_tree(fs, parent, name, ino, 0)
    } else {
        fs.unlink(parent, name)
    }
}

fn remove_tree(
    fs: &mut dyn Filesystem,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::BadImage("directories nested too deep".into()));
    }
    for e in fs.read_dir(ino)? {
        if e.file_type == FileType::Directory {
            remove_tree(fs, ino, &e.name, e.ino, depth + 1)?;
        } else {
            fs.unlink(ino, &e.name)?;
        }
    }
    fs.rmdir(parent, name)
}
