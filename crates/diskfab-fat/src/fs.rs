//! [`FatFs`]: the `Filesystem` trait over `fatfs`, with synthetic inode numbers (FAT has none).

use crate::devio::DevIo;
use crate::time::{from_unix, to_unix};
use diskfab_fs::{
    DirEntry, FileType, Filesystem, FsInfo, Ino, Metadata, NewNode, SetAttr, Timespec,
};
use diskfab_storage::{DevRef, Error, Result};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

type Fat = fatfs::FileSystem<DevIo>;

/// `fatfs::FileSystem` holds `&'static dyn` references to its OEM code-page converter and time
/// provider, which are not `Sync`, so the filesystem is not `Send`. We only ever use fatfs'
/// default implementations, which are stateless unit structs; all other state (RefCell, Cell,
/// the device) is `Send`. The filesystem is only used through `&mut FatFs`.
struct SendFat(Fat);
// SAFETY: see above — the non-Send parts are references to stateless, immutable statics.
unsafe impl Send for SendFat {}

/// A directory entry found by name: (canonical name, is_dir, length, modified, created, read-only).
type Found = (String, bool, u64, fatfs::DateTime, fatfs::DateTime, bool);

/// An open FAT12/16/32 filesystem.
pub struct FatFs {
    fs: Option<SendFat>,
    dev: DevRef,
    writable: bool,
    /// Inode number → canonical path ("" is the root). Index = ino - 1.
    paths: Vec<String>,
    by_path: HashMap<String, Ino>,
}

pub(crate) fn io_err(e: std::io::Error, what: &str) -> Error {
    use std::io::ErrorKind as K;
    let m = format!("{what}: {e}");
    match e.kind() {
        K::NotFound => Error::NotFound(m),
        K::AlreadyExists => Error::Exists(m),
        K::PermissionDenied => Error::ReadOnly(m),
        K::InvalidInput => Error::Invalid(m),
        K::UnexpectedEof | K::InvalidData => Error::BadImage(m),
        _ if m.contains("No space") || m.contains("space") => Error::NoSpace(m),
        _ => Error::Failed(m),
    }
}

/// Runs fatfs code, turning a panic inside it (possible on corrupt images) into a BadImage error.
pub(crate) fn guard<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(Error::bad(
            "the FAT filesystem is corrupt (the FAT driver hit an inconsistency)",
        )),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn check_name(name: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(name)
        .map_err(|_| Error::Invalid("FAT names must be valid UTF-8".into()))?;
    if s.is_empty()
        || s == "."
        || s == ".."
        || s.encode_utf16().count() > 255
        || s.chars().any(|c| c < ' ' || "\"*/:<>?\\|".contains(c))
    {
        return Err(Error::Invalid(format!(
            "{s:?} is not a valid FAT file name"
        )));
    }
    Ok(s)
}

impl FatFs {
    /// Opens the FAT filesystem on `dev`.
    pub fn open(dev: DevRef, writable: bool) -> Result<FatFs> {
        let fs = guard(|| {
            fatfs::FileSystem::new(
                DevIo::new(dev.clone(), writable),
                fatfs::FsOptions::new().update_accessed_date(false),
            )
            .map_err(|e| Error::bad(format!("not a usable FAT filesystem: {e}")))
        })?;
        let mut me = FatFs {
            fs: Some(SendFat(fs)),
            dev,
            writable,
            paths: vec![String::new()],
            by_path: HashMap::new(),
        };
        me.by_path.insert(String::new(), 1);
        Ok(me)
    }

    fn fat(&self) -> Result<&Fat> {
        self.fs
            .as_ref()
            .map(|f| &f.0)
            .ok_or_else(|| Error::Failed("FAT filesystem is closed".into()))
    }

    fn path(&self, ino: Ino) -> Result<String> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.paths.get(i))
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    fn ino_for(&mut self, p: String) -> Ino {
        if let Some(&i) = self.by_path.get(&p) {
            return i;
        }
        self.paths.push(p.clone());
        let i = self.paths.len() as Ino;
        self.by_path.insert(p, i);
        i
    }

    fn ro(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly(
                "the FAT filesystem is open read-only".into(),
            ))
        }
    }

    /// The entry named `name` in directory path `dir` (case-insensitive), as (canonical name, meta).
    fn find(&self, dir: &str, name: &str) -> Result<Option<Found>> {
        let fs = self.fat()?;
        let root = fs.root_dir();
        let d = if dir.is_empty() {
            root
        } else {
            root.open_dir(dir).map_err(|e| io_err(e, dir))?
        };
        for e in d.iter() {
            let e = e.map_err(|e| io_err(e, dir))?;
            let n = e.file_name();
            if n == "." || n == ".." {
                continue;
            }
            if n.eq_ignore_ascii_case(name) || n.to_lowercase() == name.to_lowercase() {
                let ro = e.attributes().contains(fatfs::FileAttributes::READ_ONLY);
                return Ok(Some((
                    n,
                    e.is_dir(),
                    e.len(),
                    e.modified(),
                    e.created(),
                    ro,
                )));
            }
        }
        Ok(None)
    }

    fn meta_of(&self, ino: Ino) -> Result<Metadata> {
        let p = self.path(ino)?;
        let cs = u64::from(self.fat()?.cluster_size());
        if p.is_empty() {
            let t = Timespec { sec: 0, nsec: 0 };
            return Ok(Metadata {
                ino,
                file_type: FileType::Directory,
                perm: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime: t,
                mtime: t,
                ctime: t,
                rdev: (0, 0),
                allocated: 0,
            });
        }
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p.as_str()));
        let (_, is_dir, len, modified, created, ro) = self
            .find(dir, name)?
            .ok_or_else(|| Error::NotFound(p.clone()))?;
        let mtime = to_unix(modified);
        let perm = match (is_dir, ro) {
            (true, _) => 0o755,
            (false, true) => 0o444,
            (false, false) => 0o644,
        };
        let _ = created;
        Ok(Metadata {
            ino,
            file_type: if is_dir {
                FileType::Directory
            } else {
                FileType::Regular
            },
            perm,
            uid: 0,
            gid: 0,
            size: if is_dir { 0 } else { len },
            nlink: if is_dir { 2 } else { 1 },
            atime: mtime,
            mtime,
            ctime: mtime,
            rdev: (0, 0),
            allocated: len.div_ceil(cs) * cs,
        })
    }

    /// Short names of each component of `p`, then the raw `.`/`..` repair (see dotfix).
    fn fix_dots(&mut self, p: &str) -> Result<()> {
        let mut shorts = Vec::new();
        {
            let fs = self.fat()?;
            let mut dir = fs.root_dir();
            let comps: Vec<&str> = p.split('/').collect();
            for (i, c) in comps.iter().enumerate() {
                let e = dir
                    .iter()
                    .filter_map(|e| e.ok())
                    .find(|e| e.file_name() == *c)
                    .ok_or_else(|| Error::Failed(format!("{p}: vanished after mkdir")))?;
                shorts.push(e.short_file_name_as_bytes().to_vec());
                if i + 1 < comps.len() {
                    dir = e.to_dir();
                }
            }
        }
        let bits = match self.fat()?.fat_type() {
            fatfs::FatType::Fat12 => 12,
            fatfs::FatType::Fat16 => 16,
            fatfs::FatType::Fat32 => 32,
        };
        // Flush fatfs' view first so the raw reader sees the new entries.
        crate::dotfix::fix_new_dir(&self.dev, bits, &shorts)
    }

    fn open_file(&self, p: &str) -> Result<fatfs::File<'_, DevIo>> {
        self.fat()?
            .root_dir()
            .open_file(p)
            .map_err(|e| io_err(e, p))
    }

    /// Removes `old` (a path) and all paths under it from the inode table's lookup map.
    fn forget(&mut self, old: &str) {
        let prefix = format!("{old}/");
        self.by_path
            .retain(|k, _| k != old && !k.starts_with(&prefix));
    }

    fn rename_paths(&mut self, old: &str, new: &str) {
        let prefix = format!("{old}/");
        for (i, p) in self.paths.iter_mut().enumerate() {
            if p == old || p.starts_with(&prefix) {
                let np = format!("{new}{}", &p[old.len()..]);
                self.by_path.remove(p.as_str());
                self.by_path.insert(np.clone(), i as Ino + 1);
                *p = np;
            }
        }
    }

    #[allow(deprecated)]
    fn apply_times(&self, p: &str, t: Timespec) -> Result<()> {
        let mut f = self.open_file(p)?;
        f.set_modified(from_unix(t));
        f.set_created(from_unix(t));
        f.flush().map_err(|e| io_err(e, p))
    }
}

#[allow(deprecated)] // set_modified/set_created: fatfs prefers a TimeProvider; we set explicit times.
impl Filesystem for FatFs {
    fn info(&mut self) -> Result<FsInfo> {
        guard(|| {
            let fs = self.fat()?;
            let st = fs.stats().map_err(|e| io_err(e, "FAT statistics"))?;
            let cs = u64::from(st.cluster_size());
            let label = fs.volume_label().trim_end().to_string();
            let id = fs.volume_id();
            let ty = match fs.fat_type() {
                fatfs::FatType::Fat12 => "fat12",
                fatfs::FatType::Fat16 => "fat16",
                fatfs::FatType::Fat32 => "fat32",
            };
            Ok(FsInfo {
                fs_type: "vfat".into(),
                label: (!label.is_empty() && label != "NO NAME").then_some(label),
                uuid: Some(format!("{:04X}-{:04X}", id >> 16, id & 0xffff)),
                block_size: cs as u32,
                total_bytes: u64::from(st.total_clusters()) * cs,
                used_bytes: u64::from(
                    st.total_clusters() - st.free_clusters().min(st.total_clusters()),
                ) * cs,
                needs_recovery: false,
                features: vec![ty.to_string()],
            })
        })
    }

    fn root(&self) -> Ino {
        1
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        guard(|| {
            let d = self.path(dir)?;
            let Ok(n) = check_name(name) else {
                return Ok(None);
            };
            match self.find(&d, n)? {
                Some((canon, ..)) => Ok(Some(self.ino_for(join(&d, &canon)))),
                None => Ok(None),
            }
        })
    }

    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        guard(|| self.meta_of(ino))
    }

    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        guard(|| {
            let d = self.path(dir)?;
            let mut names = Vec::new();
            {
                let fs = self.fat()?;
                let root = fs.root_dir();
                let h = if d.is_empty() {
                    root
                } else {
                    root.open_dir(&d).map_err(|e| io_err(e, &d))?
                };
                for e in h.iter() {
                    let e = e.map_err(|e| io_err(e, &d))?;
                    let n = e.file_name();
                    if n != "." && n != ".." {
                        names.push((n, e.is_dir()));
                    }
                }
            }
            Ok(names
                .into_iter()
                .map(|(n, is_dir)| {
                    let ino = self.ino_for(join(&d, &n));
                    DirEntry {
                        name: n.into_bytes(),
                        ino,
                        file_type: if is_dir {
                            FileType::Directory
                        } else {
                            FileType::Regular
                        },
                    }
                })
                .collect())
        })
    }

    fn read_link(&mut self, _: Ino) -> Result<Vec<u8>> {
        Err(Error::Invalid("FAT has no symbolic links".into()))
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        guard(|| {
            let p = self.path(ino)?;
            let mut f = self.open_file(&p)?;
            f.seek(SeekFrom::Start(offset)).map_err(|e| io_err(e, &p))?;
            let mut done = 0;
            while done < buf.len() {
                let n = f.read(&mut buf[done..]).map_err(|e| io_err(e, &p))?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            Ok(done)
        })
    }

    fn create(&mut self, dir: Ino, name: &[u8], attr: &NewNode) -> Result<Ino> {
        self.ro()?;
        guard(|| {
            let d = self.path(dir)?;
            let n = check_name(name)?;
            if self.find(&d, n)?.is_some() {
                return Err(Error::Exists(join(&d, n)));
            }
            let p = join(&d, n);
            {
                let mut f = self
                    .fat()?
                    .root_dir()
                    .create_file(&p)
                    .map_err(|e| io_err(e, &p))?;
                if let Some(t) = attr.time {
                    f.set_modified(from_unix(t));
                    f.set_created(from_unix(t));
                }
                f.flush().map_err(|e| io_err(e, &p))?;
            }
            Ok(self.ino_for(p))
        })
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<()> {
        self.ro()?;
        guard(|| {
            let p = self.path(ino)?;
            if offset
                .checked_add(data.len() as u64)
                .is_none_or(|e| e > u64::from(u32::MAX))
            {
                return Err(Error::Invalid("FAT files are limited to 4 GiB - 1".into()));
            }
            let mut f = self.open_file(&p)?;
            let len = f.seek(SeekFrom::End(0)).map_err(|e| io_err(e, &p))?;
            if offset > len {
                let zeros = vec![0u8; (offset - len).min(1 << 20) as usize];
                let mut left = offset - len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    f.write_all(&zeros[..n]).map_err(|e| io_err(e, &p))?;
                    left -= n as u64;
                }
            }
            f.seek(SeekFrom::Start(offset)).map_err(|e| io_err(e, &p))?;
            f.write_all(data).map_err(|e| io_err(e, &p))?;
            f.flush().map_err(|e| io_err(e, &p))
        })
    }

    fn set_attr(&mut self, ino: Ino, a: &SetAttr) -> Result<()> {
        self.ro()?;
        guard(|| {
            let p = self.path(ino)?;
            if a.uid.is_some_and(|u| u != 0) || a.gid.is_some_and(|g| g != 0) {
                return Err(Error::Unsupported("FAT has no file owners".into()));
            }
            if p.is_empty() {
                return Ok(());
            }
            let is_dir = self.meta_of(ino)?.file_type == FileType::Directory;
            if let Some(size) = a.size {
                if is_dir {
                    return Err(Error::Invalid("cannot resize a directory".into()));
                }
                let mut f = self.open_file(&p)?;
                let len = f.seek(SeekFrom::End(0)).map_err(|e| io_err(e, &p))?;
                if size < len {
                    f.seek(SeekFrom::Start(size)).map_err(|e| io_err(e, &p))?;
                    f.truncate().map_err(|e| io_err(e, &p))?;
                    f.flush().map_err(|e| io_err(e, &p))?;
                } else if size > len {
                    drop(f);
                    self.write(ino, size, &[])?;
                }
            }
            if let (Some(t), false) = (a.mtime, is_dir) {
                self.apply_times(&p, t)?;
            }
            Ok(())
        })
    }

    fn mkdir(&mut self, dir: Ino, name: &[u8], _attr: &NewNode) -> Result<Ino> {
        self.ro()?;
        guard(|| {
            let d = self.path(dir)?;
            let n = check_name(name)?;
            if self.find(&d, n)?.is_some() {
                return Err(Error::Exists(join(&d, n)));
            }
            let p = join(&d, n);
            self.fat()?
                .root_dir()
                .create_dir(&p)
                .map_err(|e| io_err(e, &p))?;
            self.fix_dots(&p)?;
            Ok(self.ino_for(p))
        })
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        self.ro()?;
        guard(|| {
            let d = self.path(dir)?;
            let n = check_name(name)?;
            let (canon, is_dir, ..) = self
                .find(&d, n)?
                .ok_or_else(|| Error::NotFound(join(&d, n)))?;
            if is_dir {
                return Err(Error::Invalid("is a directory (use rmdir)".into()));
            }
            let p = join(&d, &canon);
            self.fat()?
                .root_dir()
                .remove(&p)
                .map_err(|e| io_err(e, &p))?;
            self.forget(&p);
            Ok(())
        })
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        self.ro()?;
        guard(|| {
            let d = self.path(dir)?;
            let n = check_name(name)?;
            let (canon, is_dir, ..) = self
                .find(&d, n)?
                .ok_or_else(|| Error::NotFound(join(&d, n)))?;
            if !is_dir {
                return Err(Error::Invalid("not a directory".into()));
            }
            let p = join(&d, &canon);
            let empty = self
                .fat()?
                .root_dir()
                .open_dir(&p)
                .map_err(|e| io_err(e, &p))?
                .iter()
                .filter_map(|e| e.ok())
                .all(|e| {
                    let n = e.file_name();
                    n == "." || n == ".."
                });
            if !empty {
                return Err(Error::Failed(format!("{p}: directory not empty")));
            }
            self.fat()?
                .root_dir()
                .remove(&p)
                .map_err(|e| io_err(e, &p))?;
            self.forget(&p);
            Ok(())
        })
    }

    fn rename(&mut self, dir: Ino, name: &[u8], new_dir: Ino, new_name: &[u8]) -> Result<()> {
        self.ro()?;
        guard(|| {
            let d = self.path(dir)?;
            let nd = self.path(new_dir)?;
            let n = check_name(name)?;
            let nn = check_name(new_name)?;
            let (canon, is_dir, ..) = self
                .find(&d, n)?
                .ok_or_else(|| Error::NotFound(join(&d, n)))?;
            let old = join(&d, &canon);
            let new = join(&nd, nn);
            if let Some((existing, ex_dir, ..)) = self.find(&nd, nn)? {
                let ep = join(&nd, &existing);
                if ep.eq_ignore_ascii_case(&old) && ep != new {
                    // Case-only rename of the same entry: fall through to the rename below.
                } else if ep == old {
                    return Ok(());
                } else if ex_dir || is_dir {
                    return Err(Error::Exists(ep));
                } else {
                    self.fat()?
                        .root_dir()
                        .remove(&ep)
                        .map_err(|e| io_err(e, &ep))?;
                    self.forget(&ep);
                }
            }
            {
                let fs = self.fat()?;
                let root = fs.root_dir();
                root.rename(&old, &root, &new)
                    .map_err(|e| io_err(e, &old))?;
            }
            self.rename_paths(&old, &new);
            Ok(())
        })
    }

    fn sync(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        guard(|| {
            if let Some(fs) = self.fs.take() {
                fs.0.unmount()
                    .map_err(|e| io_err(e, "writing FAT metadata"))?;
            }
            self.dev.flush()?;
            let fs = fatfs::FileSystem::new(
                DevIo::new(self.dev.clone(), true),
                fatfs::FsOptions::new().update_accessed_date(false),
            )
            .map_err(|e| io_err(e, "reopening FAT"))?;
            self.fs = Some(SendFat(fs));
            Ok(())
        })
    }
}
