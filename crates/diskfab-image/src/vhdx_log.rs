//! VHDX log (MS-VHDX §2.3): pure parsing of the metadata log and the list of writes its active
//! sequence replays (no I/O). Every field is validated; an entry that fails any check is not
//! part of any sequence, as the specification requires.
//!
//! Layout facts: the log is a ring of 4 KiB-aligned entries. An entry starts with descriptor
//! sectors (a 64-byte header — `loge`, CRC-32C over the whole entry, entry length, tail offset,
//! sequence number, descriptor count, log GUID, flushed and last file offsets — then 32-byte
//! descriptors: `desc` data descriptors carrying the first 8 and last 4 bytes of a 4 KiB
//! sector, `zero` descriptors zeroing a range), followed by one `data` sector per data
//! descriptor (sequence number split around 4084 payload bytes). The active sequence is the
//! valid run of consecutive sequence numbers, all with the header's log GUID, whose head's tail
//! lies inside it, with the largest head sequence number.

use crate::vhdx::crc32c;
use diskfab_storage::bytes::{array, le_u32, le_u64};
use diskfab_storage::{Error, Result};
use std::collections::{BTreeMap, HashMap};

const SECTOR: u64 = 4096;
const ENTRY_SIG: &[u8; 4] = b"loge";
const DATA_DESC_SIG: &[u8; 4] = b"desc";
const ZERO_DESC_SIG: &[u8; 4] = b"zero";
const DATA_SIG: &[u8; 4] = b"data";
/// Largest log diskfab reads (Hyper-V and qemu make 1 MiB logs).
pub const MAX_LOG: u64 = 16 << 20;
/// Writes below this offset (file identifier and the two headers) never come from the log.
const FIRST_LOGGED: u64 = 192 << 10;

/// One write of the log: a whole 4 KiB sector, or a zeroed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogWrite {
    /// Write `data` (4096 bytes) at `offset`.
    Data {
        /// File offset (multiple of 4 KiB).
        offset: u64,
        /// The restored sector.
        data: Vec<u8>,
    },
    /// Zero `len` bytes at `offset`.
    Zero {
        /// File offset (multiple of 4 KiB).
        offset: u64,
        /// Length (multiple of 4 KiB).
        len: u64,
    },
}

/// What replaying the active sequence does to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The writes, in replay order.
    pub writes: Vec<LogWrite>,
    /// The file must be at least this long, or it was truncated (head entry's field).
    pub flushed_file_offset: u64,
    /// The file is extended to at least this length after the writes.
    pub last_file_offset: u64,
    /// Entries in the active sequence.
    pub entries: usize,
}

/// Where the log lies and which GUID its entries must carry.
#[derive(Debug, Clone, Copy)]
pub struct LogPlace {
    /// File offset of the log.
    pub offset: u64,
    /// The header's log GUID.
    pub guid: [u8; 16],
    /// Largest file offset a write may reach (bounds hostile descriptors).
    pub max_file: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    len: u64,
    tail: u64,
    seq: u64,
    flushed: u64,
    last: u64,
    writes: Vec<LogWrite>,
}

/// The `len` bytes at `at` of the ring `log`, wrapping at its end.
fn ring(log: &[u8], at: u64, len: u64) -> Vec<u8> {
    let n = log.len() as u64;
    let mut v = Vec::with_capacity(len as usize);
    let mut pos = at % n;
    let mut left = len;
    while left > 0 {
        let k = left.min(n - pos);
        v.extend_from_slice(&log[pos as usize..(pos + k) as usize]);
        left -= k;
        pos = (pos + k) % n;
    }
    v
}

/// Parses the entry at `at`, or `None` when it is not a valid entry.
fn parse_entry(log: &[u8], at: u64, place: &LogPlace) -> Option<Entry> {
    let n = log.len() as u64;
    let h = ring(log, at, SECTOR);
    if &h[..4] != ENTRY_SIG {
        return None;
    }
    let len = u64::from(le_u32(&h, 8).ok()?);
    let tail = u64::from(le_u32(&h, 12).ok()?);
    let seq = le_u64(&h, 16).ok()?;
    let count = u64::from(le_u32(&h, 24).ok()?);
    let (flushed, last) = (le_u64(&h, 48).ok()?, le_u64(&h, 56).ok()?);
    let desc_sectors = (64 + 32 * count).div_ceil(SECTOR);
    if len < SECTOR
        || !len.is_multiple_of(SECTOR)
        || len > n
        || !tail.is_multiple_of(SECTOR)
        || tail >= n
        || seq == 0
        || array::<16>(&h, 32).ok()? != place.guid
        || !flushed.is_multiple_of(1 << 20)
        || !last.is_multiple_of(1 << 20)
        || flushed > place.max_file
        || last > place.max_file
        || desc_sectors * SECTOR > len
    {
        return None;
    }
    let e = ring(log, at, len);
    let writes = parse_descriptors(&e, seq, count, desc_sectors, place, n)?;
    let stored = le_u32(&e, 4).ok()?;
    let mut z = e;
    z[4..8].fill(0);
    if crc32c(&z) != stored {
        return None;
    }
    Some(Entry {
        len,
        tail,
        seq,
        flushed,
        last,
        writes,
    })
}

/// The writes of an entry `e` (its whole bytes), or `None` when a descriptor or data sector is
/// invalid or a write would land outside the allowed part of the file.
fn parse_descriptors(
    e: &[u8],
    seq: u64,
    count: u64,
    desc_sectors: u64,
    place: &LogPlace,
    log_len: u64,
) -> Option<Vec<LogWrite>> {
    let log_end = place.offset.saturating_add(log_len);
    let allowed = |off: u64, len: u64| {
        off >= FIRST_LOGGED
            && off
                .checked_add(len)
                .is_some_and(|end| end <= place.max_file)
            && (off + len <= place.offset || off >= log_end)
    };
    let mut writes = Vec::new();
    let mut data_at = desc_sectors * SECTOR;
    for i in 0..count as usize {
        let d = &e[64 + 32 * i..96 + 32 * i];
        let off = le_u64(d, 16).ok()?;
        if le_u64(d, 24).ok()? != seq || !off.is_multiple_of(SECTOR) {
            return None;
        }
        match &d[..4] {
            s if s == ZERO_DESC_SIG => {
                let len = le_u64(d, 8).ok()?;
                if !len.is_multiple_of(SECTOR) || !allowed(off, len) {
                    return None;
                }
                writes.push(LogWrite::Zero { offset: off, len });
            }
            s if s == DATA_DESC_SIG => {
                let at = data_at as usize;
                let sec = e.get(at..at + SECTOR as usize)?;
                if &sec[..4] != DATA_SIG
                    || u64::from(le_u32(sec, 4).ok()?) != seq >> 32
                    || u64::from(le_u32(sec, 4092).ok()?) != seq & 0xffff_ffff
                    || !allowed(off, SECTOR)
                {
                    return None;
                }
                let mut data = sec.to_vec();
                data[..8].copy_from_slice(&d[8..16]);
                data[4092..].copy_from_slice(&d[4..8]);
                writes.push(LogWrite::Data { offset: off, data });
                data_at += SECTOR;
            }
            _ => return None,
        }
    }
    Some(writes)
}

/// Finds the active sequence of `log` (the whole log region) and returns what replaying it
/// writes; `Ok(None)` when no valid sequence exists. Never panics; every entry is parsed once
/// and memory stays within a few copies of the log.
pub fn find_active(log: &[u8], place: &LogPlace) -> Result<Option<Replay>> {
    let n = log.len() as u64;
    if n == 0 || !n.is_multiple_of(SECTOR) || n > MAX_LOG {
        return Err(Error::bad(format!(
            "VHDX log of {n} bytes (a multiple of 4 KiB up to {MAX_LOG} expected)"
        )));
    }
    let mut parsed: Vec<Entry> = Vec::new();
    let mut cache: HashMap<u64, Option<usize>> = HashMap::new();
    let mut entry = |at: u64, parsed: &mut Vec<Entry>| {
        *cache.entry(at).or_insert_with(|| {
            parse_entry(log, at, place).map(|e| {
                parsed.push(e);
                parsed.len() - 1
            })
        })
    };
    // (head sequence number, indices of the entries from the tail to the head)
    let mut best: Option<(u64, Vec<usize>)> = None;
    let (mut cur, mut old) = (0u64, 0u64);
    loop {
        let (mut seqv, mut starts): (Vec<usize>, Vec<u64>) = (Vec::new(), Vec::new());
        let (mut head, mut used) = (cur, 0u64);
        while let Some(i) = entry(head, &mut parsed) {
            let e = &parsed[i];
            let follows = seqv
                .last()
                .is_none_or(|&p| parsed[p].seq.checked_add(1) == Some(e.seq));
            if !follows || used + e.len > n {
                break;
            }
            used += e.len;
            starts.push(head);
            head = (head + e.len) % n;
            seqv.push(i);
        }
        let last = seqv.last().map(|&h| &parsed[h]);
        match last.and_then(|h| starts.iter().position(|&s| s == h.tail).map(|t| (h.seq, t))) {
            Some((seq, t)) => {
                if best.as_ref().is_none_or(|b| seq > b.0) {
                    best = Some((seq, seqv[t..].to_vec()));
                }
                cur = head;
            }
            None => cur = (cur + SECTOR) % n,
        }
        if cur <= old {
            break;
        }
        old = cur;
    }
    let Some((_, idx)) = best else {
        return Ok(None);
    };
    let head = idx.last().map(|&h| (parsed[h].flushed, parsed[h].last));
    let (flushed_file_offset, last_file_offset) = head.unwrap_or((0, 0));
    Ok(Some(Replay {
        entries: idx.len(),
        writes: idx
            .iter()
            .flat_map(|&i| parsed[i].writes.iter().cloned())
            .collect(),
        flushed_file_offset,
        last_file_offset,
    }))
}

/// The replayed writes as an overlay over the unchanged file (a read-only open): whole data
/// sectors by sector number and zeroed ranges; later writes win, as in a real replay.
#[derive(Debug, Default)]
pub struct Overlay {
    data: BTreeMap<u64, Vec<u8>>,
    zeros: Vec<(u64, u64)>,
    /// The file length after the replay.
    pub len: u64,
}

impl Overlay {
    /// Builds the overlay of `r` over a file of `file_len` bytes.
    pub fn new(r: Replay, file_len: u64) -> Self {
        let mut o = Overlay {
            len: file_len.max(r.last_file_offset),
            ..Overlay::default()
        };
        for w in r.writes {
            match w {
                LogWrite::Data { offset, data } => {
                    o.len = o.len.max(offset + SECTOR);
                    o.data.insert(offset / SECTOR, data);
                }
                LogWrite::Zero { offset, len } => {
                    o.len = o.len.max(offset + len);
                    let (a, b) = (offset / SECTOR, (offset + len) / SECTOR);
                    let gone: Vec<u64> = o.data.range(a..b).map(|(k, _)| *k).collect();
                    for k in gone {
                        o.data.remove(&k);
                    }
                    o.zeros.push((offset, offset + len));
                }
            }
        }
        o
    }

    /// Patches `buf`, read from the file at `off`, with the replayed writes.
    pub fn patch(&self, buf: &mut [u8], off: u64) {
        let end = off + buf.len() as u64;
        for &(a, b) in &self.zeros {
            let (s, e) = (a.max(off), b.min(end));
            if s < e {
                buf[(s - off) as usize..(e - off) as usize].fill(0);
            }
        }
        for (&k, d) in self.data.range(off / SECTOR..end.div_ceil(SECTOR)) {
            let (a, b) = (k * SECTOR, k * SECTOR + SECTOR);
            let (s, e) = (a.max(off), b.min(end));
            buf[(s - off) as usize..(e - off) as usize]
                .copy_from_slice(&d[(s - a) as usize..(e - a) as usize]);
        }
    }
}

#[cfg(test)]
#[path = "vhdx_log_tests.rs"]
mod tests;
