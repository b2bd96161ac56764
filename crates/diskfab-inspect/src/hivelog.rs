//! Registry transaction logs (`.LOG1`/`.LOG2`, new "HvLE" format since Windows 8.1): a dirty
//! hive (primary and secondary sequence numbers differ) is recovered in memory by applying the
//! log entries that follow it, in sequence order. Pure: bytes in, bytes and warnings out; the
//! hive files are never modified. Logs are untrusted: every entry is checked (signature, size,
//! Marvin32 hashes, page bounds) and the first bad one ends the recovery.

use diskfab_storage::bytes::{le_u32, le_u64};

/// Size of a primary file's base block; hive bins start here.
const BASE: usize = 4096;
/// Log entries start after the log's 512-byte partial base block.
const LOG_ENTRIES: usize = 512;
/// Seed of the log entry hashes.
const MARVIN_SEED: u64 = 0x82EF_4D88_7A4E_55C5;
/// Largest recovered hive (bins data size from a log entry).
const MAX_HIVE: usize = 512 << 20;
/// Most log entries looked at per log.
const MAX_ENTRIES: usize = 100_000;

/// Marvin32 (the 64-bit state, high word first) of `d` with `seed`.
pub fn marvin32(d: &[u8], seed: u64) -> u64 {
    let (mut lo, mut hi) = (seed as u32, (seed >> 32) as u32);
    let mix = |lo: &mut u32, hi: &mut u32| {
        *hi ^= *lo;
        *lo = lo.rotate_left(20);
        *lo = lo.wrapping_add(*hi);
        *hi = hi.rotate_left(9);
        *hi ^= *lo;
        *lo = lo.rotate_left(27);
        *lo = lo.wrapping_add(*hi);
        *hi = hi.rotate_left(19);
    };
    let mut words = d.chunks_exact(4);
    for w in words.by_ref() {
        lo = lo.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        mix(&mut lo, &mut hi);
    }
    let rest = words.remainder();
    let mut last = 0x80u32 << (8 * rest.len());
    for (i, b) in rest.iter().enumerate() {
        last |= (*b as u32) << (8 * i);
    }
    lo = lo.wrapping_add(last);
    mix(&mut lo, &mut hi);
    mix(&mut lo, &mut hi);
    ((hi as u64) << 32) | lo as u64
}

/// XOR-32 checksum of a base block's first 508 bytes (0 and !0 avoided, as Windows does).
pub fn base_checksum(b: &[u8]) -> Option<u32> {
    let mut x = 0u32;
    for i in 0..127 {
        x ^= le_u32(b, i * 4).ok()?;
    }
    Some(match x {
        0 => 1,
        0xffff_ffff => 0xffff_fffe,
        x => x,
    })
}

/// One checked log entry: sequence number, hive bins data size, (offset, page bytes).
struct Entry<'a> {
    seq: u32,
    bins_size: usize,
    pages: Vec<(usize, &'a [u8])>,
}

/// Parses one HvLE entry at `pos`: (entry, its size).
fn entry(log: &[u8], pos: usize) -> Result<(Entry<'_>, usize), String> {
    let e = log.get(pos..).unwrap_or_default();
    let size = le_u32(e, 4).ok().ok_or("truncated entry")? as usize;
    if size < 40 || !size.is_multiple_of(512) || size > e.len() {
        return Err(format!("entry size {size} is invalid"));
    }
    let e = &e[..size];
    let seq = le_u32(e, 12).ok().ok_or("truncated entry")?;
    let bins_size = le_u32(e, 16).ok().ok_or("truncated entry")? as usize;
    let count = le_u32(e, 20).ok().ok_or("truncated entry")? as usize;
    if le_u64(e, 24).ok() != Some(marvin32(&e[40..], MARVIN_SEED))
        || le_u64(e, 32).ok() != Some(marvin32(&e[..32], MARVIN_SEED))
    {
        return Err(format!("entry {seq} has a wrong hash"));
    }
    if bins_size == 0 || !bins_size.is_multiple_of(4096) || bins_size > MAX_HIVE - BASE {
        return Err(format!(
            "entry {seq}: hive bins data size {bins_size} is invalid"
        ));
    }
    let refs_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(40))
        .filter(|&n| n <= size)
        .ok_or_else(|| format!("entry {seq}: {count} dirty pages do not fit"))?;
    let mut data = refs_end;
    let mut pages = Vec::with_capacity(count);
    for i in 0..count {
        let off = le_u32(e, 40 + i * 8).ok().unwrap_or(u32::MAX) as usize;
        let len = le_u32(e, 44 + i * 8).ok().unwrap_or(u32::MAX) as usize;
        let page = data
            .checked_add(len)
            .and_then(|end| e.get(data..end))
            .ok_or_else(|| format!("entry {seq}: dirty page {i} runs past the entry"))?;
        if off.checked_add(len).is_none_or(|end| end > bins_size) {
            return Err(format!(
                "entry {seq}: dirty page {i} lies outside the hive bins"
            ));
        }
        pages.push((off, page));
        data += len;
    }
    Ok((
        Entry {
            seq,
            bins_size,
            pages,
        },
        size,
    ))
}

/// The checked entries of one log (up to the first bad one, which is reported).
fn entries<'a>(name: &str, log: &'a [u8], w: &mut Vec<String>) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    if log.get(..4) != Some(b"regf") || log.len() < LOG_ENTRIES + 4 {
        if !log.is_empty() {
            w.push(format!("{name}: not a transaction log; ignored"));
        }
        return out;
    }
    if log.get(LOG_ENTRIES..LOG_ENTRIES + 4) == Some(b"DIRT") {
        w.push(format!(
            "{name}: old-format (DIRT) transaction log of Windows before 8.1; not applied"
        ));
        return out;
    }
    let mut pos = LOG_ENTRIES;
    while log.get(pos..pos + 4) == Some(b"HvLE") && out.len() < MAX_ENTRIES {
        match entry(log, pos) {
            Ok((e, size)) => {
                out.push(e);
                pos += size;
            }
            Err(e) => {
                w.push(format!("{name}: {e}; it and later entries ignored"));
                break;
            }
        }
    }
    out
}

/// A primary base block with a wrong checksum is replaced by the first valid partial copy
/// (512 bytes) a log holds, as Windows does; false when there is none.
fn restore_base_block(base: &mut [u8], logs: &[(&str, &[u8])], w: &mut Vec<String>) -> bool {
    let copy = logs.iter().find(|(_, l)| {
        l.get(..4) == Some(b"regf") && l.len() >= 512 && base_checksum(l) == le_u32(l, 508).ok()
    });
    let (Some((name, log)), true) = (copy, base.len() >= 512) else {
        w.push("base block checksum is wrong and no log holds a valid copy; not recovered".into());
        return false;
    };
    base[..512].copy_from_slice(&log[..512]);
    base[28..32].copy_from_slice(&0u32.to_le_bytes()); // file type: primary
    w.push(format!(
        "base block checksum is wrong; restored from {name}"
    ));
    true
}

/// Recovers a dirty hive with its transaction logs (`logs`: (name, bytes) of LOG1 then LOG2):
/// entries from the hive's secondary sequence number on are applied in sequence order while
/// the numbers follow each other; older entries (already in the hive) are ignored. A base block
/// with a wrong checksum is first restored from a log. Returns the hive to read and what
/// happened. A clean hive is returned unchanged.
pub fn recover(mut hive: Vec<u8>, logs: &[(&str, &[u8])]) -> (Vec<u8>, Vec<String>) {
    let mut w = Vec::new();
    let (Some(primary), Some(secondary)) = (le_u32(&hive, 4).ok(), le_u32(&hive, 8).ok()) else {
        return (hive, w);
    };
    let torn = base_checksum(&hive) != le_u32(&hive, 508).ok();
    if hive.get(..4) != Some(b"regf") || (primary == secondary && !torn) {
        return (hive, w);
    }
    if torn && !restore_base_block(&mut hive, logs, &mut w) {
        return (hive, w);
    }
    let secondary = le_u32(&hive, 8).ok().unwrap_or(secondary);
    let all = applicable(logs, secondary, &mut w);
    match apply(&mut hive, &all, &mut w) {
        Some(last) => w.push(format!(
            "dirty hive recovered in memory from its transaction logs (entries {}..={last})",
            all[0].seq
        )),
        None => w.push(
            "dirty hive: no applicable transaction log entry; changes still in the logs are not shown"
                .into(),
        ),
    }
    (hive, w)
}

/// The checked entries of every log from sequence number `from` on, sorted, without repeats.
fn applicable<'a>(logs: &[(&str, &'a [u8])], from: u32, w: &mut Vec<String>) -> Vec<Entry<'a>> {
    let mut all: Vec<Entry> = Vec::new();
    let mut older = 0;
    for (name, log) in logs {
        for e in entries(name, log, w) {
            if e.seq < from {
                older += 1;
            } else {
                all.push(e);
            }
        }
    }
    if older > 0 {
        w.push(format!(
            "{older} log entries older than the hive (sequence < {from}) ignored"
        ));
    }
    all.sort_by_key(|e| e.seq);
    all.dedup_by_key(|e| e.seq);
    all
}

/// Applies consecutive entries to `hive` (stopping at a gap) and updates its base block;
/// returns the last sequence number applied.
fn apply(hive: &mut Vec<u8>, all: &[Entry], w: &mut Vec<String>) -> Option<u32> {
    let mut applied: Option<u32> = None;
    for e in all {
        if let Some(a) = applied.filter(|a| e.seq != a.wrapping_add(1)) {
            w.push(format!("log entry {} does not follow {a}; stopped", e.seq));
            break;
        }
        hive.resize(BASE + e.bins_size, 0);
        for (off, page) in &e.pages {
            hive[BASE + off..BASE + off + page.len()].copy_from_slice(page);
        }
        hive[40..44].copy_from_slice(&(e.bins_size as u32).to_le_bytes());
        applied = Some(e.seq);
    }
    let last = applied?;
    hive[4..8].copy_from_slice(&last.to_le_bytes());
    hive[8..12].copy_from_slice(&last.to_le_bytes());
    if let Some(c) = base_checksum(hive) {
        hive[508..512].copy_from_slice(&c.to_le_bytes());
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marvin32_matches_the_dotnet_runtime_test_vectors() {
        let s = 0x004f_b61a_001b_dbcc;
        assert_eq!(marvin32(b"", s), 0x30ed_35c1_00cd_3c7d);
        assert_eq!(marvin32(&[0xaf], s), 0x48e7_3fc7_7d75_ddc1);
        assert_eq!(marvin32(&[0xe7, 0x0f], s), 0xb5f6_e1fc_485d_bff8);
        assert_eq!(marvin32(&[0x37, 0xf4, 0x95], s), 0xf0b0_7c78_9b8c_f7e8);
        assert_eq!(
            marvin32(&[0x86, 0x42, 0xdc, 0x59], s),
            0x7008_f2e8_7e9c_f556
        );
        assert_eq!(
            marvin32(b"abc", 0xd53c_d9ce_cd08_93b7),
            0x22c7_4339_4927_69bf
        );
    }

    /// A dirty hive (primary = secondary + 1 = `seq` + 1) of one 4 KiB bin filled with `fill`.
    fn dirty_hive(seq: u32, fill: u8) -> Vec<u8> {
        let mut h = vec![fill; BASE + 4096];
        h[..BASE].fill(0);
        h[..4].copy_from_slice(b"regf");
        h[4..8].copy_from_slice(&(seq + 1).to_le_bytes());
        h[8..12].copy_from_slice(&seq.to_le_bytes());
        h[40..44].copy_from_slice(&4096u32.to_le_bytes());
        let c = base_checksum(&h).unwrap();
        h[508..512].copy_from_slice(&c.to_le_bytes());
        h
    }

    /// A log (partial base block + entries) with (sequence, bins size, [(offset, byte, len)]).
    /// A dirty page of a test entry: (offset in the bins, fill byte, length).
    type Page = (u32, u8, usize);

    fn log(entries: &[(u32, u32, &[Page])]) -> Vec<u8> {
        let mut l = dirty_hive(7, 0)[..512].to_vec();
        l[4..8].copy_from_slice(&7u32.to_le_bytes());
        let c = base_checksum(&l).unwrap();
        l[508..512].copy_from_slice(&c.to_le_bytes());
        for (seq, bins, pages) in entries {
            let mut e = vec![0u8; 40];
            e[..4].copy_from_slice(b"HvLE");
            e[12..16].copy_from_slice(&seq.to_le_bytes());
            e[16..20].copy_from_slice(&bins.to_le_bytes());
            e[20..24].copy_from_slice(&(pages.len() as u32).to_le_bytes());
            for (off, _, len) in *pages {
                e.extend(off.to_le_bytes());
                e.extend((*len as u32).to_le_bytes());
            }
            for (_, b, len) in *pages {
                e.extend(std::iter::repeat_n(*b, *len));
            }
            e.resize(e.len().div_ceil(512) * 512, 0);
            let n = e.len() as u32;
            e[4..8].copy_from_slice(&n.to_le_bytes());
            let h1 = marvin32(&e[40..], MARVIN_SEED);
            e[24..32].copy_from_slice(&h1.to_le_bytes());
            let h2 = marvin32(&e[..32], MARVIN_SEED);
            e[32..40].copy_from_slice(&h2.to_le_bytes());
            l.extend(e);
        }
        l
    }

    #[test]
    fn entries_of_both_logs_apply_in_sequence_order_growing_the_hive_until_a_gap() {
        let hive = dirty_hive(7, 0xaa);
        // LOG1 holds 8 and an old 6; LOG2 holds 9 (grows the bins to 8 KiB) and 11 (a gap).
        let l1 = log(&[(6, 4096, &[(0, 0x66, 4096)]), (8, 4096, &[(0, 0x88, 512)])]);
        let l2 = log(&[
            (9, 8192, &[(4096, 0x99, 4096)]),
            (11, 8192, &[(0, 0x11, 512)]),
        ]);
        let (out, w) = recover(hive.clone(), &[("L1", &l1), ("L2", &l2)]);
        assert_eq!(out.len(), BASE + 8192, "{w:?}");
        assert_eq!(
            (out[BASE], out[BASE + 512], out[BASE + 4096]),
            (0x88, 0xaa, 0x99)
        );
        assert_eq!(
            (
                le_u32(&out, 4).ok(),
                le_u32(&out, 8).ok(),
                le_u32(&out, 40).ok()
            ),
            (Some(9), Some(9), Some(8192))
        );
        assert_eq!(base_checksum(&out), le_u32(&out, 508).ok());
        let w = w.join("\n");
        assert!(
            w.contains("1 log entries older") && w.contains("11 does not follow 9"),
            "{w}"
        );
        // A clean hive ignores its logs; a torn base block is restored from the log's copy.
        let mut clean = hive.clone();
        clean[4..8].copy_from_slice(&7u32.to_le_bytes());
        let c = base_checksum(&clean).unwrap();
        clean[508..512].copy_from_slice(&c.to_le_bytes());
        let (out, w) = recover(clean.clone(), &[("L1", &l1)]);
        assert!(out == clean && w.is_empty(), "{w:?}");
        let mut torn = hive;
        torn[508] ^= 1;
        let (out, w) = recover(torn, &[("L1", &l1)]);
        assert!(w[0].contains("restored from L1"), "{w:?}");
        assert_eq!((out[BASE], le_u32(&out, 8).ok()), (0x88, Some(8)), "{w:?}");
    }

    #[test]
    fn hostile_log_entries_are_bounded_and_never_panic() {
        let mut hive = vec![0u8; BASE + 4096];
        hive[..4].copy_from_slice(b"regf");
        hive[4..8].copy_from_slice(&3u32.to_le_bytes());
        hive[8..12].copy_from_slice(&2u32.to_le_bytes());
        let c = base_checksum(&hive).unwrap();
        hive[508..512].copy_from_slice(&c.to_le_bytes());
        let mut log = vec![0u8; 1024];
        log[..4].copy_from_slice(b"regf");
        log[512..516].copy_from_slice(b"HvLE");
        log[516..520].copy_from_slice(&u32::MAX.to_le_bytes());
        let (out, w) = recover(hive.clone(), &[("L1", &log), ("L2", b"junk")]);
        assert_eq!(out, hive);
        assert!(w.iter().any(|w| w.contains("size")), "{w:?}");
        assert!(
            w.iter().any(|w| w.contains("not a transaction log")),
            "{w:?}"
        );
        log[512..516].copy_from_slice(b"DIRT");
        let (_, w) = recover(hive.clone(), &[("L1", &log)]);
        assert!(w.iter().any(|w| w.contains("DIRT")), "{w:?}");
    }
}
