//! [`XfsFs`]: the [`Filesystem`] implementation (read-only).

use crate::attr::{self, AttrBlock, Value};
use crate::dir::{self, RawEntry, LEAF_OFFSET};
use crate::inode::{parse_rdev, Extent, ForkFormat, Inode, DIFLAG_REALTIME};
use crate::io::{find, Vol};
use crate::sb::Superblock;
use diskfab_fs::{DirEntry, FileType, Filesystem, FsInfo, Ino, Metadata, NewNode, SetAttr};
use diskfab_storage::bytes::{be_u32, be_u64, slice};
use diskfab_storage::{limits, DevRef, Error, Result};
use std::sync::Arc;

/// Longest symlink target XFS stores.
const SYMLINK_MAX: u64 = 1024;
const XSLM: u32 = 0x5853_4c4d;
/// Deepest attr dabtree accepted.
const DA_MAX_DEPTH: u16 = 5;

/// An open XFS filesystem.
pub struct XfsFs {
    vol: Vol,
    /// The last file whose extent map was built (reads come in many chunks).
    map_cache: Option<(u64, Arc<Vec<Extent>>)>,
    /// The last directory listed (lookups scan the same entries).
    dir_cache: Option<(u64, Arc<Vec<RawEntry>>)>,
}

fn ro() -> Error {
    Error::ReadOnly("xfs: diskfab reads XFS but does not write it".into())
}

impl XfsFs {
    /// Opens the filesystem on `dev` read-only, after checking the superblock and the log.
    pub fn open(dev: DevRef) -> Result<XfsFs> {
        let mut buf = vec![0u8; 512];
        if dev.size() < 512 {
            return Err(Error::bad("xfs: device too small"));
        }
        dev.read_at(&mut buf, 0)?;
        let sect = usize::from(diskfab_storage::bytes::be_u16(&buf, 102)?);
        if sect > 512 && (sect as u64) <= dev.size() && sect <= 32768 {
            buf = vec![0u8; sect];
            dev.read_at(&mut buf, 0)?;
        }
        let sb = Superblock::parse(&buf)?;
        let vol = Vol { dev, sb };
        check_log(&vol)?;
        Ok(XfsFs {
            vol,
            map_cache: None,
            dir_cache: None,
        })
    }

    fn sb(&self) -> &Superblock {
        &self.vol.sb
    }

    fn file_map(&mut self, ino: u64, inode: &Inode) -> Result<Arc<Vec<Extent>>> {
        if let Some((i, m)) = &self.map_cache {
            if *i == ino {
                return Ok(m.clone());
            }
        }
        let m = Arc::new(self.vol.extents(ino, inode, false)?);
        self.map_cache = Some((ino, m.clone()));
        Ok(m)
    }

    fn entries(&mut self, ino: u64) -> Result<Arc<Vec<RawEntry>>> {
        if let Some((i, e)) = &self.dir_cache {
            if *i == ino {
                return Ok(e.clone());
            }
        }
        let inode = self.vol.read_inode(ino)?;
        if inode.file_type()? != FileType::Directory {
            return Err(Error::Invalid(format!(
                "xfs: inode {ino} is not a directory"
            )));
        }
        let e = Arc::new(match inode.format {
            ForkFormat::Local => dir::parse_shortform(self.sb(), &inode.data_fork, inode.size)?.0,
            ForkFormat::Extents | ForkFormat::Btree => self.block_dir(ino, &inode)?,
            ForkFormat::Dev => return Err(Error::bad("xfs: directory in device format")),
        });
        self.dir_cache = Some((ino, e.clone()));
        Ok(e)
    }

    fn block_dir(&self, ino: u64, inode: &Inode) -> Result<Vec<RawEntry>> {
        let map = self.vol.extents(ino, inode, false)?;
        let per = 1u64 << self.sb().dirblk_log;
        let leaf_blk = LEAF_OFFSET >> self.sb().block_log;
        let mut out = Vec::new();
        for e in &map {
            let end = (e.off + e.len).min(leaf_blk);
            let mut b = e.off.div_ceil(per) * per;
            while b < end {
                if let Some(buf) = self.vol.read_mapped(&map, b, per)? {
                    let daddr = self.vol.daddr(&map, b)?;
                    out.extend(dir::parse_data_block(self.sb(), &buf, ino, daddr)?);
                    limits::check_budget(out.len() as u64 * 64, "xfs directory")?;
                }
                b += per;
            }
        }
        Ok(out)
    }

    fn attrs(&self, ino: u64, inode: &Inode) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match inode.aformat {
            None => Ok(Vec::new()),
            Some(ForkFormat::Local) => attr::parse_shortform(&inode.attr_fork),
            Some(ForkFormat::Extents | ForkFormat::Btree) => self.attr_tree(ino, inode),
            Some(ForkFormat::Dev) => Err(Error::bad("xfs: attr fork in device format")),
        }
    }

    fn attr_block(&self, ino: u64, map: &[Extent], blk: u64) -> Result<AttrBlock> {
        let buf = self
            .vol
            .read_mapped(map, blk, 1)?
            .ok_or_else(|| Error::bad("xfs: attribute block in a hole"))?;
        attr::parse_block(self.sb(), &buf, ino, self.vol.daddr(map, blk)?)
    }

    fn attr_tree(&self, ino: u64, inode: &Inode) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.vol.extents(ino, inode, true)?;
        if map.is_empty() {
            return Ok(Vec::new()); // every attribute was removed
        }
        let mut blk = 0u64;
        let mut depth = 0;
        let mut block = self.attr_block(ino, &map, 0)?;
        while let AttrBlock::Node(_, kids) = &block {
            depth += 1;
            if depth > DA_MAX_DEPTH {
                return Err(Error::bad("xfs: attribute tree too deep"));
            }
            blk = u64::from(kids[0]);
            block = self.attr_block(ino, &map, blk)?;
        }
        let max_blocks: u64 = map.iter().map(|e| e.len).sum();
        let mut out = Vec::new();
        let mut seen = 0u64;
        loop {
            let AttrBlock::Leaf(items, forw) = block else {
                return Err(Error::bad("xfs: attribute leaf chain reaches a node"));
            };
            for (name, v) in items {
                let value = match v {
                    Value::Local(b) => b,
                    Value::Remote { blk, len } => self.remote_value(ino, &map, blk, len)?,
                };
                let value = attr::finish_value(&name, value)?;
                out.push((name, value));
            }
            seen += 1;
            if forw == 0 {
                break;
            }
            if seen > max_blocks || u64::from(forw) == blk {
                return Err(Error::bad("xfs: attribute leaf chain loops"));
            }
            blk = u64::from(forw);
            block = self.attr_block(ino, &map, blk)?;
        }
        Ok(out)
    }

    fn remote_value(&self, ino: u64, map: &[Extent], blk: u32, len: u32) -> Result<Vec<u8>> {
        if len > 1 << 16 {
            return Err(Error::bad("xfs: attribute value larger than 64 KiB"));
        }
        let per = attr::remote_payload(self.sb());
        let mut out = Vec::with_capacity(len as usize);
        let mut b = u64::from(blk);
        while out.len() < len as usize {
            let want = per.min(len as usize - out.len());
            let buf = self
                .vol
                .read_mapped(map, b, 1)?
                .ok_or_else(|| Error::bad("xfs: remote attribute value in a hole"))?;
            out.extend_from_slice(attr::parse_remote_block(
                self.sb(),
                &buf,
                ino,
                out.len(),
                want,
            )?);
            b += 1;
        }
        Ok(out)
    }

    fn remote_symlink(&self, ino: u64, inode: &Inode) -> Result<Vec<u8>> {
        let map = self.vol.extents(ino, inode, false)?;
        let bs = self.sb().block_size as usize;
        let hdr = if self.sb().v5 { 56 } else { 0 };
        let mut out = Vec::new();
        let mut b = 0u64;
        while (out.len() as u64) < inode.size {
            let want = (bs - hdr).min(inode.size as usize - out.len());
            let buf = self
                .vol
                .read_mapped(&map, b, 1)?
                .ok_or_else(|| Error::bad("xfs: symlink block in a hole"))?;
            if self.sb().v5 {
                let bad = || Error::BadImage(format!("xfs: inode {ino}: bad symlink block"));
                crate::crc::verify(&buf, 12, &format!("inode {ino} symlink block"))?;
                if be_u32(&buf, 0)? != XSLM
                    || be_u32(&buf, 4)? as usize != out.len()
                    || be_u32(&buf, 8)? as usize != want
                    || slice(&buf, 16, 16)? != self.sb().meta_uuid
                    || be_u64(&buf, 32)? != ino
                {
                    return Err(bad());
                }
            }
            out.extend_from_slice(slice(&buf, hdr, want)?);
            b += 1;
        }
        Ok(out)
    }
}

fn check_log(vol: &Vol) -> Result<()> {
    let sb = &vol.sb;
    if sb.inprogress {
        return Err(Error::bad("xfs: mkfs did not finish on this filesystem"));
    }
    if sb.log_start == 0 {
        return Err(Error::Unsupported(
            "xfs: external log devices are not supported".into(),
        ));
    }
    if sb.log_incompat != 0 {
        return Err(Error::Unsupported(
            "xfs: the log has incompatible log items (log_incompat set): mount the filesystem \
             once or run xfs_repair, then retry"
                .into(),
        ));
    }
    let base = sb.fsb_to_byte(sb.log_start)?;
    vol.check_run(sb.log_start, u64::from(sb.log_blocks))?;
    let bbs = (u64::from(sb.log_blocks) << sb.block_log) / 512;
    let mut read = |blk: u64, n: u64| vol.read(base + blk * 512, n * 512);
    crate::log::check_clean(bbs, &mut read)
}

impl Filesystem for XfsFs {
    fn info(&mut self) -> Result<FsInfo> {
        let sb = self.sb();
        let bs = u64::from(sb.block_size);
        let u = sb.uuid;
        Ok(FsInfo {
            fs_type: "xfs".into(),
            label: (!sb.label.is_empty()).then(|| String::from_utf8_lossy(&sb.label).into_owned()),
            uuid: Some(format!(
                "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
            )),
            block_size: sb.block_size,
            total_bytes: sb.dblocks * bs,
            used_bytes: sb.dblocks.saturating_sub(sb.fdblocks) * bs,
            needs_recovery: false,
            features: sb.features.clone(),
        })
    }

    fn root(&self) -> Ino {
        self.sb().root_ino
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        Ok(self
            .entries(dir)?
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.ino))
    }

    fn getattr(&mut self, ino: Ino) -> Result<Metadata> {
        let i = self.vol.read_inode(ino)?;
        let file_type = i.file_type()?;
        let rdev = match file_type {
            FileType::CharDevice | FileType::BlockDevice => parse_rdev(&i.data_fork)?,
            _ => (0, 0),
        };
        Ok(Metadata {
            ino,
            file_type,
            perm: u32::from(i.mode) & 0o7777,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            nlink: i.nlink,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
            rdev,
            allocated: i.nblocks.saturating_mul(u64::from(self.sb().block_size)),
        })
    }

    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        let raw = self.entries(dir)?;
        let mut out = Vec::with_capacity(raw.len());
        for e in raw.iter() {
            let file_type = match e.ftype {
                Some(t) => t,
                None => self.vol.read_inode(e.ino)?.file_type()?,
            };
            out.push(DirEntry {
                name: e.name.clone(),
                ino: e.ino,
                file_type,
            });
        }
        Ok(out)
    }

    fn read_link(&mut self, ino: Ino) -> Result<Vec<u8>> {
        let i = self.vol.read_inode(ino)?;
        if i.file_type()? != FileType::Symlink {
            return Err(Error::Invalid(format!("xfs: inode {ino} is not a symlink")));
        }
        if i.size == 0 || i.size > SYMLINK_MAX {
            return Err(Error::BadImage(format!(
                "xfs: symlink {ino} of {} bytes",
                i.size
            )));
        }
        match i.format {
            ForkFormat::Local => Ok(slice(&i.data_fork, 0, i.size as usize)?.to_vec()),
            ForkFormat::Extents | ForkFormat::Btree => self.remote_symlink(ino, &i),
            ForkFormat::Dev => Err(Error::bad("xfs: symlink in device format")),
        }
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let i = self.vol.read_inode(ino)?;
        if i.file_type()? != FileType::Regular {
            return Err(Error::Invalid(format!(
                "xfs: inode {ino} is not a regular file"
            )));
        }
        if i.flags & DIFLAG_REALTIME != 0 {
            return Err(Error::Unsupported(
                "xfs: realtime files are not supported".into(),
            ));
        }
        if offset >= i.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(i.size - offset) as usize;
        let buf = &mut buf[..n];
        if i.format == ForkFormat::Local {
            buf.copy_from_slice(slice(&i.data_fork, offset as usize, n)?);
            return Ok(n);
        }
        let map = self.file_map(ino, &i)?;
        read_file(&self.vol, &map, offset, buf)?;
        Ok(n)
    }

    fn create(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        Err(ro())
    }
    fn write(&mut self, _: Ino, _: u64, _: &[u8]) -> Result<()> {
        Err(ro())
    }
    fn set_attr(&mut self, _: Ino, _: &SetAttr) -> Result<()> {
        Err(ro())
    }
    fn mkdir(&mut self, _: Ino, _: &[u8], _: &NewNode) -> Result<Ino> {
        Err(ro())
    }
    fn unlink(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        Err(ro())
    }
    fn rmdir(&mut self, _: Ino, _: &[u8]) -> Result<()> {
        Err(ro())
    }
    fn rename(&mut self, _: Ino, _: &[u8], _: Ino, _: &[u8]) -> Result<()> {
        Err(ro())
    }

    fn list_xattrs(&mut self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let i = self.vol.read_inode(ino)?;
        self.attrs(ino, &i)
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Fills `buf` from file offset `offset` through the extent map; holes and unwritten extents
/// read as zeros.
fn read_file(vol: &Vol, map: &[Extent], offset: u64, buf: &mut [u8]) -> Result<()> {
    let bs = u64::from(vol.sb.block_size);
    let mut pos = 0usize;
    while pos < buf.len() {
        let off = offset + pos as u64;
        let blk = off / bs;
        let within = off % bs;
        let left = (buf.len() - pos) as u64;
        let (run, src) = match find(map, blk) {
            Some(e) => {
                let bytes = (e.off + e.len - blk) * bs - within;
                let src = (!e.unwritten).then(|| (e.start + (blk - e.off), within));
                (bytes.min(left), src)
            }
            None => {
                let next = map.iter().find(|e| e.off > blk).map(|e| e.off * bs);
                (next.map_or(left, |n| (n - off).min(left)), None)
            }
        };
        let dst = &mut buf[pos..pos + run as usize];
        match src {
            Some((fsb, within)) => {
                vol.check_run(fsb, (within + run).div_ceil(bs))?;
                let at = vol.sb.fsb_to_byte(fsb)? + within;
                if at.checked_add(run).is_none_or(|e| e > vol.dev.size()) {
                    return Err(Error::bad("xfs: file data past the end of the device"));
                }
                vol.dev.read_at(dst, at)?;
            }
            None => dst.fill(0),
        }
        pos += run as usize;
    }
    Ok(())
}
