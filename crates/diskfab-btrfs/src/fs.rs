//! [`BtrfsFs`]: the read-only [`Filesystem`] over a [`Volume`]. Inode numbers carry the tree:
//! `slot << 48 | objectid`, where each subvolume met gets the next slot, so subvolumes below
//! the chosen root appear as directories, as a kernel mount shows them.

use crate::decompress::{decompress, MAX_DECODED};
use crate::items::{self, Compression, Extent, ExtentData, Inode};
use crate::key::*;
use crate::volume::{TreeRoot, Volume};
use crate::READ_ONLY;
use diskfab_fs::{DirEntry, FileType, Filesystem, FsInfo, Ino, Metadata, NewNode, SetAttr};
use diskfab_storage::limits::alloc_bytes;
use diskfab_storage::{Error, Result};
use std::collections::HashMap;

const OBJ_BITS: u32 = 48;
const OBJ_MASK: u64 = (1 << OBJ_BITS) - 1;
/// Most subvolumes one session tells apart.
const MAX_SLOTS: usize = 1 << 15;
/// Most items one inode may have of one kind (directory entries, extents, xattrs).
pub(crate) const MAX_ITEMS: usize = 4 << 20;
/// Longest symlink target read.
const MAX_LINK: u64 = 64 << 10;

/// A btrfs filesystem opened read-only, rooted at one subvolume.
#[derive(Debug)]
pub struct BtrfsFs {
    pub(crate) vol: Volume,
    slots: Vec<u64>,
    slot_of: HashMap<u64, u64>,
    roots: HashMap<u64, TreeRoot>,
    pub(crate) root_ino: Ino,
    pub(crate) subvol: u64,
    extents: Option<(Ino, Vec<(u64, Extent)>)>,
    decoded: Option<((u64, u64, u8), Vec<u8>)>,
}

impl BtrfsFs {
    /// A filesystem over `vol` rooted at the top-level subvolume (5).
    pub(crate) fn new(vol: Volume) -> Result<BtrfsFs> {
        let mut fs = BtrfsFs {
            vol,
            slots: Vec::new(),
            slot_of: HashMap::new(),
            roots: HashMap::new(),
            root_ino: 0,
            subvol: FS_TREE,
            extents: None,
            decoded: None,
        };
        fs.root_ino = fs.subvol_root(FS_TREE)?;
        Ok(fs)
    }

    /// The root directory inode of subvolume `tree`.
    pub(crate) fn subvol_root(&mut self, tree: u64) -> Result<Ino> {
        let r = self.tree_root_item(tree)?;
        self.encode(tree, r)
    }

    fn tree_root_item(&mut self, tree: u64) -> Result<u64> {
        let items = self.vol.items(
            self.vol.root_tree(),
            Key::new(tree, ROOT_ITEM, 0),
            Key::new(tree, ROOT_ITEM, u64::MAX),
            1024,
        )?;
        let (_, d) = items
            .last()
            .ok_or_else(|| Error::NotFound(format!("btrfs subvolume {tree} does not exist")))?;
        let r = items::parse_root_item(d)?;
        self.roots.insert(
            tree,
            TreeRoot {
                bytenr: r.bytenr,
                level: r.level,
            },
        );
        Ok(r.root_dirid)
    }

    fn encode(&mut self, tree: u64, obj: u64) -> Result<Ino> {
        if obj > OBJ_MASK {
            return Err(Error::bad(format!("btrfs object id {obj} is too large")));
        }
        let slot = match self.slot_of.get(&tree) {
            Some(&s) => s,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return Err(Error::Unsupported(
                        "more than 32768 btrfs subvolumes".into(),
                    ));
                }
                self.slots.push(tree);
                let s = (self.slots.len() - 1) as u64;
                self.slot_of.insert(tree, s);
                s
            }
        };
        Ok(slot << OBJ_BITS | obj)
    }

    /// (tree id, its root, object id) of an inode number.
    pub(crate) fn decode(&mut self, ino: Ino) -> Result<(u64, TreeRoot, u64)> {
        let tree = *self
            .slots
            .get((ino >> OBJ_BITS) as usize)
            .ok_or_else(|| Error::NotFound(format!("btrfs inode {ino:#x}")))?;
        if !self.roots.contains_key(&tree) {
            self.tree_root_item(tree)?;
        }
        let root = self.roots[&tree];
        Ok((tree, root, ino & OBJ_MASK))
    }

    fn entry_ino(&mut self, tree: u64, e: &items::DirEntry) -> Result<Ino> {
        match e.location.ty {
            INODE_ITEM => self.encode(tree, e.location.objectid),
            ROOT_ITEM => self.subvol_root(e.location.objectid),
            t => Err(Error::bad(format!(
                "btrfs directory entry points at item type {t}"
            ))),
        }
    }

    pub(crate) fn inode(&mut self, ino: Ino) -> Result<Inode> {
        let (_, root, obj) = self.decode(ino)?;
        let it = self.vol.items(
            root,
            Key::new(obj, INODE_ITEM, 0),
            Key::new(obj, INODE_ITEM, 0),
            1,
        )?;
        let (_, d) = it
            .first()
            .ok_or_else(|| Error::NotFound(format!("btrfs inode {obj} has no inode item")))?;
        items::parse_inode(d)
    }

    /// Every directory entry of `dir` (`DIR_INDEX` items), raw.
    pub(crate) fn raw_entries(&mut self, dir: Ino) -> Result<Vec<items::DirEntry>> {
        let (_, root, obj) = self.decode(dir)?;
        let it = self.vol.items(
            root,
            Key::new(obj, DIR_INDEX, 0),
            Key::new(obj, DIR_INDEX, u64::MAX),
            MAX_ITEMS,
        )?;
        let mut out = Vec::new();
        for (_, d) in it {
            out.extend(items::parse_dir_entries(&d)?);
        }
        Ok(out)
    }

    fn load_extents(&mut self, ino: Ino) -> Result<()> {
        if self.extents.as_ref().is_some_and(|(i, _)| *i == ino) {
            return Ok(());
        }
        let (_, root, obj) = self.decode(ino)?;
        let it = self.vol.items(
            root,
            Key::new(obj, EXTENT_DATA, 0),
            Key::new(obj, EXTENT_DATA, u64::MAX),
            MAX_ITEMS,
        )?;
        let mut v = Vec::with_capacity(it.len());
        for (k, d) in it {
            v.push((k.offset, items::parse_extent(&d)?));
        }
        self.extents = Some((ino, v));
        Ok(())
    }

    /// The decoded bytes of a compressed extent (one cached).
    fn decoded(&mut self, c: Compression, ram: u64, (bytenr, len): (u64, u64)) -> Result<&[u8]> {
        let key = (bytenr, len, c as u8);
        if self.decoded.as_ref().is_none_or(|(k, _)| *k != key) {
            if len > MAX_DECODED || len == 0 {
                return Err(Error::bad(format!(
                    "btrfs compressed extent of {len} bytes on disk"
                )));
            }
            let mut raw = alloc_bytes(len, "btrfs compressed extent")?;
            self.vol.read_logical(bytenr, &mut raw)?;
            let out = decompress(c, &raw, ram, self.vol.sb.sectorsize)?;
            self.decoded = Some((key, out));
        }
        Ok(self
            .decoded
            .as_ref()
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[]))
    }

    /// Fills `out` (file bytes `[start, start + out.len())`, all inside extent `e` at `foff`).
    fn fill(&mut self, foff: u64, e: &Extent, start: u64, out: &mut [u8]) -> Result<()> {
        let within = start - foff;
        let copy = |src: &[u8], skip: u64, out: &mut [u8]| {
            let s = usize::try_from(skip).unwrap_or(usize::MAX).min(src.len());
            let n = out.len().min(src.len() - s);
            out[..n].copy_from_slice(&src[s..s + n]);
        };
        match &e.data {
            ExtentData::Prealloc => {}
            ExtentData::Inline(d) if e.compression == Compression::None => copy(d, within, out),
            ExtentData::Inline(d) => {
                let dec = decompress(e.compression, d, e.ram_bytes, self.vol.sb.sectorsize)?;
                copy(&dec, within, out);
            }
            ExtentData::Regular { disk_bytenr: 0, .. } => {}
            ExtentData::Regular {
                disk_bytenr,
                disk_num_bytes,
                offset,
            } => {
                let skip = offset
                    .checked_add(within)
                    .ok_or_else(|| Error::bad("btrfs extent offset overflows"))?;
                if e.compression == Compression::None {
                    let at = disk_bytenr
                        .checked_add(skip)
                        .ok_or_else(|| Error::bad("btrfs extent address overflows"))?;
                    self.vol.read_logical(at, out)?;
                } else {
                    let dec =
                        self.decoded(e.compression, e.ram_bytes, (*disk_bytenr, *disk_num_bytes))?;
                    copy(dec, skip, out);
                }
            }
        }
        Ok(())
    }
}

impl BtrfsFs {
    /// How each extent of a file is stored, e.g. `regular/zstd`, `inline/none`, `hole`,
    /// `prealloc` (for tests and diagnostics).
    pub fn extent_kinds(&mut self, ino: Ino) -> Result<Vec<String>> {
        self.load_extents(ino)?;
        let v = self
            .extents
            .as_ref()
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[]);
        Ok(v.iter()
            .map(|(_, e)| match e.data {
                ExtentData::Prealloc => "prealloc".to_string(),
                ExtentData::Regular { disk_bytenr: 0, .. } => "hole".to_string(),
                ExtentData::Regular { .. } => format!("regular/{:?}", e.compression).to_lowercase(),
                ExtentData::Inline(_) => format!("inline/{:?}", e.compression).to_lowercase(),
            })
            .collect())
    }

    /// The subvolume id shown as `/`.
    pub fn subvolume(&self) -> u64 {
        self.subvol
    }
}

fn read_only<T>() -> Result<T> {
    Err(Error::Unsupported(READ_ONLY.into()))
}

impl Filesystem for BtrfsFs {
    fn info(&mut self) -> Result<FsInfo> {
        let sb = &self.vol.sb;
        let uuid: String = sb
            .fsid
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let dash = if matches!(i, 4 | 6 | 8 | 10) { "-" } else { "" };
                format!("{dash}{b:02x}")
            })
            .collect();
        let mut features = sb.feature_names();
        features.push(format!("csum={}", sb.csum.name()));
        features.extend(self.vol.chunks().profiles());
        features.push(format!("subvolume={}", self.subvol));
        Ok(FsInfo {
            fs_type: "btrfs".into(),
            label: Some(sb.label.clone()).filter(|l| !l.is_empty()),
            uuid: Some(uuid),
            block_size: sb.sectorsize,
            total_bytes: sb.total_bytes,
            used_bytes: sb.bytes_used,
            needs_recovery: sb.log_root != 0,
            features,
        })
    }

    fn root(&self) -> Ino {
        self.root_ino
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let (tree, root, obj) = self.decode(dir)?;
        let k = Key::new(obj, DIR_ITEM, crate::csum::name_hash(name));
        let it = self.vol.items(root, k, k, 1)?;
        for (_, d) in it {
            for e in items::parse_dir_entries(&d)? {
                if e.name == name {
                    return self.entry_ino(tree, &e).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        let i = self.inode(ino)?;
        let file_type = FileType::from_mode(i.mode)
            .ok_or_else(|| Error::bad(format!("btrfs inode with mode {:o}", i.mode)))?;
        Ok(Metadata {
            ino,
            file_type,
            perm: i.mode & 0o7777,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            nlink: i.nlink,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
            rdev: (((i.rdev >> 20) & 0xfff) as u32, (i.rdev & 0xfffff) as u32),
            allocated: i.nbytes,
        })
    }

    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        let (tree, _, _) = self.decode(dir)?;
        let mut out = Vec::new();
        for e in self.raw_entries(dir)? {
            let file_type = items::entry_type(e.ty)
                .ok_or_else(|| Error::bad(format!("btrfs directory entry of type {}", e.ty)))?;
            let ino = self.entry_ino(tree, &e)?;
            out.push(DirEntry {
                name: e.name,
                ino,
                file_type,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>> {
        let size = self.inode(ino)?.size;
        if size > MAX_LINK {
            return Err(Error::bad(format!("btrfs symlink target of {size} bytes")));
        }
        let mut buf = vec![0u8; size as usize];
        let mut off = 0;
        while off < buf.len() {
            match self.read(ino, off as u64, &mut buf[off..])? {
                0 => break,
                n => off += n,
            }
        }
        buf.truncate(off);
        Ok(buf)
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = self.inode(ino)?.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = size.min(offset.saturating_add(buf.len() as u64));
        let n = (end - offset) as usize;
        buf[..n].fill(0);
        self.load_extents(ino)?;
        let exts = self.extents.take().map(|(_, v)| v).unwrap_or_default();
        let first = exts.partition_point(|(f, e)| f.saturating_add(e.num_bytes) <= offset);
        let mut res = Ok(());
        for (foff, e) in &exts[first..] {
            if *foff >= end {
                break;
            }
            let s = offset.max(*foff);
            let t = end.min(foff.saturating_add(e.num_bytes));
            if s >= t {
                continue;
            }
            let dst = &mut buf[(s - offset) as usize..(t - offset) as usize];
            res = self.fill(*foff, e, s, dst);
            if res.is_err() {
                break;
            }
        }
        self.extents = Some((ino, exts));
        res.map(|_| n)
    }

    fn list_xattrs(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (_, root, obj) = self.decode(ino)?;
        let it = self.vol.items(
            root,
            Key::new(obj, XATTR_ITEM, 0),
            Key::new(obj, XATTR_ITEM, u64::MAX),
            MAX_ITEMS,
        )?;
        let mut out = Vec::new();
        for (_, d) in it {
            out.extend(
                items::parse_dir_entries(&d)?
                    .into_iter()
                    .map(|e| (e.name, e.data)),
            );
        }
        out.sort();
        Ok(out)
    }

    fn create(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        read_only()
    }
    fn write(&mut self, _: Ino, _: u64, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn set_attr(&mut self, _: Ino, _: &SetAttr) -> Result<()> {
        read_only()
    }
    fn mkdir(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        read_only()
    }
    fn symlink(&mut self, _: Ino, _: &[u8], _: &[u8], _: &NewNode) -> Result<Ino> {
        read_only()
    }
    fn mknod(&mut self, _: Ino, _: &[u8], _: FileType, _: (u32, u32), _: &NewNode) -> Result<Ino> {
        read_only()
    }
    fn link(&mut self, _: Ino, _: Ino, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn unlink(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn rmdir(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn rename(&mut self, _: Ino, _: &[u8], _: Ino, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn set_xattr(&mut self, _: Ino, _: &[u8], _: &[u8]) -> Result<()> {
        read_only()
    }
    fn remove_xattr(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        read_only()
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}
