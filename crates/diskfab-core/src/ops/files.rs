//! File operations inside a filesystem: ls, cat, mkdir, rm, chmod, chown, ln, mv.

use super::names::resolve_id;
use diskfab_fs::path::{self, display};
use diskfab_fs::tree::{self, Step, Visit, Visitor};
use diskfab_fs::{FileType, Filesystem, Ino, Metadata, NewNode, SetAttr};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::io::Write;

/// One listed entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Full path inside the filesystem.
    pub path: String,
    /// Its attributes.
    #[serde(flatten)]
    pub meta: Metadata,
    /// Symlink target, for symlinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn entry(fs: &mut dyn Filesystem, p: &[u8], ino: Ino) -> Result<Entry> {
    let meta = fs.getattr(ino)?;
    let target = if meta.file_type == FileType::Symlink {
        Some(display(&fs.read_link(ino)?))
    } else {
        None
    };
    Ok(Entry {
        path: display(p),
        meta,
        target,
    })
}

/// Lists `p`: its entries if it is a directory (recursively with `recursive`), else itself.
/// Entries are sorted by name within each directory; a recursive listing is depth-first.
pub fn ls(fs: &mut dyn Filesystem, p: &str, recursive: bool) -> Result<Vec<Entry>> {
    let ino = path::resolve(fs, p.as_bytes(), true)?;
    let meta = fs.getattr(ino)?;
    if meta.file_type != FileType::Directory {
        return Ok(vec![entry(fs, p.as_bytes(), ino)?]);
    }
    let mut lister = Lister {
        out: Vec::new(),
        recursive,
    };
    tree::walk(fs, ino, p.as_bytes(), &mut lister)?;
    Ok(lister.out)
}

/// Collects entries; walks into directories only for a recursive listing.
struct Lister {
    out: Vec<Entry>,
    recursive: bool,
}

impl Visitor for Lister {
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        self.out.push(entry(fs, &v.path, v.entry.ino)?);
        Ok(
            if self.recursive && v.entry.file_type == FileType::Directory {
                Step::Into
            } else {
                Step::Over
            },
        )
    }
}

/// Streams a regular file's content to `w`; returns the bytes written.
pub fn cat(fs: &mut dyn Filesystem, p: &str, w: &mut dyn Write) -> Result<u64> {
    let ino = path::resolve(fs, p.as_bytes(), true)?;
    let meta = fs.getattr(ino)?;
    match meta.file_type {
        FileType::Regular => {}
        FileType::Directory => return Err(Error::Failed(format!("{p}: is a directory"))),
        _ => return Err(Error::Failed(format!("{p}: not a regular file"))),
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fs.read(ino, off, &mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])
            .map_err(|e| Error::io("writing output", e))?;
        off += n as u64;
    }
    Ok(off)
}

/// Creates directory `p` (with `parents`, missing parents too and no error if it exists).
pub fn mkdir(fs: &mut dyn Filesystem, p: &str, parents: bool, attr: &NewNode) -> Result<()> {
    if !parents {
        let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
        if fs.lookup(dir, &name)?.is_some() {
            return Err(Error::Exists(p.into()));
        }
        fs.mkdir(dir, &name, attr)?;
        return Ok(());
    }
    diskfab_fs::tree::mkdir_all(fs, p.as_bytes(), attr).map(|_| ())
}

/// Removes `p`; directories only with `recursive`; with `force`, a missing path is not an error.
pub fn rm(fs: &mut dyn Filesystem, p: &str, recursive: bool, force: bool) -> Result<()> {
    let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
    let Some(ino) = fs.lookup(dir, &name)? else {
        return if force {
            Ok(())
        } else {
            Err(Error::NotFound(format!("{p}: no such file or directory")))
        };
    };
    if !recursive && fs.getattr(ino)?.file_type == FileType::Directory {
        return Err(Error::Failed(format!("{p}: is a directory (use -r)")));
    }
    diskfab_fs::tree::remove_entry(fs, dir, &name, ino)
}

/// Parses an octal mode like `644`, `0755` or `4755`.
pub fn parse_mode(s: &str) -> Result<u32> {
    let v = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| Error::Invalid(format!("{s:?} is not an octal mode (e.g. 0644)")))?;
    if v > 0o7777 {
        return Err(Error::Invalid(format!("mode {s} is larger than 07777")));
    }
    Ok(v)
}

/// Sets the permission bits of `p` (following symlinks, like chmod).
pub fn chmod(fs: &mut dyn Filesystem, p: &str, perm: u32) -> Result<()> {
    let ino = path::resolve(fs, p.as_bytes(), true)?;
    fs.set_attr(
        ino,
        &SetAttr {
            perm: Some(perm),
            ..Default::default()
        },
    )
}

/// Changes the owner of `p` (not following a final symlink, like `chown -h`).
/// `owner` is `USER[:GROUP]` or `USER.GROUP`, names resolved through the image's own databases.
pub fn chown(fs: &mut dyn Filesystem, p: &str, owner: &str) -> Result<()> {
    let (u, g) = match owner.split_once([':', '.']) {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let uid = if u.is_empty() {
        None
    } else {
        Some(resolve_id(fs, u, false)?)
    };
    let gid = match g {
        Some(g) if !g.is_empty() => Some(resolve_id(fs, g, true)?),
        _ => None,
    };
    let ino = path::resolve(fs, p.as_bytes(), false)?;
    fs.set_attr(
        ino,
        &SetAttr {
            uid,
            gid,
            ..Default::default()
        },
    )
}

/// Creates a symlink `link` → `target` (`symbolic`), or a hard link `link` to the file `target`.
pub fn ln(
    fs: &mut dyn Filesystem,
    target: &str,
    link: &str,
    symbolic: bool,
    attr: &NewNode,
) -> Result<()> {
    let (dir, name) = path::resolve_parent(fs, link.as_bytes())?;
    if fs.lookup(dir, &name)?.is_some() {
        return Err(Error::Exists(link.into()));
    }
    if symbolic {
        if target.is_empty() || target.len() > 4095 {
            return Err(Error::Invalid(
                "symlink target must be 1..4095 bytes".into(),
            ));
        }
        fs.symlink(dir, &name, target.as_bytes(), attr)?;
    } else {
        let ino = path::resolve(fs, target.as_bytes(), false)?;
        if fs.getattr(ino)?.file_type == FileType::Directory {
            return Err(Error::Failed(format!(
                "{target}: hard links to directories are not allowed"
            )));
        }
        fs.link(ino, dir, &name)?;
    }
    Ok(())
}

/// Moves/renames `src` to `dst`; when `dst` is an existing directory, `src` moves into it.
pub fn mv(fs: &mut dyn Filesystem, src: &str, dst: &str) -> Result<()> {
    let (sdir, sname) = path::resolve_parent(fs, src.as_bytes())?;
    let sino = fs
        .lookup(sdir, &sname)?
        .ok_or_else(|| Error::NotFound(format!("{src}: no such file or directory")))?;
    let into_dir = match path::resolve(fs, dst.as_bytes(), true) {
        Ok(ino) => fs.getattr(ino)?.file_type == FileType::Directory,
        Err(_) => false,
    };
    let (ddir, dname) = if into_dir {
        (path::resolve(fs, dst.as_bytes(), true)?, sname.clone())
    } else {
        path::resolve_parent(fs, dst.as_bytes())?
    };
    let dst_dir_path: &[u8] = if into_dir {
        dst.as_bytes()
    } else {
        parent_of(dst.as_bytes())
    };
    if path::resolve_chain(fs, dst_dir_path, true)?.contains(&sino) {
        return Err(Error::Invalid(format!("cannot move {src} into itself")));
    }
    fs.rename(sdir, &sname, ddir, &dname)
}

fn parent_of(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    match p[..end].iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &p[..i],
        None => b"",
    }
}
