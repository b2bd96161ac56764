//! The clean-log rule. diskfab never replays the XFS log; it reads (and would write) only a
//! filesystem whose log ends with an unmount record. The head of the circular log is where the
//! cycle number stamped in every 512-byte block drops; the last record header before it must
//! be a one-operation record carrying the unmount flag which ends exactly at the head (the
//! kernel's own test for a clean log). Anything else is refused.

use diskfab_storage::bytes::{be_u32, be_u64, u8_at};
use diskfab_storage::{Error, Result};

const BB: u64 = 512;
const RECORD_MAGIC: u32 = 0xfeed_babe;
const UNMOUNT_TRANS: u8 = 0x20;
/// How far back from the head a record header is searched for (XFS records are at most
/// 256 KiB of data plus headers).
const MAX_BACK: u64 = 1024;

/// Reads `n` 512-byte log blocks from log block `blk`.
pub type LogReader<'a> = dyn FnMut(u64, u64) -> Result<Vec<u8>> + 'a;

fn dirty(why: &str) -> Error {
    Error::Unsupported(format!(
        "xfs: the log is not clean ({why}); diskfab does not replay the XFS log. Rule: the last \
         log record must be an unmount record. Mount the filesystem once (and unmount it) or run \
         xfs_repair to recover it, then retry"
    ))
}

/// Checks that the log of `bbs` basic blocks read through `read` was cleanly unmounted.
pub fn check_clean(bbs: u64, read: &mut LogReader<'_>) -> Result<()> {
    if bbs < 2 {
        return Err(Error::bad("xfs: log too small"));
    }
    // A block's cycle: its first word, or the header's h_cycle for record headers.
    let mut cycle = |b: u64| -> Result<u32> {
        let blk = read(b, 1)?;
        match be_u32(&blk, 0)? {
            RECORD_MAGIC => be_u32(&blk, 4),
            c => Ok(c),
        }
    };
    let first = cycle(0)?;
    let last = cycle(bbs - 1)?;
    if first == 0 {
        return Err(dirty("the log is empty"));
    }
    // Blocks [0, head) carry `first`; [head, bbs) the previous cycle (or 0 when never written).
    let head = if first == last {
        bbs
    } else {
        let (mut lo, mut hi) = (0u64, bbs - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if cycle(mid)? == first {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    };
    let from = head.saturating_sub(MAX_BACK);
    let chunk = read(from, head - from)?;
    let mut blk = head;
    let rec = loop {
        if blk == from {
            return Err(dirty("no log record found before the head"));
        }
        blk -= 1;
        let off = ((blk - from) * BB) as usize;
        if be_u32(&chunk, off)? == RECORD_MAGIC {
            break blk;
        }
    };
    let hdr = read(rec, 1)?;
    let lsn = be_u64(&hdr, 16)?;
    let len = u64::from(be_u32(&hdr, 12)?);
    let ops = be_u32(&hdr, 40)?;
    let size = u64::from(be_u32(&hdr, 320)?);
    let hdr_bbs = if be_u32(&hdr, 8)? >= 2 && size > 32768 {
        size.div_ceil(32768)
    } else {
        1
    };
    let end = rec + hdr_bbs + len.div_ceil(BB);
    if ops != 1 || end != head || lsn & 0xffff_ffff != rec {
        return Err(dirty(&format!(
            "the last record at log block {rec} is not a lone unmount record ending at the head"
        )));
    }
    let op = read((rec + hdr_bbs) % bbs, 1)?;
    if u8_at(&op, 9)? & UNMOUNT_TRANS == 0 {
        return Err(dirty(&format!(
            "the last record at log block {rec} is not an unmount record"
        )));
    }
    Ok(())
}
