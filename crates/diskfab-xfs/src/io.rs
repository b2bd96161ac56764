//! Device access for the reader: bounded reads, fork extent maps and logical fork blocks.

use crate::bmbt;
use crate::inode::{parse_extents, Extent, ForkFormat, Inode};
use crate::sb::Superblock;
use diskfab_storage::{limits, DevRef, Error, Result};

/// The device and superblock every lookup needs.
pub struct Vol {
    /// The device.
    pub dev: DevRef,
    /// The superblock.
    pub sb: Superblock,
}

impl Vol {
    /// Reads `len` bytes at `off`.
    pub fn read(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        if off.checked_add(len).is_none_or(|end| end > self.dev.size()) {
            return Err(Error::BadImage(format!(
                "xfs: {len} bytes at {off} lie past the end of the device"
            )));
        }
        let mut b = limits::alloc_bytes(len, "xfs read")?;
        self.dev.read_at(&mut b, off)?;
        Ok(b)
    }

    /// Reads `n` filesystem blocks starting at block `fsb`.
    pub fn read_fsb(&self, fsb: u64, n: u64) -> Result<Vec<u8>> {
        self.check_run(fsb, n)?;
        self.read(self.sb.fsb_to_byte(fsb)?, n << self.sb.block_log)
    }

    /// Checks that `n` blocks from `fsb` stay inside one AG and the filesystem.
    pub fn check_run(&self, fsb: u64, n: u64) -> Result<()> {
        let agbno = fsb & ((1u64 << self.sb.agblk_log) - 1);
        if n == 0 || agbno + n > u64::from(self.sb.ag_blocks) {
            return Err(Error::BadImage(format!(
                "xfs: extent of {n} blocks at {fsb:#x} leaves its allocation group"
            )));
        }
        self.sb.fsb_to_byte(fsb + n - 1)?;
        Ok(())
    }

    /// Reads the raw inode record `ino`.
    pub fn read_inode(&self, ino: u64) -> Result<Inode> {
        let off = self.sb.ino_to_byte(ino)?;
        let buf = self.read(off, u64::from(self.sb.inode_size))?;
        crate::inode::parse_inode(&self.sb, &buf, ino)
    }

    /// The extents of a fork (`attr` selects the attr fork), checked and in file order.
    pub fn extents(&self, ino: u64, inode: &Inode, attr: bool) -> Result<Vec<Extent>> {
        let (format, fork, n) = if attr {
            let f = inode
                .aformat
                .ok_or_else(|| Error::bad("xfs: no attr fork"))?;
            (f, &inode.attr_fork, inode.anextents)
        } else {
            (inode.format, &inode.data_fork, inode.nextents)
        };
        let list = match format {
            ForkFormat::Extents => parse_extents(fork, n)?,
            ForkFormat::Btree => {
                let mut read = |fsb: u64| self.read_fsb(fsb, 1);
                bmbt::walk(&self.sb, fork, ino, n, &mut read)?
            }
            _ => return Err(Error::bad("xfs: fork has no extents")),
        };
        let mut next = 0u64;
        for e in &list {
            if e.off < next {
                return Err(Error::BadImage(format!(
                    "xfs: inode {ino}: extents overlap or are out of order"
                )));
            }
            self.check_run(e.start, e.len)?;
            next = e.off + e.len;
        }
        Ok(list)
    }

    /// Reads `n` logical blocks from `lblk` of a fork mapped by `map`; `None` if any is a hole
    /// or unwritten.
    pub fn read_mapped(&self, map: &[Extent], lblk: u64, n: u64) -> Result<Option<Vec<u8>>> {
        let bs = u64::from(self.sb.block_size);
        let mut out = limits::alloc_bytes(n * bs, "xfs metadata block")?;
        let mut done = 0;
        while done < n {
            let b = lblk + done;
            let Some(e) = find(map, b) else {
                return Ok(None);
            };
            if e.unwritten {
                return Ok(None);
            }
            let run = (e.off + e.len - b).min(n - done);
            let data = self.read_fsb(e.start + (b - e.off), run)?;
            out[(done * bs) as usize..((done + run) * bs) as usize].copy_from_slice(&data);
            done += run;
        }
        Ok(Some(out))
    }

    /// Device sector (512-byte unit) of logical block `lblk` in `map`, for v5 self checks.
    pub fn daddr(&self, map: &[Extent], lblk: u64) -> Result<u64> {
        let e = find(map, lblk).ok_or_else(|| Error::bad("xfs: unmapped block"))?;
        Ok(self.sb.fsb_to_byte(e.start + (lblk - e.off))? / 512)
    }
}

/// The extent holding logical block `b`.
pub fn find(map: &[Extent], b: u64) -> Option<&Extent> {
    let i = map.partition_point(|e| e.off + e.len <= b);
    map.get(i).filter(|e| e.off <= b)
}
