//! `delta apply`: verify the whole delta, check every pre-image against the target, then
//! apply. Paths from a delta are never trusted: `..`, `.`, empty and NUL components are
//! refused, no path may pass through a symlink (which could lead elsewhere in the guest), and
//! device nodes are refused unless allowed. The caller runs this on a revocable device and
//! commits only after `Ok`.

use crate::create::pre_of;
use crate::format::{read, unhex, Entry};
use crate::tree::unshow;
use diskfab_fs::{path, FileType, Filesystem, Ino, NewNode, SetAttr, Timespec};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};

/// How to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Only report conflicts.
    pub check: bool,
    /// Apply despite conflicts.
    pub force: bool,
    /// Allow creating device nodes.
    pub allow_devices: bool,
}

/// A path whose current state is not what the delta expects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Conflict {
    /// Path.
    pub path: String,
    /// What differs.
    pub reason: String,
}

/// What `delta apply` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Records in the delta.
    pub records: u64,
    /// Conflicts found.
    pub conflicts: Vec<Conflict>,
    /// True when the changes were applied.
    pub applied: bool,
    /// Content bytes written.
    pub bytes: u64,
}

/// Checks a delta path and splits it into raw components.
pub fn safe_components(p: &str) -> Result<Vec<Vec<u8>>> {
    let raw = unshow(p)?;
    if raw.first() != Some(&b'/') || raw.len() > path::MAX_PATH {
        return Err(Error::Invalid(format!(
            "delta path {p:?} is not an absolute guest path"
        )));
    }
    let comps: Vec<Vec<u8>> = raw[1..].split(|b| *b == b'/').map(<[u8]>::to_vec).collect();
    for c in &comps {
        if c.is_empty() || c == b"." || c == b".." || c.contains(&0) || c.len() > 255 {
            return Err(Error::Invalid(format!(
                "delta path {p:?} has an unsafe component"
            )));
        }
    }
    Ok(comps)
}

/// Looks a path up without following any symlink; `Err` if a parent is a symlink or not a
/// directory. Returns (parent dir, name, node if present).
fn locate(fs: &mut dyn Filesystem, p: &str) -> Result<(Ino, Vec<u8>, Option<Ino>)> {
    let comps = safe_components(p)?;
    let Some((last, parents)) = comps.split_last() else {
        return Err(Error::Invalid("the delta names the root itself".into()));
    };
    let mut dir = fs.root();
    for c in parents {
        let ino = fs.lookup(dir, c)?.ok_or_else(|| {
            Error::NotFound(format!("{p}: parent directory missing in the target"))
        })?;
        let t = fs.getattr(ino)?.file_type;
        if t == FileType::Symlink {
            return Err(Error::Invalid(format!(
                "{p}: a parent is a symlink; refusing to follow it"
            )));
        }
        if t != FileType::Directory {
            return Err(Error::Failed(format!("{p}: a parent is not a directory")));
        }
        dir = ino;
    }
    let here = fs.lookup(dir, last)?;
    Ok((dir, last.clone(), here))
}

fn conflict(fs: &mut dyn Filesystem, e: &Entry) -> Result<Option<String>> {
    let here = match locate(fs, &e.path) {
        Ok((_, _, h)) => h,
        Err(Error::NotFound(_)) if e.pre.is_none() => None,
        Err(x) => return Ok(Some(x.to_string())),
    };
    if e.op == "put"
        && e.kind
            .as_deref()
            .is_some_and(|k| k == "char" || k == "block")
    {
        return Ok(Some("device node".into()));
    }
    Ok(match (&e.pre, here) {
        (None, None) => None,
        (None, Some(_)) => Some("exists, but the delta adds it".into()),
        (Some(_), None) => Some("missing".into()),
        (Some(want), Some(ino)) => {
            let n = crate::tree::node(fs, ino, false)?;
            let have = pre_of(fs, &n)?;
            (have != *want).then(|| {
                if have.kind != want.kind {
                    format!("is a {}, expected a {}", have.kind, want.kind)
                } else if have.hash != want.hash || have.target != want.target {
                    "content differs from what the delta expects".into()
                } else {
                    format!(
                        "mode/owner {:o} {}:{} (expected {:o} {}:{})",
                        have.perm, have.uid, have.gid, want.perm, want.uid, want.gid
                    )
                }
            })
        }
    })
}

/// Applies the delta in `r` to `fs`. With conflicts and no `force`, or with `check`, nothing is
/// changed.
pub fn apply<R: Read + Seek>(
    fs: &mut dyn Filesystem,
    mut r: R,
    opts: ApplyOptions,
) -> Result<ApplyReport> {
    let mut rep = ApplyReport::default();
    // Pass 1: the whole file is intact.
    read(&mut r, |_, _| Ok(()))?;
    // Pass 2: pre-images and paths.
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the delta", e))?;
    let mut removed: Vec<String> = Vec::new();
    read(&mut r, |e, _| {
        rep.records += 1;
        safe_components(&e.path)?;
        if e.op == "remove" {
            removed.push(e.path.clone());
        } else if e.pre.is_none()
            && removed
                .iter()
                .any(|x| e.path == *x || e.path.starts_with(&format!("{x}/")))
        {
            // Re-created after this delta removes it (a type change): nothing to compare.
            return Ok(());
        }
        if let Some(reason) = conflict(fs, e)? {
            let device = reason == "device node";
            if !device || !opts.allow_devices {
                rep.conflicts.push(Conflict {
                    path: e.path.clone(),
                    reason,
                });
            }
        }
        Ok(())
    })?;
    // Unsafe paths and device nodes always stop here; other conflicts unless forced.
    let hard = rep.conflicts.iter().any(|c| {
        c.reason == "device node" || c.reason.contains("symlink") || c.reason.contains("unsafe")
    });
    if opts.check || hard || (!rep.conflicts.is_empty() && !opts.force) {
        return Ok(rep);
    }
    // Pass 3: apply.
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the delta", e))?;
    let mut dirs: Vec<(String, Entry)> = Vec::new();
    read(&mut r, |e, data| {
        rep.bytes += data.remaining();
        one(fs, e, data, opts)?;
        if e.kind.as_deref() == Some("dir") || (e.op == "meta" && e.mtime.is_some()) {
            dirs.push((e.path.clone(), e.clone()));
        }
        Ok(())
    })?;
    // Directory times last: adding children changed them.
    for (p, e) in dirs.iter().rev() {
        if let Ok((_, _, Some(ino))) = locate(fs, p) {
            set_meta(fs, ino, e)?;
        }
    }
    rep.applied = true;
    Ok(rep)
}

fn node_attr(e: &Entry) -> NewNode {
    NewNode {
        perm: e.perm.unwrap_or(0o644),
        uid: e.uid.unwrap_or(0),
        gid: e.gid.unwrap_or(0),
        time: e.mtime.map(|(sec, nsec)| Timespec { sec, nsec }),
    }
}

fn set_meta(fs: &mut dyn Filesystem, ino: Ino, e: &Entry) -> Result<()> {
    let t = e.mtime.map(|(sec, nsec)| Timespec { sec, nsec });
    let is_link = fs.getattr(ino)?.file_type == FileType::Symlink;
    fs.set_attr(
        ino,
        &SetAttr {
            perm: if is_link { None } else { e.perm },
            uid: e.uid,
            gid: e.gid,
            mtime: t,
            atime: t,
            ..Default::default()
        },
    )?;
    if let Some(want) = &e.xattrs {
        let want: Vec<(Vec<u8>, Vec<u8>)> = want
            .iter()
            .map(|(k, v)| Ok((unhex(k)?, unhex(v)?)))
            .collect::<Result<_>>()?;
        for (k, _) in fs.list_xattrs(ino)? {
            if !want.iter().any(|(w, _)| *w == k) {
                fs.remove_xattr(ino, &k)?;
            }
        }
        for (k, v) in &want {
            fs.set_xattr(ino, k, v)?;
        }
    }
    Ok(())
}

fn one<R: Read>(
    fs: &mut dyn Filesystem,
    e: &Entry,
    data: &mut crate::format::Data<'_, R>,
    opts: ApplyOptions,
) -> Result<()> {
    let (dir, name, here) = locate(fs, &e.path)?;
    match e.op.as_str() {
        "remove" => {
            if let Some(ino) = here {
                diskfab_fs::tree::remove_entry(fs, dir, &name, ino)?;
            }
            Ok(())
        }
        "meta" => {
            let ino = here.ok_or_else(|| Error::NotFound(format!("{}: missing", e.path)))?;
            set_meta(fs, ino, e)
        }
        "put" => put(fs, e, data, opts, dir, &name, here),
        other => Err(Error::bad(format!("unknown delta op {other}"))),
    }
}

fn put<R: Read>(
    fs: &mut dyn Filesystem,
    e: &Entry,
    data: &mut crate::format::Data<'_, R>,
    opts: ApplyOptions,
    dir: Ino,
    name: &[u8],
    here: Option<Ino>,
) -> Result<()> {
    let kind = e.kind.as_deref().unwrap_or("");
    // Replace what is there unless it is a directory staying a directory.
    let keep_dir = kind == "dir"
        && here.is_some_and(|i| {
            fs.getattr(i)
                .is_ok_and(|m| m.file_type == FileType::Directory)
        });
    if let (Some(ino), false) = (here, keep_dir) {
        diskfab_fs::tree::remove_entry(fs, dir, name, ino)?;
    }
    if let Some(l) = &e.link {
        let (_, _, src) = locate(fs, l)?;
        let src =
            src.ok_or_else(|| Error::NotFound(format!("{}: link source {l} missing", e.path)))?;
        return fs.link(src, dir, name);
    }
    let attr = node_attr(e);
    let ino = match kind {
        "file" => {
            let ino = fs.create(dir, name, &attr)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0u64;
            loop {
                let n = data.read(&mut buf).map_err(|x| Error::bad(x.to_string()))?;
                if n == 0 {
                    break;
                }
                fs.write(ino, off, &buf[..n])?;
                off += n as u64;
            }
            ino
        }
        "dir" => match here.filter(|_| keep_dir) {
            Some(i) => i,
            None => fs.mkdir(dir, name, &attr)?,
        },
        "symlink" => {
            let t = unshow(e.target.as_deref().unwrap_or(""))?;
            fs.symlink(dir, name, &t, &attr)?
        }
        "fifo" | "socket" => {
            let t = if kind == "fifo" {
                FileType::Fifo
            } else {
                FileType::Socket
            };
            fs.mknod(dir, name, t, (0, 0), &attr)?
        }
        "char" | "block" if opts.allow_devices => {
            let t = if kind == "char" {
                FileType::CharDevice
            } else {
                FileType::BlockDevice
            };
            fs.mknod(dir, name, t, e.rdev.unwrap_or((0, 0)), &attr)?
        }
        other => {
            return Err(Error::Invalid(format!(
                "{}: cannot create a {other:?}",
                e.path
            )))
        }
    };
    set_meta(fs, ino, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_delta_paths_are_refused() {
        for p in ["etc/x", "/etc/../x", "/./x", "//x", "/a/\\x00b", "/"] {
            assert!(safe_components(p).is_err() || p == "/", "{p}");
        }
        assert!(safe_components("/").is_err());
        assert_eq!(
            safe_components("/etc/x").unwrap(),
            vec![b"etc".to_vec(), b"x".to_vec()]
        );
    }
}
