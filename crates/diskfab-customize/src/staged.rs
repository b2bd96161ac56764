//! Staged changes. Operations are planned against a read-only view of the guest: every change
//! becomes a path-level [`Action`] and is also visible to later reads through the view, so a
//! sequence of operations sees its own effects. [`apply`] then performs the actions on a
//! writable filesystem. Keeping planning free of I/O makes `--dry-run` exact and lets `stamp`
//! compute each instance's changes without touching a disk.

use diskfab_fs::path;
use diskfab_fs::{FileType, Filesystem, Metadata, Timespec};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Largest file read through the view (passwd, shadow, config files are far smaller).
pub const MAX_READ: u64 = 64 << 20;

/// Owner and permission bits of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Meta {
    /// Permission bits (`& 0o7777`).
    pub perm: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl Meta {
    /// root:root with `perm`.
    pub fn root(perm: u32) -> Meta {
        Meta {
            perm,
            uid: 0,
            gid: 0,
        }
    }
}

/// One planned change, on canonical absolute paths (no symlinks in the parent part).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Create or replace a regular file's content and set its owner and mode.
    Write {
        /// Path.
        path: String,
        /// New content.
        #[serde(serialize_with = "ser_len")]
        data: Vec<u8>,
        /// Owner and mode.
        meta: Meta,
    },
    /// Create a directory.
    Mkdir {
        /// Path.
        path: String,
        /// Owner and mode.
        meta: Meta,
    },
    /// Create a symbolic link (replacing a non-directory).
    Symlink {
        /// Path of the link.
        path: String,
        /// Its target.
        target: String,
    },
    /// Remove a path, recursively.
    Delete {
        /// Path.
        path: String,
    },
    /// Rename a path.
    Rename {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// Change owner, mode or modification time.
    SetAttr {
        /// Path.
        path: String,
        /// New mode.
        perm: Option<u32>,
        /// New owner.
        uid: Option<u32>,
        /// New group.
        gid: Option<u32>,
        /// Set the modification time to the run's clock.
        touch: bool,
    },
}

fn ser_len<S: serde::Serializer>(d: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{} bytes", d.len()))
}

impl Action {
    /// The path the action changes (the destination for renames).
    pub fn path(&self) -> &str {
        match self {
            Action::Write { path, .. }
            | Action::Mkdir { path, .. }
            | Action::Symlink { path, .. }
            | Action::Delete { path }
            | Action::SetAttr { path, .. } => path,
            Action::Rename { to, .. } => to,
        }
    }
}

/// What the view holds for a path that planning changed.
#[derive(Debug, Clone)]
enum Ov {
    Gone,
    File(Vec<u8>, Meta),
    Dir(Meta),
    Link(String),
    /// Moved here from a base path.
    Alias(String),
}

/// The kind of a node seen through the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symlink with its target.
    Link(String),
    /// Device, fifo or socket.
    Other,
}

/// A node seen through the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Kind.
    pub kind: Kind,
    /// Size in bytes (regular files).
    pub size: u64,
    /// Owner and mode.
    pub meta: Meta,
}

enum Where {
    Missing,
    Base(String),
    Staged(Ov),
}

/// The read view over a guest filesystem plus the changes planned so far.
pub struct Staged<'a> {
    fs: &'a mut dyn Filesystem,
    over: BTreeMap<String, Ov>,
    attrs: BTreeMap<String, Meta>,
    actions: Vec<Action>,
}

/// Normalises a guest path: absolute, no empty or `.` components, `..` refused.
pub fn norm(p: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(Error::Invalid(format!(
            "{p:?}: guest paths must be absolute (start with /)"
        )));
    }
    let mut out = String::new();
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(Error::Invalid(format!("{p:?}: '..' is not allowed")));
        }
        path::check_name(c.as_bytes())?;
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `/a/b/c` → (`/a/b`, `c`).
pub fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(0) => ("/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("/", p),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl<'a> Staged<'a> {
    /// A view over `fs` with nothing planned yet.
    pub fn new(fs: &'a mut dyn Filesystem) -> Staged<'a> {
        Staged {
            fs,
            over: BTreeMap::new(),
            attrs: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    /// The planned actions, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Takes the planned actions.
    pub fn into_actions(self) -> Vec<Action> {
        self.actions
    }

    /// The underlying filesystem (read-only use).
    pub fn fs(&mut self) -> &mut dyn Filesystem {
        self.fs
    }

    fn locate(&self, p: &str) -> Where {
        if let Some(o) = self.over.get(p) {
            return match o {
                Ov::Gone => Where::Missing,
                Ov::Alias(src) => Where::Base(src.clone()),
                o => Where::Staged(o.clone()),
            };
        }
        let mut cur = p;
        while cur != "/" {
            let (parent, _) = split(cur);
            if let Some(o) = self.over.get(parent) {
                return match o {
                    Ov::Alias(src) => Where::Base(format!("{src}{}", &p[parent.len()..])),
                    _ => Where::Missing,
                };
            }
            cur = parent;
        }
        Where::Base(p.to_string())
    }

    fn base_stat(&mut self, p: &str) -> Result<Option<(u64, Metadata)>> {
        match path::resolve(self.fs, p.as_bytes(), false) {
            Ok(ino) => Ok(Some((ino, self.fs.getattr(ino)?))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(Error::Failed(m)) if m.contains("not a directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `lstat` through the view, on a canonical path.
    pub fn lstat(&mut self, p: &str) -> Result<Option<Stat>> {
        let st = match self.locate(p) {
            Where::Missing => None,
            Where::Staged(o) => Some(match o {
                Ov::File(d, m) => Stat {
                    kind: Kind::File,
                    size: d.len() as u64,
                    meta: m,
                },
                Ov::Dir(m) => Stat {
                    kind: Kind::Dir,
                    size: 0,
                    meta: m,
                },
                Ov::Link(t) => Stat {
                    size: t.len() as u64,
                    kind: Kind::Link(t),
                    meta: Meta::root(0o777),
                },
                Ov::Gone | Ov::Alias(_) => return Ok(None),
            }),
            Where::Base(b) => match self.base_stat(&b)? {
                None => None,
                Some((ino, m)) => {
                    let kind = match m.file_type {
                        FileType::Regular => Kind::File,
                        FileType::Directory => Kind::Dir,
                        FileType::Symlink => Kind::Link(
                            String::from_utf8_lossy(&self.fs.read_link(ino)?).into_owned(),
                        ),
                        _ => Kind::Other,
                    };
                    Some(Stat {
                        kind,
                        size: m.size,
                        meta: Meta {
                            perm: m.perm,
                            uid: m.uid,
                            gid: m.gid,
                        },
                    })
                }
            },
        };
        Ok(st.map(|mut s| {
            if let Some(m) = self.attrs.get(p) {
                s.meta = *m;
            }
            s
        }))
    }

    /// Resolves symlinks in `p` (all components; the last one only with `follow_last`), inside
    /// the guest. The result is canonical and may not exist.
    pub fn canon(&mut self, p: &str, follow_last: bool) -> Result<String> {
        let mut todo: Vec<String> = norm(p)?
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut cur = String::from("/");
        let mut hops = 0u32;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur = split(&cur).0.to_string();
                continue;
            }
            let next = join(&cur, &c);
            let last = todo.is_empty();
            if last && !follow_last {
                return Ok(next);
            }
            match self.lstat(&next)? {
                Some(Stat {
                    kind: Kind::Link(t),
                    ..
                }) => {
                    hops += 1;
                    if hops > path::MAX_SYMLINK_HOPS {
                        return Err(Error::Failed(format!("{p}: too many levels of symlinks")));
                    }
                    if t.starts_with('/') {
                        cur = "/".into();
                    }
                    for part in t.split('/').filter(|x| !x.is_empty() && *x != ".").rev() {
                        todo.push(part.to_string());
                    }
                }
                _ => cur = next,
            }
        }
        Ok(cur)
    }

    /// Reads a regular file through the view (following symlinks); `None` if missing.
    pub fn read(&mut self, p: &str) -> Result<Option<Vec<u8>>> {
        let p = self.canon(p, true)?;
        match self.locate(&p) {
            Where::Missing => Ok(None),
            Where::Staged(Ov::File(d, _)) => Ok(Some(d)),
            Where::Staged(_) => Err(Error::Failed(format!("{p}: not a regular file"))),
            Where::Base(b) => {
                let Some((ino, m)) = self.base_stat(&b)? else {
                    return Ok(None);
                };
                if m.file_type != FileType::Regular {
                    return Err(Error::Failed(format!("{p}: not a regular file")));
                }
                if m.size > MAX_READ {
                    return Err(Error::Unsupported(format!(
                        "{p}: {} bytes is too large to edit (limit {MAX_READ})",
                        m.size
                    )));
                }
                let mut buf = vec![0u8; m.size as usize];
                let mut off = 0;
                while off < buf.len() {
                    let n = self.fs.read(ino, off as u64, &mut buf[off..])?;
                    if n == 0 {
                        buf.truncate(off);
                        break;
                    }
                    off += n;
                }
                Ok(Some(buf))
            }
        }
    }

    /// Reads a text file as UTF-8 (lossy); `None` if missing.
    pub fn read_text(&mut self, p: &str) -> Result<Option<String>> {
        Ok(self
            .read(p)?
            .map(|d| String::from_utf8_lossy(&d).into_owned()))
    }

    /// Names in a directory through the view.
    pub fn list(&mut self, p: &str) -> Result<Vec<String>> {
        let p = self.canon(p, true)?;
        let mut names: Vec<String> = match self.locate(&p) {
            Where::Base(b) => match self.base_stat(&b)? {
                Some((ino, m)) if m.file_type == FileType::Directory => self
                    .fs
                    .read_dir(ino)?
                    .into_iter()
                    .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let prefix = if p == "/" {
            "/".to_string()
        } else {
            format!("{p}/")
        };
        for (k, _) in self.over.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            if !rest.contains('/') && !names.iter().any(|n| n == rest) {
                names.push(rest.to_string());
            }
        }
        let mut out = Vec::new();
        for n in names {
            if self.lstat(&join(&p, &n))?.is_some() {
                out.push(n);
            }
        }
        out.sort();
        Ok(out)
    }

    fn require_dir(&mut self, dir: &str, p: &str) -> Result<()> {
        match self.lstat(dir)? {
            Some(Stat {
                kind: Kind::Dir, ..
            }) => Ok(()),
            Some(_) => Err(Error::Failed(format!("{p}: {dir} is not a directory"))),
            None => Err(Error::NotFound(format!(
                "{p}: directory {dir} does not exist in the guest"
            ))),
        }
    }

    /// Writes a whole file (following a symlink at `p`). `meta` defaults to the existing
    /// file's, else root:root 0644.
    pub fn write(&mut self, p: &str, data: Vec<u8>, meta: Option<Meta>) -> Result<()> {
        let p = self.canon(p, true)?;
        self.require_dir(split(&p).0, &p)?;
        let old = self.lstat(&p)?;
        if let Some(Stat {
            kind: Kind::Dir, ..
        }) = old
        {
            return Err(Error::Failed(format!("{p}: is a directory")));
        }
        let meta = meta.or(old.map(|s| s.meta)).unwrap_or(Meta::root(0o644));
        self.over.insert(p.clone(), Ov::File(data.clone(), meta));
        self.attrs.remove(&p);
        self.actions.push(Action::Write {
            path: p,
            data,
            meta,
        });
        Ok(())
    }

    /// Creates a directory and missing parents (parents get `meta` too); existing ones stay.
    pub fn mkdir_p(&mut self, p: &str, meta: Meta) -> Result<()> {
        let p = self.canon(p, true)?;
        if p == "/" {
            return Ok(());
        }
        let (parent, _) = split(&p);
        let parent = parent.to_string();
        self.mkdir_p(&parent, meta)?;
        match self.lstat(&p)? {
            Some(Stat {
                kind: Kind::Dir, ..
            }) => Ok(()),
            Some(_) => Err(Error::Exists(format!("{p}: exists and is not a directory"))),
            None => {
                self.over.insert(p.clone(), Ov::Dir(meta));
                self.actions.push(Action::Mkdir { path: p, meta });
                Ok(())
            }
        }
    }

    /// Creates a symlink at `p` (not following `p`), replacing a non-directory.
    pub fn symlink(&mut self, p: &str, target: &str) -> Result<()> {
        let p = self.canon(p, false)?;
        self.require_dir(split(&p).0, &p)?;
        if let Some(Stat {
            kind: Kind::Dir, ..
        }) = self.lstat(&p)?
        {
            return Err(Error::Failed(format!("{p}: is a directory")));
        }
        self.over.insert(p.clone(), Ov::Link(target.to_string()));
        self.actions.push(Action::Symlink {
            path: p,
            target: target.to_string(),
        });
        Ok(())
    }

    /// Removes `p` recursively (not following a final symlink); `Ok(false)` if it was missing.
    pub fn delete(&mut self, p: &str) -> Result<bool> {
        let p = self.canon(p, false)?;
        if p == "/" {
            return Err(Error::Invalid("refusing to delete /".into()));
        }
        if self.lstat(&p)?.is_none() {
            return Ok(false);
        }
        self.drop_under(&p);
        self.over.insert(p.clone(), Ov::Gone);
        self.actions.push(Action::Delete { path: p });
        Ok(true)
    }

    fn drop_under(&mut self, p: &str) {
        let prefix = format!("{p}/");
        let keys: Vec<String> = self
            .over
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.over.remove(&k);
            self.attrs.remove(&k);
        }
        self.attrs.remove(p);
    }

    /// Renames `from` to `to` (a directory `to` receives `from` inside it, like `mv`).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let from = self.canon(from, false)?;
        let mut to = self.canon(to, true)?;
        if self.lstat(&from)?.is_none() {
            return Err(Error::NotFound(format!(
                "{from}: no such file or directory"
            )));
        }
        if let Some(Stat {
            kind: Kind::Dir, ..
        }) = self.lstat(&to)?
        {
            to = join(&to, split(&from).1);
        }
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(Error::Invalid(format!("cannot move {from} into itself")));
        }
        self.require_dir(split(&to).0, &to)?;
        let moved = match self.locate(&from) {
            Where::Base(b) => Ov::Alias(b),
            Where::Staged(o) => o,
            Where::Missing => return Err(Error::NotFound(from)),
        };
        // Staged descendants move along.
        let prefix = format!("{from}/");
        let kids: Vec<(String, Ov)> = self
            .over
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
            .collect();
        let meta = self.attrs.get(&from).copied();
        self.drop_under(&from);
        self.drop_under(&to);
        self.over.insert(from.clone(), Ov::Gone);
        self.over.insert(to.clone(), moved);
        self.over.extend(kids);
        if let Some(m) = meta {
            self.attrs.insert(to.clone(), m);
        }
        self.actions.push(Action::Rename { from, to });
        Ok(())
    }

    /// Changes owner/mode of `p` (following symlinks); `touch` also sets its mtime to the run's
    /// clock.
    pub fn set_attr(
        &mut self,
        p: &str,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        touch: bool,
    ) -> Result<()> {
        let p = self.canon(p, true)?;
        let Some(st) = self.lstat(&p)? else {
            return Err(Error::NotFound(format!("{p}: no such file or directory")));
        };
        let meta = Meta {
            perm: perm.unwrap_or(st.meta.perm),
            uid: uid.unwrap_or(st.meta.uid),
            gid: gid.unwrap_or(st.meta.gid),
        };
        match self.over.get_mut(&p) {
            Some(Ov::File(_, m)) | Some(Ov::Dir(m)) => *m = meta,
            _ => {
                self.attrs.insert(p.clone(), meta);
            }
        }
        self.actions.push(Action::SetAttr {
            path: p,
            perm,
            uid,
            gid,
            touch,
        });
        Ok(())
    }
}

/// Performs `actions` on a writable filesystem, in order. `clock` stamps new and changed nodes.
/// When the guest uses SELinux, every node created, replaced or moved gets the label its
/// policy gives the path (see [`crate::labels`]; the policy is read once, before the first
/// action).
pub fn apply(fs: &mut dyn Filesystem, actions: &[Action], clock: Option<Timespec>) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let labeler = crate::labels::Labeler::load(fs)?;
    for a in actions {
        apply_one(fs, a, clock).map_err(|e| e.context(a.path()))?;
        if let Some(l) = &labeler {
            l.after(fs, a).map_err(|e| e.context(a.path()))?;
        }
    }
    Ok(())
}

fn node(meta: Meta, clock: Option<Timespec>) -> diskfab_fs::NewNode {
    diskfab_fs::NewNode {
        perm: meta.perm,
        uid: meta.uid,
        gid: meta.gid,
        time: clock,
    }
}

fn apply_one(fs: &mut dyn Filesystem, a: &Action, clock: Option<Timespec>) -> Result<()> {
    use diskfab_fs::SetAttr;
    match a {
        Action::Write {
            path: p,
            data,
            meta,
        } => {
            let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
            let ino = match fs.lookup(dir, &name)? {
                Some(ino) if fs.getattr(ino)?.file_type == FileType::Regular => {
                    fs.set_attr(
                        ino,
                        &SetAttr {
                            size: Some(0),
                            ..Default::default()
                        },
                    )?;
                    ino
                }
                Some(ino) => {
                    diskfab_fs::tree::remove_entry(fs, dir, &name, ino)?;
                    fs.create(dir, &name, &node(*meta, clock))?
                }
                None => fs.create(dir, &name, &node(*meta, clock))?,
            };
            if !data.is_empty() {
                fs.write(ino, 0, data)?;
            }
            fs.set_attr(
                ino,
                &SetAttr {
                    perm: Some(meta.perm),
                    uid: Some(meta.uid),
                    gid: Some(meta.gid),
                    mtime: clock,
                    atime: clock,
                    ..Default::default()
                },
            )
        }
        Action::Mkdir { path: p, meta } => {
            let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
            if fs.lookup(dir, &name)?.is_none() {
                fs.mkdir(dir, &name, &node(*meta, clock))?;
            }
            Ok(())
        }
        Action::Symlink { path: p, target } => {
            let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
            if let Some(ino) = fs.lookup(dir, &name)? {
                fs.unlink(dir, &name)
                    .map_err(|e| e.context(format!("replacing inode {ino}")))?;
            }
            fs.symlink(
                dir,
                &name,
                target.as_bytes(),
                &node(Meta::root(0o777), clock),
            )?;
            Ok(())
        }
        Action::Delete { path: p } => {
            let (dir, name) = path::resolve_parent(fs, p.as_bytes())?;
            if let Some(ino) = fs.lookup(dir, &name)? {
                diskfab_fs::tree::remove_entry(fs, dir, &name, ino)?;
            }
            Ok(())
        }
        Action::Rename { from, to } => {
            let (d1, n1) = path::resolve_parent(fs, from.as_bytes())?;
            let (d2, n2) = path::resolve_parent(fs, to.as_bytes())?;
            fs.rename(d1, &n1, d2, &n2)
        }
        Action::SetAttr {
            path: p,
            perm,
            uid,
            gid,
            touch,
        } => {
            let ino = path::resolve(fs, p.as_bytes(), true)?;
            fs.set_attr(
                ino,
                &SetAttr {
                    perm: *perm,
                    uid: *uid,
                    gid: *gid,
                    mtime: if *touch {
                        clock.or(Some(real_now()))
                    } else {
                        None
                    },
                    ..Default::default()
                },
            )
        }
    }
}

/// The real clock.
pub fn real_now() -> Timespec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}
