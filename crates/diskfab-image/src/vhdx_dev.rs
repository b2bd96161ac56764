//! An open VHDX (fixed or dynamic) as a [`BlockDev`]. Headers, region table, metadata and every
//! BAT entry are validated on open (no structure may overlap another or lie past the end of the
//! file). A pending log is replayed first ([`crate::vhdx_replay`]): in memory for a read-only
//! open, onto the file for a writable one. Nothing else is written until the first guest write,
//! which first moves both headers to a new sequence number and new write GUIDs.

use crate::host::Host;
use crate::vhdx::{
    bat_entry, header_bytes, parse_header, parse_metadata, parse_region_table, VhdxHeader,
    VhdxMeta, FILE_SIGNATURE, HEADER_OFFSETS, MIB, PAYLOAD_FULLY_PRESENT,
    PAYLOAD_PARTIALLY_PRESENT, REGION_OFFSETS, SB_PRESENT, TABLE_BYTES,
};
use crate::vhdx_log::Overlay;
use diskfab_storage::limits::{alloc_bytes, check_elems};
use diskfab_storage::{check_range, BlockDev, Error, Result};
use std::sync::Mutex;

/// Region labels at and above this are named structures, below it block entry numbers.
const NAMED: u64 = u64::MAX - 3;

fn region_name(label: u64) -> String {
    match label.checked_sub(NAMED) {
        Some(0) => "header area".into(),
        Some(1) => "metadata region".into(),
        Some(2) => "block table".into(),
        Some(_) => "log".into(),
        None => format!("block entry {label}"),
    }
}

/// Most BAT entries loaded (64 MiB of table: a 64 TiB disk with 8 MiB blocks).
const MAX_BAT_ENTRIES: u64 = 1 << 23;
/// Most bytes of the metadata region read (its table plus the items).
const MAX_METADATA: u64 = 8 << 20;

struct State {
    bat: Vec<u64>,
    /// Where the next payload block goes (1 MiB aligned, past every structure).
    next_free: u64,
    /// The header as last written (sequence number and GUIDs of this session).
    hdr: VhdxHeader,
    /// Slot (0 or 1) of the current header.
    slot: usize,
    /// Whether the headers were already updated for this session's writes.
    headers_updated: bool,
}

/// An open VHDX image.
pub(crate) struct VhdxDev {
    host: Host,
    /// The validated metadata.
    pub(crate) meta: VhdxMeta,
    bat_offset: u64,
    writable: bool,
    /// Read-only opens of a file with a pending log: the replayed writes.
    overlay: Option<Overlay>,
    st: Mutex<State>,
}

impl std::fmt::Debug for VhdxDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VhdxDev({})", self.host.path.display())
    }
}

/// The current header and its slot: the valid one with the larger sequence number.
fn current_header(host: &Host) -> Result<(VhdxHeader, usize)> {
    let mut found: Vec<(VhdxHeader, usize)> = Vec::new();
    let mut first_err = None;
    for (slot, &off) in HEADER_OFFSETS.iter().enumerate() {
        let mut b = vec![0u8; 4096];
        host.read(&mut b, off)?;
        match parse_header(&b) {
            Ok(h) => found.push((h, slot)),
            Err(e @ Error::Unsupported(_)) => return Err(e),
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    found
        .into_iter()
        .max_by_key(|(h, _)| h.sequence)
        .ok_or_else(|| first_err.unwrap_or_else(|| Error::bad("VHDX has no valid header")))
}

/// Reads the file, with the replayed log over it when there is one.
fn read_through(host: &Host, overlay: Option<&Overlay>, buf: &mut [u8], off: u64) -> Result<()> {
    host.read(buf, off)?;
    if let Some(o) = overlay {
        o.patch(buf, off);
    }
    Ok(())
}

/// Payload state of a BAT entry.
fn state(e: u64) -> u64 {
    e & 7
}

/// File offset of a BAT entry.
fn offset(e: u64) -> u64 {
    e & !(MIB - 1)
}

impl VhdxDev {
    /// Opens a VHDX: `head` is the first bytes of the file (up to 4 KiB).
    pub(crate) fn open(host: Host, head: &[u8], writable: bool) -> Result<Self> {
        let bad = |m: String| Error::bad(format!("{}: {m}", host.path.display()));
        if !head.starts_with(&FILE_SIGNATURE) {
            return Err(bad("not a VHDX (no vhdxfile identifier)".into()));
        }
        let (hdr, slot) = current_header(&host).map_err(|e| e.context(host.path.display()))?;
        let (overlay, hdr, slot) = if hdr.log_guid == [0; 16] {
            (None, hdr, slot)
        } else {
            let r = crate::vhdx_replay::replay(&host, hdr, slot, writable)?;
            (r.overlay, r.hdr, r.slot)
        };
        let len = overlay.as_ref().map_or(host.len()?, |o| o.len);
        let read = |buf: &mut [u8], off: u64| read_through(&host, overlay.as_ref(), buf, off);
        let mut tables = Err(Error::bad("VHDX has no region table"));
        for off in REGION_OFFSETS {
            let mut b = vec![0u8; TABLE_BYTES];
            read(&mut b, off)?;
            tables = parse_region_table(&b);
            if tables.is_ok() || matches!(tables, Err(Error::Unsupported(_))) {
                break;
            }
        }
        let (bat_r, meta_r) = tables.map_err(|e| e.context(host.path.display()))?;
        for (r, what) in [(bat_r, "block table"), (meta_r, "metadata")] {
            if r.offset.saturating_add(u64::from(r.length)) > len.div_ceil(MIB) * MIB {
                return Err(bad(format!(
                    "VHDX {what} region at {:#x} lies past the end of the file ({len} bytes)",
                    r.offset
                )));
            }
        }
        let mut mb = vec![0u8; u64::from(meta_r.length).min(MAX_METADATA) as usize];
        read(&mut mb, meta_r.offset)?;
        let meta = parse_metadata(&mb).map_err(|e| e.context(host.path.display()))?;
        let entries = meta.bat_entries();
        if entries > MAX_BAT_ENTRIES {
            return Err(Error::Unsupported(format!(
                "{}: VHDX block table of {entries} entries (more than {MAX_BAT_ENTRIES})",
                host.path.display()
            )));
        }
        if entries * 8 > u64::from(bat_r.length) || bat_r.offset + entries * 8 > len {
            return Err(bad(format!(
                "VHDX block table ({} bytes) cannot hold {entries} entries within the file",
                bat_r.length
            )));
        }
        let mut raw = alloc_bytes(entries * 8, "the VHDX block table")?;
        read(&mut raw, bat_r.offset)?;
        let bat: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let bs = u64::from(meta.block_size);
        let cr = meta.chunk_ratio();
        // Every structure in the file, which must not overlap: the header area, the log, the
        // metadata and BAT regions, each allocated payload and sector-bitmap block.
        // (start, length, label): labels are block entry numbers or [`NAMED`] regions, so that
        // a table of millions of entries costs 24 bytes per entry.
        let allocated = bat.iter().filter(|&&e| state(e) >= SB_PRESENT).count() as u64;
        let n = check_elems::<(u64, u64, u64)>(allocated + 4, "checking the VHDX block table")?;
        let mut regions = Vec::with_capacity(n / 24);
        regions.extend([
            (0, MIB, NAMED),
            (meta_r.offset, u64::from(meta_r.length), NAMED + 1),
            (bat_r.offset, u64::from(bat_r.length), NAMED + 2),
        ]);
        if hdr.log_length > 0 {
            regions.push((hdr.log_offset, u64::from(hdr.log_length), NAMED + 3));
        }
        for (i, &e) in bat.iter().enumerate() {
            let i = i as u64;
            let is_bitmap = i % (cr + 1) == cr;
            let (st, off) = (state(e), offset(e));
            let used = if is_bitmap {
                if st == 0 {
                    continue;
                }
                if st != SB_PRESENT {
                    return Err(bad(format!("VHDX sector bitmap entry {i} has state {st}")));
                }
                MIB
            } else {
                match st {
                    0..=3 | 5 => continue,
                    PAYLOAD_FULLY_PRESENT => {}
                    PAYLOAD_PARTIALLY_PRESENT => {
                        return Err(bad(format!(
                            "VHDX block entry {i} is partially present, which only a differencing disk may be"
                        )))
                    }
                    _ => return Err(bad(format!("VHDX block entry {i} has state {st}"))),
                }
                let blk = i - i / (cr + 1);
                bs.min(meta.virtual_size - blk * bs)
            };
            if off < MIB || off.saturating_add(used) > len {
                return Err(bad(format!(
                    "VHDX block entry {i} at {off:#x} lies outside the file ({len} bytes)"
                )));
            }
            regions.push((off, used, i));
        }
        regions.sort_unstable();
        let mut end = 0u64;
        let mut prev = NAMED;
        for &(start, n, what) in &regions {
            if start < end {
                return Err(bad(format!(
                    "VHDX {} at {start:#x} overlaps the {}",
                    region_name(what),
                    region_name(prev)
                )));
            }
            end = start + n;
            prev = what;
        }
        Ok(VhdxDev {
            host,
            meta,
            bat_offset: bat_r.offset,
            writable,
            overlay,
            st: Mutex::new(State {
                bat,
                next_free: end.max(len).div_ceil(MIB) * MIB,
                hdr,
                slot,
                headers_updated: false,
            }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("VHDX state poisoned".into()))
    }

    /// Payload blocks allocated in the file.
    pub(crate) fn allocated(&self) -> u64 {
        let cr = self.meta.chunk_ratio();
        self.lock()
            .map(|s| {
                s.bat
                    .iter()
                    .enumerate()
                    .filter(|(i, &e)| {
                        *i as u64 % (cr + 1) != cr && state(e) == PAYLOAD_FULLY_PRESENT
                    })
                    .count() as u64
            })
            .unwrap_or(0)
    }

    /// Before the first write of a session: both headers get the next sequence numbers and new
    /// file and data write GUIDs (the non-current slot first, so one valid header always exists).
    fn update_headers(&self, st: &mut State) -> Result<()> {
        if st.headers_updated {
            return Ok(());
        }
        let mut h = st.hdr.clone();
        h.file_write_guid = crate::create::random_uuid()?;
        h.data_write_guid = crate::create::random_uuid()?;
        for k in 1..=2 {
            h.sequence = st.hdr.sequence.wrapping_add(k);
            let slot = (st.slot + k as usize) % 2;
            self.host.write(&header_bytes(&h), HEADER_OFFSETS[slot])?;
            self.host.sync()?;
        }
        st.hdr = h;
        st.headers_updated = true;
        Ok(())
    }
}

impl BlockDev for VhdxDev {
    fn size(&self) -> u64 {
        self.meta.virtual_size
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        check_range(self.meta.virtual_size, off, buf.len() as u64)?;
        let bs = u64::from(self.meta.block_size);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (blk, inner) = (pos / bs, pos % bs);
            let n = ((bs - inner) as usize).min(buf.len() - done);
            let e = {
                let st = self.lock()?;
                st.bat[self.meta.bat_index(blk) as usize]
            };
            let out = &mut buf[done..done + n];
            if state(e) == PAYLOAD_FULLY_PRESENT {
                read_through(&self.host, self.overlay.as_ref(), out, offset(e) + inner)?;
            } else {
                out.fill(0);
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!(
                "{} is open read-only",
                self.host.path.display()
            )));
        }
        check_range(self.meta.virtual_size, off, buf.len() as u64)?;
        let bs = u64::from(self.meta.block_size);
        let mut st = self.lock()?;
        self.update_headers(&mut st)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (blk, inner) = (pos / bs, pos % bs);
            let n = ((bs - inner) as usize).min(buf.len() - done);
            let data = &buf[done..done + n];
            let idx = self.meta.bat_index(blk) as usize;
            let e = st.bat[idx];
            if state(e) == PAYLOAD_FULLY_PRESENT {
                self.host.write(data, offset(e) + inner)?;
            } else if !data.iter().all(|&x| x == 0) {
                // A new block at the end of the file: the rest of it reads as zeroes (the file
                // grows sparsely), then the BAT entry points at it.
                let start = st.next_free;
                self.host.set_len(start + bs)?;
                self.host.write(data, start + inner)?;
                let ne = bat_entry(PAYLOAD_FULLY_PRESENT, start);
                self.host
                    .write(&ne.to_le_bytes(), self.bat_offset + idx as u64 * 8)?;
                st.bat[idx] = ne;
                st.next_free = start + bs;
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

    fn is_zero_hint(&self, off: u64, len: u64) -> Result<bool> {
        check_range(self.meta.virtual_size, off, len)?;
        let bs = u64::from(self.meta.block_size);
        let st = self.lock()?;
        let (first, last) = (off / bs, (off + len).div_ceil(bs));
        Ok((first..last).all(|b| {
            st.bat
                .get(self.meta.bat_index(b) as usize)
                .is_some_and(|&e| state(e) != PAYLOAD_FULLY_PRESENT)
        }))
    }
}
