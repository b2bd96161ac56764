//! Chunks: the logical → physical mapping. SINGLE, DUP and the mirrored profiles read from any
//! stripe on this device; striped profiles (RAID0/10/5/6) with more than one stripe are refused
//! by name.

use diskfab_storage::bytes::{le_u16, le_u64};
use diskfab_storage::{Error, Result};

const CHUNK_HEADER: usize = 48;
const STRIPE_SIZE: usize = 32;
/// Most stripes a chunk may list (more than any real filesystem has devices).
const MAX_STRIPES: u16 = 256;

const RAID0: u64 = 1 << 3;
const RAID1: u64 = 1 << 4;
const DUP: u64 = 1 << 5;
const RAID10: u64 = 1 << 6;
const RAID5: u64 = 1 << 7;
const RAID6: u64 = 1 << 8;
const RAID1C3: u64 = 1 << 9;
const RAID1C4: u64 = 1 << 10;

/// One chunk: `length` logical bytes from `logical`, stored on each of `stripes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Logical start.
    pub logical: u64,
    /// Length in bytes.
    pub length: u64,
    /// Block group flags (data/system/metadata and profile).
    pub flags: u64,
    /// (device id, physical offset) of each stripe.
    pub stripes: Vec<(u64, u64)>,
}

impl Chunk {
    /// The profile name as btrfs-progs prints it.
    pub fn profile(&self) -> &'static str {
        let f = self.flags;
        [
            (RAID0, "RAID0"),
            (RAID1, "RAID1"),
            (DUP, "DUP"),
            (RAID10, "RAID10"),
            (RAID5, "RAID5"),
            (RAID6, "RAID6"),
            (RAID1C3, "RAID1C3"),
            (RAID1C4, "RAID1C4"),
        ]
        .iter()
        .find(|(b, _)| f & b != 0)
        .map_or("single", |(_, n)| n)
    }

    /// Whether every stripe holds the whole chunk (single, DUP, RAID1*), or a striped profile
    /// has a single stripe.
    fn mirrored(&self) -> bool {
        self.flags & (RAID0 | RAID10 | RAID5 | RAID6) == 0 || self.stripes.len() == 1
    }
}

/// Parses a chunk item starting at `buf[0]` for logical address `logical`; returns it and its
/// on-disk length.
pub fn parse_chunk(logical: u64, buf: &[u8]) -> Result<(Chunk, usize)> {
    let length = le_u64(buf, 0)?;
    let flags = le_u64(buf, 24)?;
    let n = le_u16(buf, 44)?;
    if n == 0 || n > MAX_STRIPES {
        return Err(Error::bad(format!("btrfs chunk with {n} stripes")));
    }
    if length == 0 || logical.checked_add(length).is_none() {
        return Err(Error::bad(format!(
            "btrfs chunk at {logical} has length {length}"
        )));
    }
    let mut stripes = Vec::with_capacity(usize::from(n));
    for i in 0..usize::from(n) {
        let s = CHUNK_HEADER + i * STRIPE_SIZE;
        stripes.push((le_u64(buf, s)?, le_u64(buf, s + 8)?));
    }
    let c = Chunk {
        logical,
        length,
        flags,
        stripes,
    };
    Ok((c, CHUNK_HEADER + usize::from(n) * STRIPE_SIZE))
}

/// The chunks of a filesystem, sorted and without overlaps.
#[derive(Debug, Default, Clone)]
pub struct ChunkMap {
    chunks: Vec<Chunk>,
}

impl ChunkMap {
    /// Adds a chunk (an identical duplicate is ignored; an overlap is a bad image).
    pub fn insert(&mut self, c: Chunk) -> Result<()> {
        let i = self.chunks.partition_point(|x| x.logical < c.logical);
        if self.chunks.get(i) == Some(&c) {
            return Ok(());
        }
        let end = c.logical + c.length;
        let prev_overlaps = i > 0 && {
            let p = &self.chunks[i - 1];
            p.logical + p.length > c.logical
        };
        let next_overlaps = self.chunks.get(i).is_some_and(|n| n.logical < end);
        if prev_overlaps || next_overlaps {
            return Err(Error::bad(format!(
                "btrfs chunks overlap at logical {}",
                c.logical
            )));
        }
        self.chunks.insert(i, c);
        Ok(())
    }

    /// The profiles in use (for `info`).
    pub fn profiles(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .chunks
            .iter()
            .map(|c| {
                let kind = match c.flags & 7 {
                    1 => "data",
                    2 => "system",
                    4 => "metadata",
                    _ => "mixed",
                };
                format!("{kind}={}", c.profile())
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every physical offset holding logical `addr` on device `devid` (one per mirror), with the
    /// bytes left in the chunk from there.
    pub fn map(&self, addr: u64, devid: u64) -> Result<(Vec<u64>, u64)> {
        let i = self.chunks.partition_point(|x| x.logical <= addr);
        let c = i
            .checked_sub(1)
            .map(|i| &self.chunks[i])
            .filter(|c| addr - c.logical < c.length)
            .ok_or_else(|| Error::bad(format!("btrfs logical address {addr} is in no chunk")))?;
        if !c.mirrored() {
            return Err(Error::Unsupported(format!(
                "btrfs {} chunks over {} stripes are not supported",
                c.profile(),
                c.stripes.len()
            )));
        }
        let within = addr - c.logical;
        let phys: Vec<u64> = c
            .stripes
            .iter()
            .filter(|(d, _)| *d == devid)
            .filter_map(|(_, p)| p.checked_add(within))
            .collect();
        if phys.is_empty() {
            return Err(Error::Unsupported(format!(
                "btrfs chunk at {} lives on another device (multi-device filesystems are not \
                 supported)",
                c.logical
            )));
        }
        Ok((phys, c.length - within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(logical: u64, length: u64, flags: u64, stripes: &[(u64, u64)]) -> Chunk {
        Chunk {
            logical,
            length,
            flags,
            stripes: stripes.to_vec(),
        }
    }

    #[test]
    fn dup_chunks_map_to_both_copies_and_overlaps_are_refused() {
        let mut m = ChunkMap::default();
        m.insert(chunk(
            1 << 20,
            1 << 20,
            4 | DUP,
            &[(1, 100 << 20), (1, 200 << 20)],
        ))
        .unwrap();
        let (p, left) = m.map((1 << 20) + 5, 1).unwrap();
        assert_eq!(p, [(100 << 20) + 5, (200 << 20) + 5]);
        assert_eq!(left, (1 << 20) - 5);
        assert!(m.insert(chunk(3 << 19, 4096, 1, &[(1, 0)])).is_err());
        assert!(matches!(m.map(0, 1), Err(Error::BadImage(_))));
    }

    #[test]
    fn striped_profiles_are_refused_by_name() {
        let mut m = ChunkMap::default();
        m.insert(chunk(0, 1 << 20, 1 | RAID0, &[(1, 0), (2, 0)]))
            .unwrap();
        let e = m.map(10, 1).unwrap_err().to_string();
        assert!(e.contains("RAID0"), "{e}");
    }
}
