//! [`NtfsFs`]: the read-only [`Filesystem`] over a [`Volume`].

use crate::dir;
use crate::names::{self, fa, parse_file_name, parse_reparse, parse_std_info, Reparse, NS_DOS};
use crate::record::{ty, Body, REF_MASK};
use crate::volume::{File, Stream, Volume};
use diskfab_fs::{DirEntry, FileType, Filesystem, FsInfo, Ino, Metadata, NewNode, SetAttr};
use diskfab_storage::{limits, DevRef, Error, Result};
use std::sync::Arc;

/// The message of every refused write.
pub const READ_ONLY: &str = "NTFS is read-only in diskfab";
/// Records below this number are NTFS metadata ($MFT ... $Extend), hidden like ntfs-3g does.
pub const FIRST_USER_RECORD: u64 = 16;
/// The root directory's record.
pub const ROOT: u64 = 5;
/// Largest Interix special file (symlink target) read.
const MAX_INTERIX: u64 = 8 + 2 * 4096;
/// Largest alternate data stream returned as an extended attribute.
const MAX_XATTR: u64 = 64 << 20;

/// What a record is, as diskfab reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link(Vec<u8>),
    Special(FileType, (u32, u32)),
    /// A reparse point diskfab does not follow (tag), over a directory or not.
    Unsupported(u32, bool),
}

/// An open, read-only NTFS volume.
pub struct NtfsFs {
    v: Volume,
}

fn ro<T>() -> Result<T> {
    Err(Error::ReadOnly(READ_ONLY.into()))
}

impl NtfsFs {
    /// Opens the NTFS volume on `dev`.
    pub fn open(dev: DevRef) -> Result<NtfsFs> {
        Ok(NtfsFs {
            v: Volume::open(dev)?,
        })
    }

    fn file(&mut self, ino: Ino) -> Result<Arc<File>> {
        if ino < FIRST_USER_RECORD && ino != ROOT {
            return Err(Error::NotFound(format!("NTFS system record {ino}")));
        }
        self.v.load(ino)
    }

    fn data(&self, f: &File) -> Result<Option<Stream>> {
        self.v.stream(f, ty::DATA, &[])
    }

    fn std_attrs(f: &File) -> u32 {
        f.find(ty::STANDARD_INFORMATION, &[])
            .find_map(|a| match &a.body {
                Body::Resident(v) => parse_std_info(v).ok(),
                Body::NonResident(_) => None,
            })
            .map_or(0, |s| s.attrs)
    }

    fn kind(&mut self, f: &File) -> Result<Kind> {
        let is_dir = f.flags & 2 != 0;
        if let Some(rp) = self.v.stream(f, ty::REPARSE_POINT, &[])? {
            let mut b = vec![0u8; rp.size.min(16 << 10) as usize];
            self.v.read(usize::MAX - 1, &rp, 0, &mut b)?;
            return Ok(match parse_reparse(&b)? {
                Reparse::Link(t) => Kind::Link(t),
                Reparse::Other(tag) => Kind::Unsupported(tag, is_dir),
            });
        }
        if is_dir {
            return Ok(Kind::Dir);
        }
        if Self::std_attrs(f) & fa::SYSTEM != 0 {
            if let Some(k) = self.interix(f)? {
                return Ok(k);
            }
        }
        Ok(Kind::File)
    }

    /// Interix special files as ntfs-3g writes them: system files holding `IntxLNK\1` +
    /// UTF-16 target, `IntxCHR\0`/`IntxBLK\0` + major + minor; empty = FIFO, one byte = socket.
    fn interix(&mut self, f: &File) -> Result<Option<Kind>> {
        let Some(s) = self.data(f)? else {
            return Ok(None);
        };
        match s.size {
            0 => return Ok(Some(Kind::Special(FileType::Fifo, (0, 0)))),
            1 => return Ok(Some(Kind::Special(FileType::Socket, (0, 0)))),
            n if !(8..=MAX_INTERIX).contains(&n) => return Ok(None),
            _ => {}
        }
        let mut b = vec![0u8; s.size as usize];
        self.v.read(usize::MAX - 2, &s, 0, &mut b)?;
        Ok(match &b[..8] {
            b"IntxLNK\x01" if b.len().is_multiple_of(2) => {
                let u: Vec<u16> = b[8..]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Some(Kind::Link(names::utf16_to_bytes(&u)))
            }
            b"IntxCHR\0" | b"IntxBLK\0" if b.len() >= 24 => {
                let major = diskfab_storage::bytes::le_u64(&b, 8)? as u32;
                let minor = diskfab_storage::bytes::le_u64(&b, 16)? as u32;
                let t = if &b[..8] == b"IntxCHR\0" {
                    FileType::CharDevice
                } else {
                    FileType::BlockDevice
                };
                Some(Kind::Special(t, (major, minor)))
            }
            _ => None,
        })
    }

    fn file_type(k: &Kind) -> FileType {
        match k {
            Kind::Dir | Kind::Unsupported(_, true) => FileType::Directory,
            Kind::File | Kind::Unsupported(_, false) => FileType::Regular,
            Kind::Link(_) => FileType::Symlink,
            Kind::Special(t, _) => *t,
        }
    }

    /// The named $DATA streams (alternate data streams) of a file.
    fn ads_names(f: &File) -> Vec<Vec<u16>> {
        let mut n: Vec<Vec<u16>> = f
            .attrs
            .iter()
            .filter(|a| a.ty == ty::DATA && !a.name.is_empty())
            .map(|a| a.name.clone())
            .collect();
        n.sort();
        n.dedup();
        n
    }
}

impl Filesystem for NtfsFs {
    fn info(&mut self) -> Result<FsInfo> {
        let vol = self.v.load(3)?;
        let label = self
            .v
            .stream(&vol, ty::VOLUME_NAME, &[])?
            .and_then(|s| s.resident)
            .map(|b| {
                let u: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf8_lossy(&names::utf16_to_bytes(&u)).into_owned()
            })
            .filter(|l| !l.is_empty());
        let vi = self
            .v
            .stream(&vol, ty::VOLUME_INFORMATION, &[])?
            .and_then(|s| s.resident);
        let (major, minor, flags) = match &vi {
            Some(b) if b.len() >= 12 => (b[8], b[9], u16::from_le_bytes([b[10], b[11]])),
            _ => (0, 0, 0),
        };
        let cs = u64::from(self.v.boot.cluster_size);
        let used = self.used_clusters()?.map(|c| c * cs).unwrap_or(0);
        Ok(FsInfo {
            fs_type: "ntfs".into(),
            label,
            uuid: Some(format!("{:016X}", self.v.boot.serial)),
            block_size: self.v.boot.cluster_size,
            total_bytes: self.v.clusters() * cs,
            used_bytes: used,
            needs_recovery: flags & 1 != 0,
            features: vec![format!("ntfs {major}.{minor}"), "read-only".into()],
        })
    }

    fn root(&self) -> Ino {
        ROOT
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let d = self.file(dir)?;
        if d.flags & 2 == 0 {
            return Err(Error::Invalid("not a directory".into()));
        }
        let Some(u) = names::bytes_to_utf16(name) else {
            return Ok(None);
        };
        Ok(dir::lookup(&mut self.v, &d, &u)?
            .map(|(_, r)| r & REF_MASK)
            .filter(|&r| r >= FIRST_USER_RECORD && r != dir))
    }

    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        let f = self.file(ino)?;
        let k = self.kind(&f)?;
        let si = f
            .find(ty::STANDARD_INFORMATION, &[])
            .find_map(|a| match &a.body {
                Body::Resident(v) => parse_std_info(v).ok(),
                Body::NonResident(_) => None,
            })
            .unwrap_or_default();
        let nlink = f
            .find(ty::FILE_NAME, &[])
            .filter(|a| match &a.body {
                Body::Resident(v) => parse_file_name(v).is_ok_and(|n| n.namespace != NS_DOS),
                Body::NonResident(_) => false,
            })
            .count()
            .max(1) as u32;
        let (size, allocated) = match &k {
            Kind::Link(t) => (t.len() as u64, 0),
            Kind::Dir | Kind::Unsupported(_, true) => {
                let s = self.v.stream(&f, ty::INDEX_ALLOCATION, &dir::I30)?;
                s.map_or((0, 0), |s| (s.size, s.allocated))
            }
            _ => self.data(&f)?.map_or((0, 0), |s| (s.size, s.allocated)),
        };
        let ft = Self::file_type(&k);
        let perm = match ft {
            FileType::Directory => 0o755,
            FileType::Symlink => 0o777,
            _ if si.attrs & fa::READONLY != 0 => 0o444,
            _ => 0o644,
        };
        let rdev = match k {
            Kind::Special(_, r) => r,
            _ => (0, 0),
        };
        Ok(Metadata {
            ino,
            file_type: ft,
            perm,
            uid: 0,
            gid: 0,
            size,
            nlink,
            atime: si.accessed,
            mtime: si.modified,
            ctime: si.changed,
            rdev,
            allocated,
        })
    }

    fn read_dir(&mut self, dirn: Ino) -> Result<Vec<DirEntry>> {
        let d = self.file(dirn)?;
        if d.flags & 2 == 0 {
            return Err(Error::Invalid("not a directory".into()));
        }
        let mut out: Vec<DirEntry> = Vec::new();
        for (k, r) in dir::list(&mut self.v, &d)? {
            let rec = r & REF_MASK;
            if k.namespace == NS_DOS || rec < FIRST_USER_RECORD || rec == dirn {
                continue;
            }
            let f = self.v.load(rec)?;
            if f.seq != (r >> 48) as u16 && r >> 48 != 0 {
                continue; // a stale entry for a record since reused
            }
            let kind = self.kind(&f)?;
            out.push(DirEntry {
                name: names::utf16_to_bytes(&k.name),
                ino: rec,
                file_type: Self::file_type(&kind),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>> {
        let f = self.file(ino)?;
        match self.kind(&f)? {
            Kind::Link(t) => Ok(t),
            _ => Err(Error::Invalid("not a symbolic link".into())),
        }
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let f = self.file(ino)?;
        match self.kind(&f)? {
            Kind::File => {}
            Kind::Unsupported(tag, _) => {
                return Err(Error::Unsupported(format!(
                    "NTFS reparse point with tag 0x{tag:08X} (its data is not readable)"
                )))
            }
            _ => return Err(Error::Invalid("not a regular file".into())),
        }
        if Self::std_attrs(&f) & fa::ENCRYPTED != 0 {
            return Err(Error::Unsupported("NTFS encrypted (EFS) file".into()));
        }
        let Some(s) = self.data(&f)? else {
            return Ok(0);
        };
        self.v.read(ino as usize, &s, offset, buf)
    }

    fn list_xattrs(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let f = self.file(ino)?;
        let mut out = Vec::new();
        for name in Self::ads_names(&f) {
            let Some(s) = self.v.stream(&f, ty::DATA, &name)? else {
                continue;
            };
            if s.size > MAX_XATTR {
                return Err(Error::Unsupported(format!(
                    "NTFS alternate data stream of {} bytes (more than 64 MiB)",
                    s.size
                )));
            }
            let mut v = limits::alloc_bytes(s.size, "an NTFS alternate data stream")?;
            self.v.read(usize::MAX - 3, &s, 0, &mut v)?;
            let mut n = b"user.".to_vec();
            n.extend(names::utf16_to_bytes(&name));
            out.push((n, v));
        }
        Ok(out)
    }

    fn create(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn write(&mut self, _: Ino, _: u64, _: &[u8]) -> Result<()> {
        ro()
    }
    fn set_attr(&mut self, _: Ino, _: &SetAttr) -> Result<()> {
        ro()
    }
    fn mkdir(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn symlink(&mut self, _: Ino, _: &[u8], _: &[u8], _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn mknod(&mut self, _: Ino, _: &[u8], _: FileType, _: (u32, u32), _: &NewNode) -> Result<Ino> {
        ro()
    }
    fn link(&mut self, _: Ino, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn unlink(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn rmdir(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn rename(&mut self, _: Ino, _: &[u8], _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn set_xattr(&mut self, _: Ino, _: &[u8], _: &[u8]) -> Result<()> {
        ro()
    }
    fn remove_xattr(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        ro()
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

impl NtfsFs {
    /// Clusters marked used in $Bitmap (`None` when it cannot be read).
    fn used_clusters(&mut self) -> Result<Option<u64>> {
        let Ok(bm) = self.v.load(6) else {
            return Ok(None);
        };
        let Some(s) = self.v.stream(&bm, ty::DATA, &[])? else {
            return Ok(None);
        };
        let want = self.v.clusters().div_ceil(8);
        let mut buf = vec![0u8; 1 << 20];
        let (mut off, mut used) = (0u64, 0u64);
        while off < want.min(s.size) {
            let n = self.v.read(usize::MAX - 4, &s, off, &mut buf)?;
            if n == 0 {
                break;
            }
            let n = n.min((want - off) as usize);
            used += buf[..n]
                .iter()
                .map(|b| u64::from(b.count_ones()))
                .sum::<u64>();
            off += n as u64;
        }
        Ok(Some(used))
    }
}
