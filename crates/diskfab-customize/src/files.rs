//! File operations: write, append-line, upload, copy-in, link, chmod, chown, touch.

use crate::ops::two;
use crate::staged::{split, Kind, Meta, Staged};
use crate::Ctx;
use diskfab_storage::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Deepest host directory tree copied in.
const MAX_HOST_DEPTH: u32 = 256;

/// Creates FILE's missing parent directories (root:root 0755), as a user of `--write
/// /etc/app/id:...` expects.
fn ensure_parent(st: &mut Staged, f: &str) -> Result<()> {
    let c = st.canon(f, true)?;
    let (dir, _) = split(&c);
    let dir = dir.to_string();
    st.mkdir_p(&dir, Meta::root(0o755))
}

/// `--write FILE:CONTENT` (missing parent directories are created).
pub fn write(st: &mut Staged, arg: &str) -> Result<()> {
    let (f, content) = two("write", arg, "FILE:CONTENT")?;
    ensure_parent(st, f)?;
    st.write(f, content.as_bytes().to_vec(), None)
}

/// `--append-line FILE:LINE`: adds a missing final newline first, then LINE and a newline.
pub fn append_line(st: &mut Staged, arg: &str) -> Result<()> {
    let (f, line) = two("append-line", arg, "FILE:LINE")?;
    ensure_parent(st, f)?;
    let mut data = st.read(f)?.unwrap_or_default();
    if !data.is_empty() && !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    data.extend_from_slice(line.as_bytes());
    data.push(b'\n');
    st.write(f, data, None)
}

fn into_dir(st: &mut Staged, dest: &str, name: &str) -> Result<String> {
    let c = st.canon(dest, true)?;
    Ok(match st.lstat(&c)?.map(|s| s.kind) {
        Some(Kind::Dir) => format!("{}/{name}", c.trim_end_matches('/')),
        _ => dest.to_string(),
    })
}

fn base_name(p: &str) -> Result<String> {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Invalid(format!("{p}: names no file")))
}

/// `--upload HOSTFILE:DEST`.
pub fn upload(st: &mut Staged, ctx: &mut Ctx, arg: &str) -> Result<()> {
    let (h, dest) = two("upload", arg, "HOSTFILE:DEST")?;
    let len = std::fs::metadata(h)
        .map_err(|e| Error::io(format!("host file {h}"), e))?
        .len();
    let info = st.fs().info()?;
    let free = info.total_bytes.saturating_sub(info.used_bytes);
    if len > free {
        return Err(Error::NoSpace(format!(
            "{h} is {len} bytes; the guest filesystem has {free} bytes free"
        )));
    }
    let data = ctx.host_read(h)?;
    let perm = std::fs::metadata(h)
        .map(|m| m.mode() & 0o7777)
        .unwrap_or(0o644);
    let dest = into_dir(st, dest, &base_name(h)?)?;
    let c = st.canon(&dest, true)?;
    let meta = match st.lstat(&c)? {
        Some(s) => s.meta,
        None => Meta::root(perm),
    };
    st.write(&dest, data, Some(meta))
}

/// `--copy-in HOSTPATH:DIR`: the host file or tree lands inside guest directory DIR.
pub fn copy_in(st: &mut Staged, ctx: &mut Ctx, arg: &str) -> Result<()> {
    let (h, dir) = two("copy-in", arg, "HOSTPATH:DIR")?;
    let dir = st.canon(dir, true)?;
    if !matches!(st.lstat(&dir)?.map(|s| s.kind), Some(Kind::Dir)) {
        return Err(Error::NotFound(format!(
            "{dir}: not a directory in the guest"
        )));
    }
    let dest = format!("{}/{}", dir.trim_end_matches('/'), base_name(h)?);
    copy_host(st, ctx, Path::new(h), &dest, 0)
}

fn copy_host(st: &mut Staged, ctx: &mut Ctx, h: &Path, dest: &str, depth: u32) -> Result<()> {
    if depth > MAX_HOST_DEPTH {
        return Err(Error::Invalid(format!("{}: nested too deep", h.display())));
    }
    let m = std::fs::symlink_metadata(h).map_err(|e| Error::io(h.display().to_string(), e))?;
    let meta = Meta::root(m.mode() & 0o7777);
    if m.file_type().is_symlink() {
        let t = std::fs::read_link(h).map_err(|e| Error::io(h.display().to_string(), e))?;
        return st.symlink(dest, &t.to_string_lossy());
    }
    if m.is_dir() {
        st.mkdir_p(dest, meta)?;
        let mut names: Vec<_> = std::fs::read_dir(h)
            .map_err(|e| Error::io(h.display().to_string(), e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            let d = format!("{dest}/{}", n.to_string_lossy());
            copy_host(st, ctx, &h.join(&n), &d, depth + 1)?;
        }
        return Ok(());
    }
    if m.is_file() {
        let data = ctx.host_read(&h.to_string_lossy())?;
        return st.write(dest, data, Some(meta));
    }
    Err(Error::Unsupported(format!(
        "{}: only files, directories and symlinks are copied in",
        h.display()
    )))
}

/// `--link TARGET:LINK[:LINK...]`.
pub fn link(st: &mut Staged, arg: &str) -> Result<()> {
    let (target, links) = two("link", arg, "TARGET:LINK")?;
    for l in links.split(':') {
        st.symlink(l, target)?;
    }
    Ok(())
}

/// `--chmod PERMS:FILE`.
pub fn chmod(st: &mut Staged, arg: &str) -> Result<()> {
    let (perms, f) = two("chmod", arg, "PERMS:FILE")?;
    let perm = u32::from_str_radix(perms.trim_start_matches("0o"), 8)
        .ok()
        .filter(|p| *p <= 0o7777)
        .ok_or_else(|| Error::Invalid(format!("{perms:?} is not an octal mode like 0644")))?;
    st.set_attr(f, Some(perm), None, None, false)
}

fn id_of(st: &mut Staged, db: &str, v: &str) -> Result<u32> {
    if let Ok(n) = v.parse() {
        return Ok(n);
    }
    let text = st.read_text(db)?.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(v)).then(|| f.nth(1)?.parse().ok())?
        })
        .ok_or_else(|| Error::NotFound(format!("{v:?} is not in the guest's {db}")))
}

/// `--chown UID.GID:FILE` (numbers, or names from the guest's passwd and group).
pub fn chown(st: &mut Staged, arg: &str) -> Result<()> {
    let (owner, f) = two("chown", arg, "UID.GID:FILE")?;
    let (u, g) = owner
        .split_once(['.', ':'])
        .ok_or_else(|| Error::Invalid(format!("{owner:?}: expected UID.GID")))?;
    let uid = id_of(st, "/etc/passwd", u)?;
    let gid = id_of(st, "/etc/group", g)?;
    st.set_attr(f, None, Some(uid), Some(gid), false)
}

/// `--touch FILE`.
pub fn touch(st: &mut Staged, f: &str) -> Result<()> {
    let c = st.canon(f, true)?;
    if st.lstat(&c)?.is_some() {
        st.set_attr(&c, None, None, None, true)
    } else {
        let (dir, _) = split(&c);
        if st.lstat(dir)?.is_none() {
            return Err(Error::NotFound(format!(
                "{dir}: no such directory in the guest"
            )));
        }
        st.write(&c, Vec::new(), None)
    }
}
