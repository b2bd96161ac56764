//! Path resolution inside a filesystem: chroot semantics (`/` and `..` never leave the
//! filesystem root), symlinks followed with a hop limit, every name validated.

use crate::driver::Filesystem;
use crate::types::{FileType, Ino};
use diskfab_storage::{Error, Result};

/// Maximum symlinks followed while resolving one path (as Linux's MAXSYMLINKS).
pub const MAX_SYMLINK_HOPS: u32 = 40;
/// Maximum path length accepted.
pub const MAX_PATH: usize = 4096;

/// Splits a path into its non-empty, non-`.` components.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Checks that `name` is usable as one directory entry name.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::Invalid(format!(
            "invalid file name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() > 255 || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Invalid(format!(
            "invalid file name {:?} (contains '/' or NUL, or longer than 255 bytes)",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// Resolves `path` (absolute; relative paths are taken from the root) to an inode.
/// Symlinks in the middle are always followed; the last component only when `follow`.
pub fn resolve(fs: &mut dyn Filesystem, path: &[u8], follow: bool) -> Result<Ino> {
    if path.len() > MAX_PATH {
        return Err(Error::Invalid("path too long".into()));
    }
    let mut hops = 0u32;
    let root = fs.root();
    walk(fs, root, path, follow, &mut hops).map_err(|e| e.context(display(path)))
}

/// Like [`resolve`], but returns every directory from the root down to the resolved node
/// (symlinks already followed), so callers can check ancestry (e.g. moving a directory into
/// itself).
pub fn resolve_chain(fs: &mut dyn Filesystem, path: &[u8], follow: bool) -> Result<Vec<Ino>> {
    if path.len() > MAX_PATH {
        return Err(Error::Invalid("path too long".into()));
    }
    let mut hops = 0u32;
    let mut stack = vec![fs.root()];
    walk_into(fs, &mut stack, path, follow, &mut hops).map_err(|e| e.context(display(path)))?;
    Ok(stack)
}

/// Resolves the parent directory of `path` and returns it with the final name.
/// `/` itself has no parent and is refused.
pub fn resolve_parent(fs: &mut dyn Filesystem, path: &[u8]) -> Result<(Ino, Vec<u8>)> {
    let trimmed = trim_trailing_slashes(path);
    let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::Invalid(format!(
            "{}: path names no entry",
            display(path)
        )));
    }
    check_name(name)?;
    let parent = resolve(fs, dir, true)?;
    let meta = fs.getattr(parent)?;
    if meta.file_type != FileType::Directory {
        return Err(Error::Failed(format!("{}: not a directory", display(dir))));
    }
    Ok((parent, name.to_vec()))
}

fn trim_trailing_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

/// Human-readable form of a raw path.
pub fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn walk(
    fs: &mut dyn Filesystem,
    start: Ino,
    path: &[u8],
    follow: bool,
    hops: &mut u32,
) -> Result<Ino> {
    let root = fs.root();
    // Stack of directories from the root, so `..` works without trusting on-disk `..` entries
    // and can never climb above the filesystem root.
    let mut stack: Vec<Ino> = vec![start];
    walk_into(fs, &mut stack, path, follow, hops)?;
    Ok(*stack.last().unwrap_or(&root))
}

fn walk_into(
    fs: &mut dyn Filesystem,
    stack: &mut Vec<Ino>,
    path: &[u8],
    follow: bool,
    hops: &mut u32,
) -> Result<()> {
    let root = fs.root();
    if path.first() == Some(&b'/') {
        stack.clear();
        stack.push(root);
    }
    let comps: Vec<&[u8]> = components(path).collect();
    for (i, comp) in comps.iter().enumerate() {
        if *comp == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let dir = *stack.last().unwrap_or(&root);
        if fs.getattr(dir)?.file_type != FileType::Directory {
            return Err(Error::Failed("a path component is not a directory".into()));
        }
        let ino = fs
            .lookup(dir, comp)?
            .ok_or_else(|| Error::NotFound("no such file or directory".into()))?;
        let last = i + 1 == comps.len();
        if (!last || follow) && fs.getattr(ino)?.file_type == FileType::Symlink {
            *hops += 1;
            if *hops > MAX_SYMLINK_HOPS {
                return Err(Error::Failed("too many levels of symbolic links".into()));
            }
            let target = fs.read_link(ino)?;
            walk_into(fs, stack, &target, true, hops)?;
            continue;
        }
        stack.push(ino);
    }
    Ok(())
}
