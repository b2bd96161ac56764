//! The guest tree materialised on the host for the sandbox, and the changes a command made
//! to it turned back into staged actions.

use crate::staged::{Action, Meta};
use diskfab_fs::{FileType, Filesystem, Ino};
use diskfab_storage::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

/// Host state of one exported path, to see what the command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ino: u64,
}

fn snap(m: &std::fs::Metadata) -> Snap {
    Snap {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ino: m.ino(),
    }
}

/// The export of a guest tree: what each path looked like on the host afterwards.
#[derive(Debug, Default)]
pub struct Exported {
    /// Path → state right after the export.
    pub before: BTreeMap<String, Snap>,
    /// Device nodes that could not be created (not root): never reported as deleted.
    pub skipped: Vec<String>,
    /// When diskfab is not root, host files belong to this uid/gid, which is root inside.
    pub caller: Option<(u32, u32)>,
}

/// Writes the whole guest tree of `fs` under `host`.
pub fn export_tree(fs: &mut dyn Filesystem, host: &Path) -> Result<Exported> {
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut ex = Exported {
        // SAFETY: no preconditions.
        caller: (euid != 0).then(|| (euid, unsafe { libc::getegid() })),
        ..Exported::default()
    };
    let top = fs.root();
    export(fs, top, host, "", &mut ex, 0)?;
    Ok(ex)
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Invalid("NUL in a path".into()))
}

fn export(
    fs: &mut dyn Filesystem,
    dir: Ino,
    host: &Path,
    guest: &str,
    ex: &mut Exported,
    depth: u32,
) -> Result<()> {
    if depth > 256 {
        return Err(Error::BadImage("directories nested too deep".into()));
    }
    for e in fs.read_dir(dir)? {
        let name = std::ffi::OsStr::from_bytes(&e.name);
        let hp = host.join(name);
        let gp = format!("{guest}/{}", String::from_utf8_lossy(&e.name));
        let m = fs.getattr(e.ino)?;
        match m.file_type {
            FileType::Directory => {
                std::fs::create_dir(&hp).map_err(|er| Error::io(gp.clone(), er))?;
                export(fs, e.ino, &hp, &gp, ex, depth + 1)?;
            }
            FileType::Regular => {
                let mut f = std::fs::File::create(&hp).map_err(|er| Error::io(gp.clone(), er))?;
                let mut buf = vec![0u8; 1 << 20];
                let mut off = 0u64;
                loop {
                    let n = fs.read(e.ino, off, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut f, &buf[..n])
                        .map_err(|er| Error::io(gp.clone(), er))?;
                    off += n as u64;
                }
            }
            FileType::Symlink => {
                let t = fs.read_link(e.ino)?;
                symlink(std::ffi::OsStr::from_bytes(&t), &hp)
                    .map_err(|er| Error::io(gp.clone(), er))?;
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                let dev = libc::makedev(m.rdev.0, m.rdev.1);
                let c = cpath(&hp)?;
                // SAFETY: valid C path; mknod has no memory preconditions.
                if unsafe { libc::mknod(c.as_ptr(), m.mode() as libc::mode_t, dev) } != 0 {
                    let e = std::io::Error::last_os_error();
                    if ex.caller.is_some() && e.raw_os_error() == Some(libc::EPERM) {
                        ex.skipped.push(gp);
                        continue;
                    }
                    return Err(Error::io(gp, e));
                }
            }
            FileType::Socket => continue,
        }
        let c = cpath(&hp)?;
        // SAFETY: valid C path.
        unsafe { libc::lchown(c.as_ptr(), m.uid, m.gid) };
        if m.file_type != FileType::Symlink {
            // chmod after chown: chown clears setuid bits.
            // SAFETY: valid C path.
            unsafe { libc::chmod(c.as_ptr(), m.perm as libc::mode_t) };
        }
        let hm = std::fs::symlink_metadata(&hp).map_err(|er| Error::io(gp.clone(), er))?;
        ex.before.insert(gp, snap(&hm));
    }
    Ok(())
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut BTreeMap<String, (PathBuf, std::fs::Metadata)>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(&rel[1..])
    };
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    for e in rd {
        let e = e.map_err(|er| Error::io(dir.display().to_string(), er))?;
        let gp = format!("{rel}/{}", e.file_name().to_string_lossy());
        let m = std::fs::symlink_metadata(e.path()).map_err(|er| Error::io(gp.clone(), er))?;
        let is_dir = m.is_dir();
        out.insert(gp.clone(), (e.path(), m));
        if is_dir {
            walk(root, &gp, out)?;
        }
    }
    Ok(())
}

/// Turns the differences between the export and the tree after the command into actions.
pub fn collect(root: &Path, ex: &Exported) -> Result<Vec<Action>> {
    let before = &ex.before;
    let mut after = BTreeMap::new();
    walk(root, "", &mut after)?;
    let mut actions = Vec::new();
    // Deletions first (deepest paths are covered by deleting their top-most removed parent).
    let mut gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    gone.retain(|g| !ex.skipped.contains(g));
    gone.sort();
    let mut last: Option<&String> = None;
    for g in gone {
        if last.is_some_and(|l| g.starts_with(&format!("{l}/"))) {
            continue;
        }
        actions.push(Action::Delete { path: g.clone() });
        last = Some(g);
    }
    for (gp, (hp, m)) in &after {
        let now = snap(m);
        let old = before.get(gp);
        if old == Some(&now) {
            continue;
        }
        let meta = Meta {
            perm: m.mode() & 0o7777,
            uid: inside(m.uid(), ex.caller.map(|c| c.0)),
            gid: inside(m.gid(), ex.caller.map(|c| c.1)),
        };
        let same_type = old.is_some_and(|o| o.mode & 0o170000 == now.mode & 0o170000);
        let ft = m.file_type();
        let meta_same =
            old.is_some_and(|o| o.mode == now.mode && o.uid == now.uid && o.gid == now.gid);
        if ft.is_dir() {
            if same_type {
                if !meta_same {
                    actions.push(set_meta(gp, meta));
                }
            } else {
                if old.is_some() {
                    actions.push(Action::Delete { path: gp.clone() });
                }
                actions.push(Action::Mkdir {
                    path: gp.clone(),
                    meta,
                });
            }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(hp).map_err(|e| Error::io(gp.clone(), e))?;
            actions.push(Action::Symlink {
                path: gp.clone(),
                target: t.to_string_lossy().into_owned(),
            });
        } else if ft.is_file() {
            let content_same = same_type
                && old.is_some_and(|o| {
                    o.size == now.size && o.mtime == now.mtime && o.ino == now.ino
                });
            if content_same {
                if !meta_same {
                    actions.push(set_meta(gp, meta));
                }
            } else {
                let data = std::fs::read(hp).map_err(|e| Error::io(gp.clone(), e))?;
                actions.push(Action::Write {
                    path: gp.clone(),
                    data,
                    meta,
                });
            }
        }
        // New device nodes, fifos and sockets made by a command are not copied back.
    }
    Ok(actions)
}

fn set_meta(p: &str, m: Meta) -> Action {
    Action::SetAttr {
        path: p.to_string(),
        perm: Some(m.perm),
        uid: Some(m.uid),
        gid: Some(m.gid),
        touch: false,
    }
}

/// A host id as the guest saw it: the unprivileged caller is root inside.
fn inside(id: u32, caller: Option<u32>) -> u32 {
    if caller == Some(id) {
        0
    } else {
        id
    }
}
