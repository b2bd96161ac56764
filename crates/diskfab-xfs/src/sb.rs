//! The superblock (pure parsing) and the geometry derived from it: inode numbers and
//! filesystem block numbers to device byte offsets.

use crate::crc;
use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice, u8_at};
use diskfab_storage::{Error, Result};

/// Superblock magic "XFSB".
pub const SB_MAGIC: u32 = 0x5846_5342;

const INCOMPAT_FTYPE: u32 = 1;
const INCOMPAT_SPINODES: u32 = 2;
const INCOMPAT_META_UUID: u32 = 4;
const INCOMPAT_BIGTIME: u32 = 8;
const INCOMPAT_NEEDSREPAIR: u32 = 16;
const INCOMPAT_NREXT64: u32 = 32;
const INCOMPAT_EXCHRANGE: u32 = 64;
const INCOMPAT_PARENT: u32 = 128;
/// Incompatible features this reader understands.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;
const V4_FEATURES2_FTYPE: u32 = 0x200;
const V4_VERSION_MOREBITS: u16 = 0x8000;

/// The superblock fields the reader uses.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Filesystem block size in bytes.
    pub block_size: u32,
    /// log2 of the block size.
    pub block_log: u8,
    /// Blocks in the data device.
    pub dblocks: u64,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Metadata UUID (the one stamped in v5 metadata blocks).
    pub meta_uuid: [u8; 16],
    /// First block of the internal log (0: external log).
    pub log_start: u64,
    /// Log length in blocks.
    pub log_blocks: u32,
    /// Root directory inode.
    pub root_ino: u64,
    /// Blocks per allocation group.
    pub ag_blocks: u32,
    /// Number of allocation groups.
    pub ag_count: u32,
    /// Inode size in bytes.
    pub inode_size: u16,
    /// log2 of inodes per block.
    pub inopb_log: u8,
    /// log2 of blocks per AG (rounded up).
    pub agblk_log: u8,
    /// log2 of directory blocks in filesystem blocks.
    pub dirblk_log: u8,
    /// Volume label.
    pub label: Vec<u8>,
    /// Free data blocks.
    pub fdblocks: u64,
    /// Version 5 (CRC-enabled) superblock.
    pub v5: bool,
    /// Directory entries carry a file type byte.
    pub ftype: bool,
    /// Feature words, for `info`.
    pub features: Vec<String>,
    /// Incompatible log features (set while a log holds items that need them).
    pub log_incompat: u32,
    /// Whether mkfs/repair left the filesystem half done.
    pub inprogress: bool,
}

fn check(cond: bool, what: &str) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::BadImage(format!("xfs superblock: {what}")))
    }
}

impl Superblock {
    /// Parses and validates a superblock sector (`buf` is at least one sector long for v5).
    pub fn parse(buf: &[u8]) -> Result<Superblock> {
        check(be_u32(buf, 0)? == SB_MAGIC, "bad magic")?;
        let block_size = be_u32(buf, 4)?;
        let version = be_u16(buf, 100)?;
        let v5 = version & 0xf == 5;
        check(version & 0xf == 4 || v5, "unknown version")?;
        let sect_size = be_u16(buf, 102)?;
        let block_log = u8_at(buf, 120)?;
        check(
            (9..=16).contains(&block_log) && block_size == 1 << block_log,
            "bad block size",
        )?;
        check(
            sect_size.is_power_of_two() && (512..=32768).contains(&sect_size),
            "bad sector size",
        )?;
        if v5 {
            let sect = slice(buf, 0, usize::from(sect_size))?;
            crc::verify(sect, 224, "superblock")?;
        }
        let inode_size = be_u16(buf, 104)?;
        check(
            inode_size.is_power_of_two() && (256..=2048).contains(&inode_size),
            "bad inode size",
        )?;
        check(
            !v5 || inode_size >= 512,
            "v5 inodes must be at least 512 bytes",
        )?;
        let inopb_log = u8_at(buf, 123)?;
        check(
            u32::from(inode_size).checked_shl(u32::from(inopb_log)) == Some(block_size),
            "inodes per block do not match the block size",
        )?;
        let ag_blocks = be_u32(buf, 84)?;
        let ag_count = be_u32(buf, 88)?;
        let agblk_log = u8_at(buf, 124)?;
        check(ag_blocks >= 5 && ag_count >= 1, "bad allocation groups")?;
        check(
            agblk_log < 32 && (1u64 << agblk_log) >= u64::from(ag_blocks),
            "bad AG block log",
        )?;
        check(
            u32::from(agblk_log) + u32::from(inopb_log) < 56,
            "inode numbers too wide",
        )?;
        let dblocks = be_u64(buf, 8)?;
        check(
            dblocks <= u64::from(ag_blocks) * u64::from(ag_count) && dblocks > 0,
            "block count outside the AGs",
        )?;
        let dirblk_log = u8_at(buf, 192)?;
        check(
            u32::from(block_log) + u32::from(dirblk_log) <= 16,
            "bad directory block size",
        )?;
        let features2 = be_u32(buf, 200)?;
        let (incompat, ro_compat, log_incompat) = if v5 {
            (be_u32(buf, 216)?, be_u32(buf, 212)?, be_u32(buf, 220)?)
        } else {
            (0, 0, 0)
        };
        if incompat & INCOMPAT_NEEDSREPAIR != 0 {
            return Err(Error::BadImage(
                "xfs: the superblock is flagged 'needs repair': run xfs_repair first".into(),
            ));
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::Unsupported(format!(
                "xfs: incompatible features {:#x} are not supported",
                incompat & !INCOMPAT_KNOWN
            )));
        }
        let ftype = if v5 {
            incompat & INCOMPAT_FTYPE != 0
        } else {
            version & V4_VERSION_MOREBITS != 0 && features2 & V4_FEATURES2_FTYPE != 0
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(slice(buf, 32, 16)?);
        let mut meta_uuid = uuid;
        if v5 && incompat & INCOMPAT_META_UUID != 0 {
            meta_uuid.copy_from_slice(slice(buf, 248, 16)?);
        }
        let label: Vec<u8> = slice(buf, 108, 12)?
            .iter()
            .copied()
            .take_while(|&b| b != 0)
            .collect();
        let mut features = vec![if v5 {
            "v5".to_string()
        } else {
            "v4".to_string()
        }];
        for (bit, name) in [
            (INCOMPAT_FTYPE, "ftype"),
            (INCOMPAT_SPINODES, "sparse-inodes"),
            (INCOMPAT_META_UUID, "meta-uuid"),
            (INCOMPAT_BIGTIME, "bigtime"),
            (INCOMPAT_NREXT64, "nrext64"),
            (INCOMPAT_EXCHRANGE, "exchange-range"),
            (INCOMPAT_PARENT, "parent"),
        ] {
            if incompat & bit != 0 {
                features.push(name.into());
            }
        }
        for (bit, name) in [
            (1, "finobt"),
            (2, "rmapbt"),
            (4, "reflink"),
            (8, "inobtcount"),
        ] {
            if ro_compat & bit != 0 {
                features.push(name.into());
            }
        }
        if v5 {
            features.push("crc".into());
        }
        Ok(Superblock {
            block_size,
            block_log,
            dblocks,
            uuid,
            meta_uuid,
            log_start: be_u64(buf, 48)?,
            log_blocks: be_u32(buf, 96)?,
            root_ino: be_u64(buf, 56)?,
            ag_blocks,
            ag_count,
            inode_size,
            inopb_log,
            agblk_log,
            dirblk_log,
            label,
            fdblocks: be_u64(buf, 144)?,
            v5,
            ftype,
            features,
            log_incompat,
            inprogress: u8_at(buf, 126)? != 0,
        })
    }

    /// Device byte offset of filesystem block `fsb` (AG number in the high bits).
    pub fn fsb_to_byte(&self, fsb: u64) -> Result<u64> {
        let ag = fsb >> self.agblk_log;
        let agbno = fsb & ((1u64 << self.agblk_log) - 1);
        if ag >= u64::from(self.ag_count) || agbno >= u64::from(self.ag_blocks) {
            return Err(Error::BadImage(format!(
                "xfs: block {fsb:#x} is outside the filesystem"
            )));
        }
        let daddr = ag * u64::from(self.ag_blocks) + agbno;
        if daddr >= self.dblocks {
            return Err(Error::BadImage(format!(
                "xfs: block {fsb:#x} is past the end of the filesystem"
            )));
        }
        Ok(daddr << self.block_log)
    }

    /// Device byte offset of inode `ino`.
    pub fn ino_to_byte(&self, ino: u64) -> Result<u64> {
        let shift = u32::from(self.agblk_log) + u32::from(self.inopb_log);
        let fsb = ino >> self.inopb_log;
        let index = ino & ((1u64 << self.inopb_log) - 1);
        if ino >> shift >= u64::from(self.ag_count) || ino == 0 {
            return Err(Error::BadImage(format!(
                "xfs: inode number {ino} is invalid"
            )));
        }
        Ok(self.fsb_to_byte(fsb)? + index * u64::from(self.inode_size))
    }
}
