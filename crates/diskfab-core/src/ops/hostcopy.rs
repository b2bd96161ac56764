//! Copies between the host and a filesystem inside an image (copy-in / copy-out).
//!
//! Copy-in keeps modes, owners, times, symlinks, hard links, device nodes and xattrs, and
//! writes sparse files sparsely. Copy-out treats the image as hostile: names are validated,
//! host paths are never followed through symlinks, setuid/setgid bits and ownership are only
//! kept when running as root, device nodes are skipped, and only `user.*` xattrs are copied.

use super::xattr_host;
use diskfab_fs::path::{self, display, display_escaped};
use diskfab_fs::tree::{self, Step, Visit, Visitor};
use diskfab_fs::{FileType, Filesystem, Ino, NewNode, SetAttr, Timespec};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a copy did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CopyReport {
    /// Regular files copied.
    pub files: u64,
    /// Directories created or merged.
    pub dirs: u64,
    /// Symlinks copied.
    pub symlinks: u64,
    /// Hard links recreated.
    pub hardlinks: u64,
    /// Device nodes, fifos and sockets copied.
    pub special: u64,
    /// Bytes of file content copied.
    pub bytes: u64,
    /// Entries skipped, with the reason.
    pub skipped: Vec<String>,
}

const CHUNK: usize = 1 << 20;
const MAX_DEPTH: usize = 4096;

/// Copies host paths `srcs` into the directory `dest` of the filesystem.
pub fn copy_in(
    fs: &mut dyn Filesystem,
    srcs: &[&Path],
    dest: &str,
    progress: &dyn Fn(u64),
) -> Result<CopyReport> {
    let dir = path::resolve(fs, dest.as_bytes(), true)?;
    if fs.getattr(dir)?.file_type != FileType::Directory {
        return Err(Error::Failed(format!("{dest}: not a directory")));
    }
    let mut cx = InCtx {
        links: HashMap::new(),
        report: CopyReport::default(),
        progress,
    };
    for src in srcs {
        let name = src
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .or_else(|| {
                fs::canonicalize(src)
                    .ok()?
                    .file_name()
                    .map(|n| n.as_bytes().to_vec())
            })
            .ok_or_else(|| Error::Invalid(format!("{}: has no file name", src.display())))?;
        cx.copy_node(fs, src, dir, &name, 0)?;
    }
    Ok(cx.report)
}

struct InCtx<'a> {
    links: HashMap<(u64, u64), Ino>,
    report: CopyReport,
    progress: &'a dyn Fn(u64),
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

impl InCtx<'_> {
    fn copy_node(
        &mut self,
        fs: &mut dyn Filesystem,
        src: &Path,
        dir: Ino,
        name: &[u8],
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::Failed(format!("{}: nested too deep", src.display())));
        }
        path::check_name(name)?;
        let m =
            fs::symlink_metadata(src).map_err(|e| Error::io(format!("{}", src.display()), e))?;
        let ft = m.file_type();
        let attr = NewNode {
            perm: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            time: Some(ts(m.mtime(), m.mtime_nsec())),
        };
        let existing = fs.lookup(dir, name)?;
        if ft.is_dir() {
            let ino = match existing {
                Some(ino) if fs.getattr(ino)?.file_type == FileType::Directory => ino,
                Some(_) => {
                    fs.unlink(dir, name)?;
                    fs.mkdir(dir, name, &attr)?
                }
                None => fs.mkdir(dir, name, &attr)?,
            };
            self.report.dirs += 1;
            let mut entries: Vec<_> = fs::read_dir(src)
                .map_err(|e| Error::io(format!("{}", src.display()), e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::io(format!("{}", src.display()), e))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                self.copy_node(fs, &e.path(), ino, e.file_name().as_bytes(), depth + 1)?;
            }
            return self.finish(fs, ino, src, &m);
        }
        if let Some(ino) = existing {
            if fs.getattr(ino)?.file_type == FileType::Directory {
                return Err(Error::Exists(format!(
                    "{}: a directory of that name exists in the image",
                    src.display()
                )));
            }
            fs.unlink(dir, name)?;
        }
        if m.nlink() > 1 {
            if let Some(&ino) = self.links.get(&(m.dev(), m.ino())) {
                fs.link(ino, dir, name)?;
                self.report.hardlinks += 1;
                return Ok(());
            }
        }
        let ino = if ft.is_file() {
            let ino = fs.create(dir, name, &attr)?;
            self.copy_content(fs, src, ino)?;
            self.report.files += 1;
            ino
        } else if ft.is_symlink() {
            let target =
                fs::read_link(src).map_err(|e| Error::io(format!("{}", src.display()), e))?;
            self.report.symlinks += 1;
            fs.symlink(dir, name, target.as_os_str().as_bytes(), &attr)?
        } else {
            let ftype = FileType::from_mode(m.mode())
                .ok_or_else(|| Error::Failed(format!("{}: unknown file type", src.display())))?;
            let rdev = m.rdev();
            self.report.special += 1;
            fs.mknod(
                dir,
                name,
                ftype,
                (libc::major(rdev), libc::minor(rdev)),
                &attr,
            )?
        };
        if m.nlink() > 1 {
            self.links.insert((m.dev(), m.ino()), ino);
        }
        self.finish(fs, ino, src, &m)
    }

    /// Copies xattrs and sets times last (writing content or entries changes mtime).
    fn finish(
        &mut self,
        fs: &mut dyn Filesystem,
        ino: Ino,
        src: &Path,
        m: &fs::Metadata,
    ) -> Result<()> {
        for (k, v) in xattr_host::list(src)? {
            match fs.set_xattr(ino, &k, &v) {
                Ok(()) => {}
                Err(Error::Unsupported(_)) => {
                    self.report
                        .skipped
                        .push(format!("{}: xattr {}", src.display(), display(&k)));
                }
                Err(e) => return Err(e),
            }
        }
        fs.set_attr(
            ino,
            &SetAttr {
                perm: Some(m.mode() & 0o7777),
                uid: Some(m.uid()),
                gid: Some(m.gid()),
                atime: Some(ts(m.atime(), m.atime_nsec())),
                mtime: Some(ts(m.mtime(), m.mtime_nsec())),
                ..Default::default()
            },
        )
        .or_else(|e| match e {
            // FAT cannot store owners: keep the content, note it.
            Error::Unsupported(_) => {
                self.report
                    .skipped
                    .push(format!("{}: owner/mode", src.display()));
                Ok(())
            }
            e => Err(e),
        })
    }

    fn copy_content(&mut self, fs: &mut dyn Filesystem, src: &Path, ino: Ino) -> Result<()> {
        let mut f = File::open(src).map_err(|e| Error::io(format!("{}", src.display()), e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf)
                .map_err(|e| Error::io(format!("{}", src.display()), e))?;
            if n == 0 {
                break;
            }
            // All-zero chunks become holes: the file stays sparse.
            if buf[..n].iter().any(|&b| b != 0) {
                fs.write(ino, off, &buf[..n])?;
            }
            off += n as u64;
            self.report.bytes += n as u64;
            (self.progress)(n as u64);
        }
        fs.set_attr(
            ino,
            &SetAttr {
                size: Some(off),
                ..Default::default()
            },
        )
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies filesystem paths `srcs` (not following a final symlink) into host directory `dest`.
pub fn copy_out(
    fs: &mut dyn Filesystem,
    srcs: &[&str],
    dest: &Path,
    progress: &dyn Fn(u64),
) -> Result<CopyReport> {
    let dm = fs::symlink_metadata(dest).map_err(|e| Error::io(format!("{}", dest.display()), e))?;
    if !dm.is_dir() {
        return Err(Error::Failed(format!(
            "{}: not a directory",
            dest.display()
        )));
    }
    let mut cx = OutCtx {
        report: CopyReport::default(),
        root: unsafe { libc::geteuid() } == 0,
        progress,
    };
    for src in srcs {
        let ino = path::resolve(fs, src.as_bytes(), false)?;
        let name = src
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or("root");
        let dst = dest.join(name);
        if cx.copy_node(fs, ino, src.as_bytes(), &dst)? == Step::Into {
            let mut w = OutWalk {
                cx: &mut cx,
                dirs: vec![dst.clone()],
            };
            tree::walk(fs, ino, src.as_bytes(), &mut w)?;
            let m = fs.getattr(ino)?;
            cx.apply_meta(fs, ino, &m, &dst)?;
        }
    }
    Ok(cx.report)
}

struct OutCtx<'a> {
    report: CopyReport,
    root: bool,
    progress: &'a dyn Fn(u64),
}

/// Drives [`OutCtx`] over the shared walker: `dirs` holds the host directory of each level.
struct OutWalk<'c, 'a> {
    cx: &'c mut OutCtx<'a>,
    dirs: Vec<PathBuf>,
}

impl Visitor for OutWalk<'_, '_> {
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        // Names come from a hostile image: one safe component each.
        if path::check_name(&v.entry.name).is_err() {
            let dir = &v.path[..v.path.len() - v.entry.name.len()];
            self.cx.report.skipped.push(format!(
                "{}: bad name {:?}",
                display_escaped(
                    dir.strip_suffix(b"/")
                        .filter(|d| !d.is_empty())
                        .unwrap_or(dir)
                ),
                display(&v.entry.name)
            ));
            return Ok(Step::Over);
        }
        let parent = self.dirs.last().cloned().unwrap_or_default();
        let dst = parent.join(OsStr::from_bytes(&v.entry.name));
        let step = self.cx.copy_node(fs, v.entry.ino, &v.path, &dst)?;
        if step == Step::Into {
            self.dirs.push(dst);
        }
        Ok(step)
    }

    fn leave(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<()> {
        let dst = self.dirs.pop().unwrap_or_default();
        let m = fs.getattr(v.entry.ino)?;
        self.cx.apply_meta(fs, v.entry.ino, &m, &dst)
    }
}

impl OutCtx<'_> {
    /// Copies one node; a directory is only created (its entries come from the walker, its
    /// metadata is applied after them) and answered with [`Step::Into`].
    fn copy_node(
        &mut self,
        fs: &mut dyn Filesystem,
        ino: Ino,
        src: &[u8],
        dst: &Path,
    ) -> Result<Step> {
        let m = fs.getattr(ino)?;
        let io = |e| Error::io(format!("{}", dst.display()), e);
        match m.file_type {
            FileType::Directory => {
                match fs::symlink_metadata(dst) {
                    Ok(h) if h.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::Exists(format!(
                            "{}: exists and is not a directory",
                            dst.display()
                        )))
                    }
                    Err(_) => fs::create_dir(dst).map_err(io)?,
                }
                self.report.dirs += 1;
                return Ok(Step::Into);
            }
            FileType::Regular => {
                self.copy_file(fs, ino, dst)?;
                self.report.files += 1;
            }
            FileType::Symlink => {
                let t = fs.read_link(ino)?;
                remove_non_dir(dst)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&t), dst).map_err(io)?;
                self.report.symlinks += 1;
                return Ok(Step::Over); // no chmod/utimes through a symlink
            }
            FileType::Fifo => {
                remove_non_dir(dst)?;
                let c = std::ffi::CString::new(dst.as_os_str().as_bytes())
                    .map_err(|_| Error::Invalid("NUL in path".into()))?;
                // SAFETY: valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(io(std::io::Error::last_os_error()));
                }
                self.report.special += 1;
            }
            _ => {
                self.report.skipped.push(format!(
                    "{}: device node or socket not copied out",
                    display_escaped(src)
                ));
                return Ok(Step::Over);
            }
        }
        self.apply_meta(fs, ino, &m, dst)?;
        Ok(Step::Over)
    }

    fn copy_file(&mut self, fs: &mut dyn Filesystem, ino: Ino, dst: &Path) -> Result<()> {
        let io = |e| Error::io(format!("{}", dst.display()), e);
        remove_non_dir(dst)?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(dst)
            .map_err(io)?;
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        use std::os::unix::fs::FileExt;
        loop {
            let n = fs.read(ino, off, &mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                f.write_all_at(&buf[..n], off).map_err(io)?;
            }
            off += n as u64;
            self.report.bytes += n as u64;
            (self.progress)(n as u64);
        }
        f.set_len(off).map_err(io)
    }

    fn apply_meta(
        &mut self,
        fs: &mut dyn Filesystem,
        ino: Ino,
        m: &diskfab_fs::Metadata,
        dst: &Path,
    ) -> Result<()> {
        let io = |e| Error::io(format!("{}", dst.display()), e);
        if self.root {
            std::os::unix::fs::lchown(dst, Some(m.uid), Some(m.gid)).map_err(io)?;
        }
        let perm = if self.root {
            m.perm & 0o7777
        } else {
            m.perm & 0o1777
        };
        fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(perm)).map_err(io)?;
        for (k, v) in fs.list_xattrs(ino)? {
            if k.starts_with(b"user.") {
                xattr_host::set(dst, &k, &v)?;
            }
        }
        xattr_host::set_times(dst, m.atime, m.mtime)
    }
}

/// Removes a host file or symlink standing where we are about to create one (never a directory).
fn remove_non_dir(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(Error::Exists(format!(
            "{}: is a directory on the host",
            p.display()
        ))),
        Ok(_) => fs::remove_file(p).map_err(|e| Error::io(format!("{}", p.display()), e)),
        Err(_) => Ok(()),
    }
}
