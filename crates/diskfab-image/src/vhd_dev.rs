//! An open VHD (fixed or dynamic) as a [`BlockDev`]. The footer, dynamic header and every BAT
//! entry are validated on open; nothing is written until the first guest write.

use crate::host::Host;
use crate::vhd::{
    parse_vhd_dyn_header, parse_vhd_footer, VhdDynHeader, VhdFooter, COOKIE, TYPE_DYNAMIC,
    TYPE_FIXED, UNALLOCATED,
};
use diskfab_storage::bytes::be_u32s;
use diskfab_storage::limits::{alloc_bytes, alloc_vec, check_elems};
use diskfab_storage::{check_range, BlockDev, Error, Result};
use std::sync::Mutex;

/// Most BAT entries read (16 MiB of table); more than any 2040 GiB disk with 512 KiB blocks needs.
const MAX_BAT_ENTRIES: u64 = 1 << 22;

struct State {
    bat: Vec<u32>,
    /// Blocks whose sector bitmap is known to be all ones (read without consulting it).
    full: Vec<u64>,
    /// Where the next block goes (the trailing footer moves behind it).
    next_free: u64,
}

impl State {
    fn is_full(&self, blk: usize) -> bool {
        self.full[blk / 64] & (1 << (blk % 64)) != 0
    }
    fn set_full(&mut self, blk: usize) {
        self.full[blk / 64] |= 1 << (blk % 64);
    }
}

/// An open VHD image.
pub(crate) struct VhdDev {
    host: Host,
    /// The footer in use.
    pub(crate) footer: VhdFooter,
    footer_raw: [u8; 512],
    /// The dynamic header (dynamic disks only).
    pub(crate) dynamic: Option<VhdDynHeader>,
    size: u64,
    writable: bool,
    st: Mutex<State>,
}

impl std::fmt::Debug for VhdDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VhdDev({})", self.host.path.display())
    }
}

/// Reads and parses the footer: the one at the end of the file; for a dynamic disk whose
/// trailing footer is missing or damaged, the copy at offset 0. Returns (footer, raw bytes,
/// whether the trailing footer is valid).
fn find_footer(host: &Host, head: &[u8], len: u64) -> Result<(VhdFooter, [u8; 512], bool)> {
    if len < 512 {
        return Err(Error::bad("VHD file is shorter than its footer"));
    }
    let mut end = [0u8; 512];
    host.read(&mut end, len - 512)?;
    let end_err = match parse_vhd_footer(&end) {
        Ok(f) => return Ok((f, end, true)),
        Err(e @ Error::Unsupported(_)) => return Err(e),
        Err(e) => e,
    };
    if head.len() >= 512 && head[..8] == COOKIE {
        let mut raw = [0u8; 512];
        raw.copy_from_slice(&head[..512]);
        match parse_vhd_footer(&raw) {
            Ok(f) if f.disk_type == TYPE_DYNAMIC => return Ok((f, raw, false)),
            Ok(_) => {}
            Err(e @ Error::Unsupported(_)) => return Err(e),
            Err(e) => return Err(e.context("footer copy at offset 0")),
        }
    }
    Err(end_err)
}

/// Region labels at and above this are named structures, below it block numbers.
const NAMED: u64 = u64::MAX - 2;

fn region_name(label: u64) -> String {
    match label.checked_sub(NAMED) {
        Some(0) => "footer copy".into(),
        Some(1) => "dynamic header".into(),
        Some(_) => "block table".into(),
        None => format!("block {label}"),
    }
}

impl VhdDev {
    /// Opens a VHD: `head` is the first bytes of the file (up to 4 KiB).
    pub(crate) fn open(host: Host, head: &[u8], writable: bool) -> Result<Self> {
        let len = host.len()?;
        let (footer, footer_raw, tail_ok) = find_footer(&host, head, len)?;
        let size = footer.virtual_size();
        let bad = |m: String| Error::bad(format!("{}: {m}", host.path.display()));
        let mut st = State {
            bat: Vec::new(),
            full: Vec::new(),
            next_free: 0,
        };
        let dynamic = if footer.disk_type == TYPE_FIXED {
            if size > len - 512 {
                return Err(bad(format!(
                    "fixed VHD of {size} bytes is in a file of only {len} bytes"
                )));
            }
            None
        } else {
            if footer.data_offset.saturating_add(1024) > len {
                return Err(bad(
                    "VHD dynamic header lies past the end of the file".into()
                ));
            }
            let mut raw = [0u8; 1024];
            host.read(&mut raw, footer.data_offset)?;
            let dh = parse_vhd_dyn_header(&raw).map_err(|e| e.context(host.path.display()))?;
            let bs = u64::from(dh.block_size);
            let blocks = size.div_ceil(bs);
            if blocks > u64::from(dh.max_table_entries) || blocks > MAX_BAT_ENTRIES {
                return Err(bad(format!(
                    "VHD block table ({} entries of {bs} bytes) is too small for {size} bytes",
                    dh.max_table_entries
                )));
            }
            if dh.table_offset + dh.bat_bytes() > len {
                return Err(bad("VHD block table lies past the end of the file".into()));
            }
            let mut raw = alloc_bytes(blocks * 4, "the VHD block table")?;
            host.read(&mut raw, dh.table_offset)?;
            st.bat = be_u32s(&raw);
            st.full = alloc_vec(blocks.div_ceil(64), "the VHD block bitmap")?;
            let block_total = dh.bitmap_bytes() + bs;
            // Every structure in the file, which must not overlap: footer copy, dynamic header,
            // BAT, and each allocated block (bitmap + data).
            // (start, length, label): labels are block numbers or [`NAMED`] structures, so
            // that a table of millions of blocks costs 24 bytes per block.
            let allocated = st.bat.iter().filter(|&&e| e != UNALLOCATED).count() as u64;
            let n = check_elems::<(u64, u64, u64)>(allocated + 3, "checking the VHD block table")?;
            let mut regions = Vec::with_capacity(n / 24);
            regions.extend([
                (0, 512, NAMED),
                (footer.data_offset, 1024, NAMED + 1),
                (dh.table_offset, dh.bat_bytes(), NAMED + 2),
            ]);
            for (i, &e) in st.bat.iter().enumerate() {
                if e == UNALLOCATED {
                    continue;
                }
                let start = u64::from(e) * 512;
                if start + block_total > len {
                    return Err(bad(format!(
                        "VHD block {i} at {start:#x} extends past the end of the file ({len} bytes)"
                    )));
                }
                regions.push((start, block_total, i as u64));
            }
            regions.sort_unstable();
            let mut end = 0u64;
            let mut prev = NAMED;
            for &(start, n, what) in &regions {
                if start < end {
                    return Err(bad(format!(
                        "VHD {} at {start:#x} overlaps the {}",
                        region_name(what),
                        region_name(prev)
                    )));
                }
                end = start + n;
                prev = what;
            }
            let tail = if tail_ok { len - 512 } else { len };
            st.next_free = end.max(tail).div_ceil(512) * 512;
            Some(dh)
        };
        Ok(VhdDev {
            host,
            footer,
            footer_raw,
            dynamic,
            size,
            writable,
            st: Mutex::new(st),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("VHD state poisoned".into()))
    }

    /// Blocks allocated in the file (dynamic disks).
    pub(crate) fn allocated(&self) -> u64 {
        self.lock()
            .map(|s| s.bat.iter().filter(|&&e| e != UNALLOCATED).count() as u64)
            .unwrap_or(0)
    }

    /// Reads the sector bitmap of the block at sector `e`; marks the block full if it is.
    fn bitmap(&self, dh: &VhdDynHeader, st: &mut State, blk: usize, e: u32) -> Result<Vec<u8>> {
        let mut bm = vec![0u8; dh.bitmap_bytes() as usize];
        self.host.read(&mut bm, u64::from(e) * 512)?;
        let sectors = (dh.block_size / 512) as usize;
        if (0..sectors).all(|s| bit(&bm, s)) {
            st.set_full(blk);
        }
        Ok(bm)
    }
}

fn bit(bm: &[u8], sector: usize) -> bool {
    bm[sector / 8] & (0x80 >> (sector % 8)) != 0
}

impl BlockDev for VhdDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        let Some(dh) = &self.dynamic else {
            return self.host.read(buf, offset);
        };
        let bs = u64::from(dh.block_size);
        let mut st = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (blk, inner) = ((pos / bs) as usize, pos % bs);
            let n = ((bs - inner) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            let e = st.bat[blk];
            if e == UNALLOCATED {
                out.fill(0);
            } else {
                let data = u64::from(e) * 512 + dh.bitmap_bytes();
                self.host.read(out, data + inner)?;
                if !st.is_full(blk) {
                    // Sectors the bitmap does not mark as present read as zeroes.
                    let bm = self.bitmap(dh, &mut st, blk, e)?;
                    for (i, b) in out.iter_mut().enumerate() {
                        if !bit(&bm, ((inner + i as u64) / 512) as usize) {
                            *b = 0;
                        }
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!(
                "{} is open read-only",
                self.host.path.display()
            )));
        }
        check_range(self.size, offset, buf.len() as u64)?;
        let Some(dh) = &self.dynamic else {
            return self.host.write(buf, offset);
        };
        let bs = u64::from(dh.block_size);
        let bmb = dh.bitmap_bytes();
        let mut st = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (blk, inner) = ((pos / bs) as usize, pos % bs);
            let n = ((bs - inner) as usize).min(buf.len() - done);
            let data = &buf[done..done + n];
            let e = st.bat[blk];
            if e != UNALLOCATED {
                let start = u64::from(e) * 512;
                self.host.write(data, start + bmb + inner)?;
                if !st.is_full(blk) {
                    let mut bm = self.bitmap(dh, &mut st, blk, e)?;
                    let (first, last) = (inner / 512, (inner + n as u64).div_ceil(512));
                    for s in first..last {
                        bm[(s / 8) as usize] |= 0x80 >> (s % 8);
                    }
                    self.host.write(&bm, start)?;
                    let sectors = (dh.block_size / 512) as usize;
                    if (0..sectors).all(|s| bit(&bm, s)) {
                        st.set_full(blk);
                    }
                }
            } else if !data.iter().all(|&x| x == 0) {
                // Append the block where the trailing footer was: bitmap (all present: the
                // rest of the new block reads as zeroes), data, then the footer behind it.
                let start = st.next_free;
                let sector = u32::try_from(start / 512)
                    .ok()
                    .filter(|&s| s != UNALLOCATED)
                    .ok_or_else(|| Error::NoSpace("VHD file has reached 2 TiB".into()))?;
                let end = start + bmb + bs;
                self.host.write(&vec![0xffu8; bmb as usize], start)?;
                self.host.write(data, start + bmb + inner)?;
                self.host.write(&self.footer_raw, end)?;
                self.host
                    .write(&sector.to_be_bytes(), dh.table_offset + blk as u64 * 4)?;
                st.bat[blk] = sector;
                st.set_full(blk);
                st.next_free = end;
            }
            done += n;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        if self.writable {
            self.host.sync()?;
        }
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        check_range(self.size, offset, len)?;
        let Some(dh) = &self.dynamic else {
            return Ok(false);
        };
        let bs = u64::from(dh.block_size);
        let st = self.lock()?;
        let (first, last) = (offset / bs, (offset + len).div_ceil(bs));
        Ok((first..last).all(|b| st.bat.get(b as usize) == Some(&UNALLOCATED)))
    }
}
