//! The I/O side: superblock choice, the chunk map, verified nodes through a bounded cache, and
//! key-range scans over a tree.

use crate::chunk::{parse_chunk, ChunkMap};
use crate::key::{Key, CHUNK_ITEM};
use crate::node::{self, Expect, Node};
use crate::sb::{self, Superblock, SB_OFFSETS, SB_SIZE};
use diskfab_storage::limits::alloc_bytes;
use diskfab_storage::{DevRef, Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// Memory the node cache may hold.
const CACHE_BYTES: usize = 32 << 20;

/// A tree's root: logical address and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeRoot {
    /// Logical address of the root node.
    pub bytenr: u64,
    /// Its level.
    pub level: u8,
}

/// An open btrfs volume: one device, its chosen superblock and chunk map.
#[derive(Debug)]
pub struct Volume {
    dev: DevRef,
    /// The chosen superblock.
    pub sb: Superblock,
    chunks: ChunkMap,
    cache: HashMap<u64, Arc<Node>>,
}

/// Reads every superblock copy that fits on `dev` and chooses one.
pub fn read_superblock(dev: &DevRef) -> Result<Superblock> {
    let mut copies = Vec::new();
    for at in SB_OFFSETS {
        if at + SB_SIZE as u64 <= dev.size() {
            let mut b = vec![0u8; SB_SIZE];
            dev.read_at(&mut b, at)?;
            copies.push((at, b));
        }
    }
    sb::choose(&copies)
}

impl Volume {
    /// Opens the volume: superblock, system chunks, then the whole chunk tree.
    pub fn open(dev: DevRef) -> Result<Volume> {
        let sb = read_superblock(&dev)?;
        if sb.num_devices != 1 {
            return Err(Error::Unsupported(format!(
                "btrfs over {} devices is not supported (single-device filesystems only)",
                sb.num_devices
            )));
        }
        let mut chunks = ChunkMap::default();
        for c in &sb.sys_chunks {
            chunks.insert(c.clone())?;
        }
        let mut v = Volume {
            dev,
            sb,
            chunks,
            cache: HashMap::new(),
        };
        let root = TreeRoot {
            bytenr: v.sb.chunk_root,
            level: v.sb.chunk_root_level,
        };
        let mut found = Vec::new();
        v.scan(
            root,
            Key::new(0, 0, 0),
            Key::new(u64::MAX, u8::MAX, u64::MAX),
            &mut |k, d| {
                if k.ty == CHUNK_ITEM {
                    found.push(parse_chunk(k.offset, d)?.0);
                }
                Ok(true)
            },
        )?;
        for c in found {
            v.chunks.insert(c)?;
        }
        Ok(v)
    }

    /// The chunk map (for `info`).
    pub fn chunks(&self) -> &ChunkMap {
        &self.chunks
    }

    /// The root tree's root.
    pub fn root_tree(&self) -> TreeRoot {
        TreeRoot {
            bytenr: self.sb.root,
            level: self.sb.root_level,
        }
    }

    /// Reads `buf.len()` bytes at logical address `addr` (first mirror).
    pub fn read_logical(&self, mut addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let (phys, left) = self.chunks.map(addr, self.sb.devid)?;
            let n = (buf.len() - done).min(usize::try_from(left).unwrap_or(usize::MAX));
            let p = phys[0];
            if p.checked_add(n as u64).is_none_or(|e| e > self.dev.size()) {
                return Err(Error::bad(format!(
                    "btrfs logical {addr} maps past the end of the device"
                )));
            }
            self.dev.read_at(&mut buf[done..done + n], p)?;
            done += n;
            addr += n as u64;
        }
        Ok(())
    }

    /// Reads and verifies a node, trying each mirror until one is valid.
    pub fn node(&mut self, bytenr: u64, level: Option<u8>) -> Result<Arc<Node>> {
        if let Some(n) = self.cache.get(&bytenr) {
            if level.is_none_or(|l| l == n.level) {
                return Ok(n.clone());
            }
        }
        let size = self.sb.nodesize as usize;
        let (phys, left) = self.chunks.map(bytenr, self.sb.devid)?;
        if left < size as u64 {
            return Err(Error::bad(format!(
                "btrfs tree node at {bytenr} crosses its chunk"
            )));
        }
        let exp = Expect {
            bytenr,
            level,
            csum: self.sb.csum,
            fsid: &self.sb.meta_uuid,
        };
        let mut err = None;
        for p in phys {
            let mut data = alloc_bytes(size as u64, "btrfs tree node")?;
            if p.checked_add(size as u64)
                .is_none_or(|e| e > self.dev.size())
            {
                err = Some(Error::bad(format!(
                    "btrfs tree node at {bytenr} is past the device end"
                )));
                continue;
            }
            self.dev.read_at(&mut data, p)?;
            match node::parse(data, &exp) {
                Ok(n) => {
                    let n = Arc::new(n);
                    if self.cache.len() * size >= CACHE_BYTES {
                        self.cache.clear();
                    }
                    self.cache.insert(bytenr, n.clone());
                    return Ok(n);
                }
                Err(e) => err = err.or(Some(e)),
            }
        }
        Err(err.unwrap_or_else(|| Error::bad("btrfs tree node has no copy")))
    }

    /// Calls `f` for every item with `min <= key <= max` in key order, until it returns false.
    pub fn scan(
        &mut self,
        root: TreeRoot,
        min: Key,
        max: Key,
        f: &mut dyn FnMut(&Key, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let bounds = (Key::new(0, 0, 0), None);
        self.scan_node(root.bytenr, Some(root.level), bounds, (min, max), f, true)
            .map(|_| ())
    }

    /// Scans one node whose keys must lie in `[lo, hi)`; returns false when `f` stopped.
    fn scan_node(
        &mut self,
        bytenr: u64,
        level: Option<u8>,
        (lo, hi): (Key, Option<Key>),
        (min, max): (Key, Key),
        f: &mut dyn FnMut(&Key, &[u8]) -> Result<bool>,
        is_root: bool,
    ) -> Result<bool> {
        let n = self.node(bytenr, level)?;
        let in_bounds = |k: &Key| *k >= lo && hi.is_none_or(|h| *k < h);
        if n.level == 0 {
            if n.items.is_empty() && !is_root {
                return Err(Error::bad(format!(
                    "btrfs empty leaf at {bytenr} inside a tree"
                )));
            }
            // Keys are sorted (checked by the parser): the first and last bound them all.
            let ends = [n.items.first(), n.items.last()];
            if !ends.iter().flatten().all(|(k, _)| in_bounds(k)) {
                return Err(Error::bad(format!(
                    "btrfs leaf at {bytenr} holds keys outside its parent's range"
                )));
            }
            let start = n.items.partition_point(|(k, _)| *k < min);
            for (i, (k, _)) in n.items.iter().enumerate().skip(start) {
                if *k > max {
                    return Ok(false);
                }
                if *k >= min && !f(k, n.item_data(i))? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let ends = [n.ptrs.first(), n.ptrs.last()];
        if !ends.iter().flatten().all(|(k, _)| in_bounds(k)) {
            return Err(Error::bad(format!(
                "btrfs node at {bytenr} holds keys outside its parent's range"
            )));
        }
        // The first child that can hold `min`: the last whose first key is <= min.
        let start = n.ptrs.partition_point(|(k, _)| *k <= min).saturating_sub(1);
        for (i, &(k, child)) in n.ptrs.iter().enumerate().skip(start) {
            let next = n.ptrs.get(i + 1).map(|p| p.0).or(hi);
            if next.is_some_and(|nk| nk <= min) {
                continue;
            }
            if k > max {
                return Ok(false);
            }
            let lvl = Some(n.level - 1);
            if !self.scan_node(child, lvl, (k, next), (min, max), f, false)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every item with `min <= key <= max`, with its data, at most `limit` items.
    pub fn items(
        &mut self,
        root: TreeRoot,
        min: Key,
        max: Key,
        limit: usize,
    ) -> Result<Vec<(Key, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        self.scan(root, min, max, &mut |k, d| {
            bytes += d.len() as u64 + 32;
            diskfab_storage::limits::check_budget(bytes, "btrfs item list")?;
            if out.len() >= limit {
                return Err(Error::bad(format!(
                    "btrfs: more than {limit} items for one object"
                )));
            }
            out.push((*k, d.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }
}
