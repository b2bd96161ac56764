//! VirtualBox VDI (dynamic and static): pure header parsing, and the block map as a [`BlockDev`].
//! Only the 1 MiB block size that VirtualBox and QEMU write is accepted.

use crate::host::Host;
use diskfab_storage::bytes::{le_u32, le_u32s};
use diskfab_storage::limits::{alloc_bytes, alloc_vec};
use diskfab_storage::{check_range, BlockDev, Error, Result};
use std::sync::Mutex;

/// The VDI signature at offset 0x40.
pub const SIGNATURE: u32 = 0xbeda_107f;
const UNALLOCATED: u32 = 0xffff_ffff;
const DISCARDED: u32 = 0xffff_fffe;
const BLOCK: u64 = 1 << 20;
const HEADER_TEXT: &[u8] = b"<<< Oracle VM VirtualBox Disk Image >>>\n";

/// A validated VDI header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdiHeader {
    /// 1 = dynamic, 2 = static.
    pub image_type: u32,
    /// Offset of the block map.
    pub offset_bmap: u32,
    /// Offset of the first data block.
    pub offset_data: u32,
    /// Guest size.
    pub disk_size: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Entries of the block map.
    pub blocks_in_image: u32,
    /// Blocks present in the file.
    pub blocks_allocated: u32,
}

/// Parses and validates a VDI header from the first 512 bytes. Never panics.
pub fn parse_vdi_header(b: &[u8]) -> Result<VdiHeader> {
    if b.len() < 512 || le_u32(b, 0x40)? != SIGNATURE {
        return Err(Error::bad("not a VDI image (bad signature)"));
    }
    if le_u32(b, 0x44)? >> 16 != 1 {
        return Err(Error::Unsupported(format!(
            "VDI version {:#x}",
            le_u32(b, 0x44)?
        )));
    }
    let h = VdiHeader {
        image_type: le_u32(b, 0x4c)?,
        offset_bmap: le_u32(b, 0x154)?,
        offset_data: le_u32(b, 0x158)?,
        disk_size: u64::from(le_u32(b, 0x170)?) | (u64::from(le_u32(b, 0x174)?) << 32),
        block_size: le_u32(b, 0x178)?,
        blocks_in_image: le_u32(b, 0x180)?,
        blocks_allocated: le_u32(b, 0x184)?,
    };
    if h.image_type != 1 && h.image_type != 2 {
        return Err(Error::Unsupported(format!(
            "VDI image type {} (only dynamic and static)",
            h.image_type
        )));
    }
    if le_u32(b, 0x168)? != 512 || u64::from(h.block_size) != BLOCK || le_u32(b, 0x17c)? != 0 {
        return Err(Error::Unsupported("VDI with a sector size other than 512, a block size other than 1 MiB or extra block data".into()));
    }
    let blocks = u64::from(h.blocks_in_image);
    if blocks > (1 << 24) || h.disk_size > blocks * BLOCK || u64::from(h.blocks_allocated) > blocks
    {
        return Err(Error::bad(format!(
            "VDI sizes are inconsistent ({} bytes, {blocks} blocks)",
            h.disk_size
        )));
    }
    if u64::from(h.offset_bmap) < 512
        || u64::from(h.offset_bmap) + blocks * 4 > u64::from(h.offset_data)
        || !h.offset_data.is_multiple_of(512)
    {
        return Err(Error::bad("VDI block map overlaps the header or the data"));
    }
    Ok(h)
}

/// Builds a new empty VDI: (header + block map bytes, total file length).
pub fn build(size: u64, fixed: bool, uuid: [u8; 16], snap: [u8; 16]) -> Result<(Vec<u8>, u64)> {
    let blocks = size.div_ceil(BLOCK);
    if blocks == 0 || blocks > (1 << 24) {
        return Err(Error::Invalid(
            "VDI size must be between 1 byte and 16 TiB".into(),
        ));
    }
    let offset_data = (512 + blocks * 4).div_ceil(512) * 512;
    let mut b = vec![0u8; offset_data as usize];
    b[..HEADER_TEXT.len()].copy_from_slice(HEADER_TEXT);
    let put = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0x40, SIGNATURE);
    put(&mut b, 0x44, 0x0001_0001);
    put(&mut b, 0x48, 0x180);
    put(&mut b, 0x4c, if fixed { 2 } else { 1 });
    put(&mut b, 0x154, 512);
    put(&mut b, 0x158, offset_data as u32);
    put(&mut b, 0x168, 512);
    b[0x170..0x178].copy_from_slice(&size.to_le_bytes());
    put(&mut b, 0x178, BLOCK as u32);
    put(&mut b, 0x180, blocks as u32);
    put(&mut b, 0x184, if fixed { blocks as u32 } else { 0 });
    b[0x188..0x198].copy_from_slice(&uuid);
    b[0x198..0x1a8].copy_from_slice(&snap);
    for i in 0..blocks as usize {
        put(
            &mut b,
            512 + 4 * i,
            if fixed { i as u32 } else { UNALLOCATED },
        );
    }
    let len = offset_data + if fixed { blocks * BLOCK } else { 0 };
    Ok((b, len))
}

struct State {
    bmap: Vec<u32>,
    allocated: u32,
}

/// An open VDI image.
pub struct VdiDev {
    host: Host,
    /// The header.
    pub hdr: VdiHeader,
    writable: bool,
    st: Mutex<State>,
}

impl std::fmt::Debug for VdiDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VdiDev({})", self.host.path.display())
    }
}

impl VdiDev {
    /// Opens a parsed VDI; the block map is read and every entry checked.
    pub fn open(host: Host, hdr: VdiHeader, writable: bool) -> Result<Self> {
        let bytes = u64::from(hdr.blocks_in_image) * 4;
        if u64::from(hdr.offset_bmap) + bytes > host.len()? {
            return Err(Error::bad(format!(
                "{}: VDI block map ({bytes} bytes at {:#x}) lies past the end of the file",
                host.path.display(),
                hdr.offset_bmap
            )));
        }
        let mut raw = alloc_bytes(bytes, "the VDI block map")?;
        host.read(&mut raw, u64::from(hdr.offset_bmap))?;
        let bmap = le_u32s(&raw);
        let mut seen: Vec<bool> = alloc_vec(hdr.blocks_allocated.into(), "the VDI block map")?;
        for (i, &e) in bmap.iter().enumerate() {
            if e == UNALLOCATED || e == DISCARDED {
                continue;
            }
            match seen.get_mut(e as usize) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(Error::bad(format!(
                        "{}: VDI block map entry {i} ({e}) is out of range or duplicated",
                        host.path.display()
                    )))
                }
            }
        }
        let allocated = hdr.blocks_allocated;
        Ok(VdiDev {
            host,
            hdr,
            writable,
            st: Mutex::new(State { bmap, allocated }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.st
            .lock()
            .map_err(|_| Error::Failed("VDI state poisoned".into()))
    }

    fn data_off(&self, idx: u32) -> u64 {
        u64::from(self.hdr.offset_data) + u64::from(idx) * BLOCK
    }

    /// Blocks allocated in the file.
    pub fn allocated(&self) -> u32 {
        self.lock().map(|s| s.allocated).unwrap_or(0)
    }
}

impl BlockDev for VdiDev {
    fn size(&self) -> u64 {
        self.hdr.disk_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.hdr.disk_size, offset, buf.len() as u64)?;
        let st = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (blk, inner) = (pos / BLOCK, pos % BLOCK);
            let n = ((BLOCK - inner) as usize).min(buf.len() - done);
            let e = st.bmap[blk as usize];
            if e == UNALLOCATED || e == DISCARDED {
                buf[done..done + n].fill(0);
            } else {
                self.host
                    .read(&mut buf[done..done + n], self.data_off(e) + inner)?;
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
        check_range(self.hdr.disk_size, offset, buf.len() as u64)?;
        let mut st = self.lock()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (blk, inner) = (pos / BLOCK, pos % BLOCK);
            let n = ((BLOCK - inner) as usize).min(buf.len() - done);
            let data = &buf[done..done + n];
            let e = st.bmap[blk as usize];
            if e != UNALLOCATED && e != DISCARDED {
                self.host.write(data, self.data_off(e) + inner)?;
            } else if !data.iter().all(|&x| x == 0) {
                let idx = st.allocated;
                let mut full = vec![0u8; BLOCK as usize];
                full[inner as usize..inner as usize + n].copy_from_slice(data);
                self.host.write(&full, self.data_off(idx))?;
                self.host.write(
                    &idx.to_le_bytes(),
                    u64::from(self.hdr.offset_bmap) + blk * 4,
                )?;
                st.allocated += 1;
                self.host.write(&st.allocated.to_le_bytes(), 0x184)?;
                st.bmap[blk as usize] = idx;
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
        check_range(self.hdr.disk_size, offset, len)?;
        let st = self.lock()?;
        let (first, last) = (offset / BLOCK, (offset + len).div_ceil(BLOCK));
        Ok((first..last).all(|b| {
            matches!(
                st.bmap.get(b as usize),
                Some(&UNALLOCATED) | Some(&DISCARDED)
            )
        }))
    }
}
