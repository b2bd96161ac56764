//! Unit tests of the pure log parser on hand-built logs (the qemu-made dirty images are in
//! `tests/vhdx_log_oracle.rs`).

use super::*;

const GUID: [u8; 16] = [7; 16];
const MIB: u64 = 1 << 20;

fn place() -> LogPlace {
    LogPlace {
        offset: MIB,
        guid: GUID,
        max_file: 64 * MIB,
    }
}

/// A valid entry: `writes` as (offset, Some(sector bytes)) data or (offset, None) 4 KiB zero.
fn entry(seq: u64, tail: u32, guid: [u8; 16], writes: &[(u64, Option<u8>)]) -> Vec<u8> {
    let data: Vec<_> = writes.iter().filter(|w| w.1.is_some()).collect();
    let desc_sectors = (64 + 32 * writes.len()).div_ceil(4096);
    let len = (desc_sectors + data.len()) * 4096;
    let mut e = vec![0u8; len];
    e[..4].copy_from_slice(b"loge");
    e[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    e[12..16].copy_from_slice(&tail.to_le_bytes());
    e[16..24].copy_from_slice(&seq.to_le_bytes());
    e[24..28].copy_from_slice(&(writes.len() as u32).to_le_bytes());
    e[32..48].copy_from_slice(&guid);
    e[48..56].copy_from_slice(&(16 * MIB).to_le_bytes());
    e[56..64].copy_from_slice(&(16 * MIB).to_le_bytes());
    let mut k = 0;
    for (i, (off, fill)) in writes.iter().enumerate() {
        let d = &mut e[64 + 32 * i..96 + 32 * i];
        d[16..24].copy_from_slice(&off.to_le_bytes());
        d[24..32].copy_from_slice(&seq.to_le_bytes());
        match fill {
            None => {
                d[..4].copy_from_slice(b"zero");
                d[8..16].copy_from_slice(&4096u64.to_le_bytes());
            }
            Some(b) => {
                d[..4].copy_from_slice(b"desc");
                d[4..8].fill(b.wrapping_add(2));
                d[8..16].fill(b.wrapping_add(1));
                let s = &mut e[(desc_sectors + k) * 4096..(desc_sectors + k + 1) * 4096];
                s.fill(*b);
                s[..4].copy_from_slice(b"data");
                s[4..8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                s[4092..].copy_from_slice(&(seq as u32).to_le_bytes());
                k += 1;
            }
        }
    }
    let c = crc32c(&e);
    e[4..8].copy_from_slice(&c.to_le_bytes());
    e
}

fn log_of(parts: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let mut log = vec![0u8; MIB as usize];
    for (at, e) in parts {
        log[*at..*at + e.len()].copy_from_slice(e);
    }
    log
}

fn sector(b: u8) -> Vec<u8> {
    let mut v = vec![b; 4096];
    v[..8].fill(b.wrapping_add(1));
    v[4092..].fill(b.wrapping_add(2));
    v
}

#[test]
fn one_entry_restores_leading_and_trailing_bytes_of_its_sectors() {
    let log = log_of(&[(0, entry(5, 0, GUID, &[(3 * MIB, Some(0x11))]))]);
    let r = find_active(&log, &place()).unwrap().unwrap();
    assert_eq!(r.entries, 1);
    assert_eq!(
        r.writes,
        vec![LogWrite::Data {
            offset: 3 * MIB,
            data: sector(0x11)
        }]
    );
    assert_eq!(
        (r.flushed_file_offset, r.last_file_offset),
        (16 * MIB, 16 * MIB)
    );
}

#[test]
fn the_sequence_from_the_heads_tail_replays_in_order_and_other_guids_are_ignored() {
    let a = entry(9, 0, GUID, &[(2 * MIB, Some(1))]);
    let b = entry(10, 0, GUID, &[(2 * MIB, Some(2)), (3 * MIB, None)]);
    let c = entry(11, 0, GUID, &[(4 * MIB, Some(3))]);
    let stale = entry(12, 0, [9; 16], &[(5 * MIB, Some(4))]);
    let (la, lb) = (a.len(), b.len());
    let log = log_of(&[(0, a), (la, b), (la + lb, c), (la + lb + 8192, stale)]);
    let r = find_active(&log, &place()).unwrap().unwrap();
    assert_eq!(r.entries, 3);
    let offs: Vec<u64> = r
        .writes
        .iter()
        .map(|w| match w {
            LogWrite::Data { offset, .. } | LogWrite::Zero { offset, .. } => *offset,
        })
        .collect();
    assert_eq!(offs, vec![2 * MIB, 2 * MIB, 3 * MIB, 4 * MIB]);
}

#[test]
fn the_newest_complete_sequence_wins_and_a_head_whose_tail_is_missing_is_not_one() {
    let old = entry(3, 0, GUID, &[(2 * MIB, Some(1))]);
    let newer = entry(7, 64 << 10, GUID, &[(2 * MIB, Some(2))]);
    // Its tail (8 KiB) points at a sector that holds no entry: not a complete sequence.
    let orphan = entry(20, 8 << 10, GUID, &[(2 * MIB, Some(3))]);
    let log = log_of(&[(0, old), (64 << 10, newer), (128 << 10, orphan)]);
    let r = find_active(&log, &place()).unwrap().unwrap();
    assert_eq!(
        r.writes,
        vec![LogWrite::Data {
            offset: 2 * MIB,
            data: sector(2)
        }]
    );
}

#[test]
fn an_entry_wrapping_around_the_end_of_the_ring_is_read_across_it() {
    let e = entry(4, (MIB - 4096) as u32, GUID, &[(2 * MIB, Some(5))]);
    let mut log = vec![0u8; MIB as usize];
    log[MIB as usize - 4096..].copy_from_slice(&e[..4096]);
    log[..4096].copy_from_slice(&e[4096..]);
    let r = find_active(&log, &place()).unwrap().unwrap();
    assert_eq!(r.writes.len(), 1);
}

#[test]
fn corrupt_entries_are_not_valid_and_leave_no_active_sequence() {
    let good = entry(5, 0, GUID, &[(2 * MIB, Some(1))]);
    let mut bad_crc = good.clone();
    bad_crc[5000] ^= 1;
    let into_headers = entry(5, 0, GUID, &[(64 << 10, Some(1))]);
    let into_log = entry(5, 0, GUID, &[(MIB + 4096, Some(1))]);
    let beyond = entry(5, 0, GUID, &[(64 * MIB, Some(1))]);
    let mut huge_count = good.clone();
    huge_count[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut bad_data_seq = good.clone();
    bad_data_seq[4096 + 4092] ^= 1;
    let mut zero_seq = good;
    zero_seq[16..24].fill(0);
    for e in [
        bad_crc,
        into_headers,
        into_log,
        beyond,
        huge_count,
        bad_data_seq,
        zero_seq,
    ] {
        assert_eq!(find_active(&log_of(&[(0, e)]), &place()).unwrap(), None);
    }
    assert!(find_active(&[0u8; 100], &place()).is_err());
    assert_eq!(find_active(&vec![0xff; 8192], &place()).unwrap(), None);
}

#[test]
fn overlay_applies_later_writes_over_earlier_ones() {
    let r = Replay {
        writes: vec![
            LogWrite::Data {
                offset: 8192,
                data: vec![1; 4096],
            },
            LogWrite::Zero {
                offset: 4096,
                len: 8192,
            },
            LogWrite::Data {
                offset: 4096,
                data: vec![2; 4096],
            },
        ],
        flushed_file_offset: 0,
        last_file_offset: MIB,
        entries: 1,
    };
    let o = Overlay::new(r, 12288);
    assert_eq!(o.len, MIB);
    let mut buf = vec![9u8; 16384];
    o.patch(&mut buf, 0);
    assert!(buf[..4096].iter().all(|&b| b == 9));
    assert!(buf[4096..8192].iter().all(|&b| b == 2));
    assert!(buf[8192..12288].iter().all(|&b| b == 0));
    assert!(buf[12288..].iter().all(|&b| b == 9));
    let mut part = vec![9u8; 100];
    o.patch(&mut part, 8100);
    assert!(part[..92].iter().all(|&b| b == 2) && part[92..].iter().all(|&b| b == 0));
}
