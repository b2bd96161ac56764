//! On-disk inodes (v1/v2/v3 cores, legacy and big timestamps) and their forks: pure parsing.

use crate::crc;
use crate::sb::Superblock;
use diskfab_fs::{FileType, Timespec};
use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Inode magic "IN".
const INODE_MAGIC: u16 = 0x494e;
/// Size of a v3 inode core (start of the literal area).
const CORE_V3: usize = 176;
/// Size of a v1/v2 inode core.
const CORE_V2: usize = 100;
const FLAGS2_BIGTIME: u64 = 8;
const FLAGS2_NREXT64: u64 = 16;
/// Realtime file flag in di_flags.
pub const DIFLAG_REALTIME: u16 = 1;
/// Seconds between the big-timestamp epoch and the Unix epoch.
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// How a fork stores its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkFormat {
    /// Device number (data fork of device nodes).
    Dev,
    /// Contents inline in the inode.
    Local,
    /// An extent list in the inode.
    Extents,
    /// A B+tree rooted in the inode.
    Btree,
}

impl ForkFormat {
    fn from_u8(v: u8) -> Result<ForkFormat> {
        Ok(match v {
            0 => ForkFormat::Dev,
            1 => ForkFormat::Local,
            2 => ForkFormat::Extents,
            3 => ForkFormat::Btree,
            _ => return Err(Error::BadImage(format!("xfs: unknown fork format {v}"))),
        })
    }
}

/// A parsed inode: the core fields and copies of its forks.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Full mode (type and permission bits).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Access, modification, change times.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// Change time.
    pub ctime: Timespec,
    /// Size in bytes.
    pub size: u64,
    /// Blocks allocated (data and attr forks, with B+tree blocks).
    pub nblocks: u64,
    /// Data fork extent count.
    pub nextents: u64,
    /// Attr fork extent count.
    pub anextents: u64,
    /// di_flags.
    pub flags: u16,
    /// Data fork format.
    pub format: ForkFormat,
    /// Attr fork format (`None`: no attr fork).
    pub aformat: Option<ForkFormat>,
    /// Raw data fork bytes.
    pub data_fork: Vec<u8>,
    /// Raw attr fork bytes (empty without an attr fork).
    pub attr_fork: Vec<u8>,
}

impl Inode {
    /// The node type.
    pub fn file_type(&self) -> Result<FileType> {
        FileType::from_mode(u32::from(self.mode))
            .ok_or_else(|| Error::BadImage(format!("xfs: inode mode {:#o} has no type", self.mode)))
    }
}

fn timestamp(buf: &[u8], off: usize, big: bool) -> Result<Timespec> {
    if big {
        let ns = be_u64(buf, off)?;
        let sec = (ns / 1_000_000_000) as i64 - BIGTIME_EPOCH_OFFSET;
        Ok(Timespec {
            sec,
            nsec: (ns % 1_000_000_000) as u32,
        })
    } else {
        Ok(Timespec {
            sec: i64::from(be_u32(buf, off)? as i32),
            nsec: be_u32(buf, off + 4)?.min(999_999_999),
        })
    }
}

/// Parses the inode record `buf` (exactly one inode) whose number is `ino`.
pub fn parse_inode(sb: &Superblock, buf: &[u8], ino: u64) -> Result<Inode> {
    let bad = |m: &str| Error::BadImage(format!("xfs: inode {ino}: {m}"));
    if be_u16(buf, 0)? != INODE_MAGIC {
        return Err(bad("bad magic (not an allocated inode)"));
    }
    let version = u8_at(buf, 4)?;
    let core = if version == 3 {
        if !sb.v5 {
            return Err(bad("v3 inode on a v4 filesystem"));
        }
        crc::verify(buf, 100, &format!("inode {ino}"))?;
        if be_u64(buf, 152)? != ino {
            return Err(bad("records a different inode number"));
        }
        if slice(buf, 160, 16)? != sb.meta_uuid {
            return Err(bad("belongs to another filesystem (UUID)"));
        }
        CORE_V3
    } else if (1..=2).contains(&version) && !sb.v5 {
        CORE_V2
    } else {
        return Err(bad("unsupported inode version"));
    };
    let flags2 = if version == 3 { be_u64(buf, 120)? } else { 0 };
    let big = flags2 & FLAGS2_BIGTIME != 0;
    let nrext64 = flags2 & FLAGS2_NREXT64 != 0;
    let (nextents, anextents) = if nrext64 {
        (be_u64(buf, 24)?, u64::from(be_u32(buf, 76)?))
    } else {
        (u64::from(be_u32(buf, 76)?), u64::from(be_u16(buf, 80)?))
    };
    let nlink = if version == 1 {
        u32::from(be_u16(buf, 6)?)
    } else {
        be_u32(buf, 16)?
    };
    let literal = buf
        .len()
        .checked_sub(core)
        .ok_or_else(|| bad("too small"))?;
    let forkoff = usize::from(u8_at(buf, 82)?) * 8;
    let (dsize, aformat) = if forkoff == 0 {
        (literal, None)
    } else {
        if forkoff >= literal {
            return Err(bad("attr fork offset outside the inode"));
        }
        (forkoff, Some(ForkFormat::from_u8(u8_at(buf, 83)?)?))
    };
    let size = be_u64(buf, 56)?;
    if size > i64::MAX as u64 {
        return Err(bad("size is negative"));
    }
    Ok(Inode {
        mode: be_u16(buf, 2)?,
        uid: be_u32(buf, 8)?,
        gid: be_u32(buf, 12)?,
        nlink,
        atime: timestamp(buf, 32, big)?,
        mtime: timestamp(buf, 40, big)?,
        ctime: timestamp(buf, 48, big)?,
        size,
        nblocks: be_u64(buf, 64)?,
        nextents,
        anextents,
        flags: be_u16(buf, 90)?,
        format: ForkFormat::from_u8(u8_at(buf, 5)?)?,
        aformat,
        data_fork: slice(buf, core, dsize)?.to_vec(),
        attr_fork: slice(buf, core + dsize, literal - dsize)?.to_vec(),
    })
}

/// One extent: file block `off`, `len` blocks at filesystem block `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First file block.
    pub off: u64,
    /// First filesystem block (AG-encoded).
    pub start: u64,
    /// Length in blocks.
    pub len: u64,
    /// Preallocated, reads as zeros.
    pub unwritten: bool,
}

/// Decodes one packed 16-byte extent record.
pub fn parse_extent(buf: &[u8], off: usize) -> Result<Extent> {
    let l0 = be_u64(buf, off)?;
    let l1 = be_u64(buf, off + 8)?;
    Ok(Extent {
        unwritten: l0 >> 63 != 0,
        off: (l0 & ((1 << 63) - 1)) >> 9,
        start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        len: l1 & ((1 << 21) - 1),
    })
}

/// Decodes `n` extent records from `buf`.
pub fn parse_extents(buf: &[u8], n: u64) -> Result<Vec<Extent>> {
    let n = usize::try_from(n).map_err(|_| Error::bad("xfs: extent count too large"))?;
    if n.checked_mul(16).is_none_or(|b| b > buf.len()) {
        return Err(Error::BadImage(format!(
            "xfs: {n} extents do not fit in {} bytes",
            buf.len()
        )));
    }
    (0..n).map(|i| parse_extent(buf, i * 16)).collect()
}

/// Sizes of the rdev encoding in a device inode's data fork.
pub fn parse_rdev(fork: &[u8]) -> Result<(u32, u32)> {
    let v = be_u32(fork, 0)?;
    Ok(((v >> 18) & 0x3fff, v & 0x3ffff))
}
