//! The block-mapping B+tree (bmbt) of B+tree-format forks: the root in the inode, long-form
//! blocks on disk. The walk is bounded by the inode's extent count and a depth limit.

use crate::crc;
use crate::inode::{parse_extent, Extent};
use crate::sb::Superblock;
use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice};
use diskfab_storage::{Error, Result};

const BMAP_MAGIC: u32 = 0x424d_4150;
const BMA3_MAGIC: u32 = 0x424d_4133;
/// Deepest bmbt accepted (XFS's own limit for 64-bit extent counts is below this).
const MAX_LEVELS: u16 = 12;

/// Reads one filesystem block by its (AG-encoded) number.
pub type BlockReader<'a> = dyn FnMut(u64) -> Result<Vec<u8>> + 'a;

fn header_len(sb: &Superblock) -> usize {
    if sb.v5 {
        72
    } else {
        24
    }
}

/// Checks a long-form bmbt block's header; returns (level, numrecs).
pub fn check_block(sb: &Superblock, buf: &[u8], owner: u64, fsb: u64) -> Result<(u16, u16)> {
    let magic = be_u32(buf, 0)?;
    let want = if sb.v5 { BMA3_MAGIC } else { BMAP_MAGIC };
    if magic != want {
        return Err(Error::BadImage(format!(
            "xfs: inode {owner}: block-map B+tree block {fsb:#x} has a bad magic"
        )));
    }
    if sb.v5 {
        crc::verify(buf, 64, &format!("inode {owner} block-map B+tree block"))?;
        if slice(buf, 40, 16)? != sb.meta_uuid || be_u64(buf, 56)? != owner {
            return Err(Error::BadImage(format!(
                "xfs: inode {owner}: block-map B+tree block {fsb:#x} belongs to someone else"
            )));
        }
    }
    Ok((be_u16(buf, 4)?, be_u16(buf, 6)?))
}

/// Child pointers of a node whose header is `hdr` bytes, with room for `maxrecs` entries.
fn node_ptrs(buf: &[u8], hdr: usize, maxrecs: usize, n: usize) -> Result<Vec<u64>> {
    if n == 0 || n > maxrecs {
        return Err(Error::bad(
            "xfs: block-map B+tree node with a bad record count",
        ));
    }
    let base = hdr + maxrecs * 8;
    (0..n).map(|i| be_u64(buf, base + i * 8)).collect()
}

struct Walk<'a, 'b> {
    sb: &'a Superblock,
    owner: u64,
    limit: u64,
    read: &'a mut BlockReader<'b>,
    out: Vec<Extent>,
    seen: std::collections::HashSet<u64>,
}

impl Walk<'_, '_> {
    fn visit(&mut self, fsb: u64, level: u16) -> Result<()> {
        if !self.seen.insert(fsb) {
            return Err(Error::BadImage(format!(
                "xfs: inode {}: block-map B+tree reaches block {fsb:#x} twice (a loop)",
                self.owner
            )));
        }
        let buf = (self.read)(fsb)?;
        let (lvl, n) = check_block(self.sb, &buf, self.owner, fsb)?;
        if lvl != level {
            return Err(Error::BadImage(format!(
                "xfs: inode {}: block-map B+tree block at level {lvl}, expected {level}",
                self.owner
            )));
        }
        let hdr = header_len(self.sb);
        let n = usize::from(n);
        if level == 0 {
            if n == 0 || hdr + n * 16 > buf.len() {
                return Err(Error::bad(
                    "xfs: block-map B+tree leaf with a bad record count",
                ));
            }
            if (self.out.len() + n) as u64 > self.limit {
                return Err(Error::BadImage(format!(
                    "xfs: inode {}: block-map B+tree holds more extents than the inode records ({})",
                    self.owner, self.limit
                )));
            }
            for i in 0..n {
                self.out.push(parse_extent(&buf, hdr + i * 16)?);
            }
            return Ok(());
        }
        let maxrecs = (buf.len() - hdr) / 16;
        for p in node_ptrs(&buf, hdr, maxrecs, n)? {
            self.visit(p, level - 1)?;
        }
        Ok(())
    }
}

/// Every extent of a B+tree fork whose in-inode root is `root`, in file order; `nextents` is
/// the inode's count (the walk refuses to collect more).
pub fn walk(
    sb: &Superblock,
    root: &[u8],
    owner: u64,
    nextents: u64,
    read: &mut BlockReader<'_>,
) -> Result<Vec<Extent>> {
    let level = be_u16(root, 0)?;
    let n = usize::from(be_u16(root, 2)?);
    if level == 0 || level > MAX_LEVELS {
        return Err(Error::BadImage(format!(
            "xfs: inode {owner}: block-map B+tree root at level {level}"
        )));
    }
    let limit = nextents.min(sb.dblocks);
    diskfab_storage::limits::check_budget(limit.saturating_mul(32), "xfs extent list")?;
    let maxrecs = root.len().saturating_sub(4) / 16;
    let ptrs = node_ptrs(root, 4, maxrecs, n)?;
    let mut w = Walk {
        sb,
        owner,
        limit,
        read,
        out: Vec::new(),
        seen: Default::default(),
    };
    for p in ptrs {
        w.visit(p, level - 1)?;
    }
    let out = w.out;
    if out.windows(2).any(|p| p[1].off < p[0].off + p[0].len) {
        return Err(Error::BadImage(format!(
            "xfs: inode {owner}: block-map B+tree extents overlap or are out of order"
        )));
    }
    Ok(out)
}
