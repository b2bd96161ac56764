//! Works around a fatfs 0.3.6 bug: `create_dir` writes a long-name (LFN) entry before the `.` and
//! `..` entries of every new directory, which `fsck.vfat` reports as corruption (and some
//! firmware mis-reads). After each mkdir we locate the new directory's first cluster with a small
//! raw reader and rewrite its first slots as plain `.` and `..`.

use diskfab_storage::bytes::{le_u16, le_u32};
use diskfab_storage::{DevRef, Error, Result};

struct Geo {
    bps: u64,
    spc: u64,
    first_fat: u64,
    root_dir_off: u64,
    root_dir_len: u64,
    data_start: u64,
    root_cluster: u32,
    bits: u32,
}

fn geometry(dev: &DevRef, bits: u32) -> Result<Geo> {
    let mut s = vec![0u8; 512];
    dev.read_at(&mut s, 0)?;
    let bps = u64::from(le_u16(&s, 11)?);
    let spc = u64::from(s[13]);
    let reserved = u64::from(le_u16(&s, 14)?);
    let fats = u64::from(s[16]);
    let root_entries = u64::from(le_u16(&s, 17)?);
    let fat_size = if u64::from(le_u16(&s, 22)?) != 0 {
        u64::from(le_u16(&s, 22)?)
    } else {
        u64::from(le_u32(&s, 36)?)
    };
    if bps == 0 || spc == 0 {
        return Err(Error::bad("FAT boot sector has a zero geometry field"));
    }
    let root_dir_off = (reserved + fats * fat_size) * bps;
    let root_dir_len = root_entries * 32;
    Ok(Geo {
        bps,
        spc,
        first_fat: reserved * bps,
        root_dir_off,
        root_dir_len,
        data_start: root_dir_off + root_dir_len.div_ceil(bps) * bps,
        root_cluster: if bits == 32 { le_u32(&s, 44)? } else { 0 },
        bits,
    })
}

impl Geo {
    fn cluster_off(&self, c: u32) -> u64 {
        self.data_start + u64::from(c.saturating_sub(2)) * self.spc * self.bps
    }
    fn cluster_len(&self) -> u64 {
        self.spc * self.bps
    }
    fn next(&self, dev: &DevRef, c: u32) -> Result<Option<u32>> {
        let (off, mask, end) = match self.bits {
            12 => (u64::from(c) + u64::from(c) / 2, 0xfff, 0xff8),
            16 => (u64::from(c) * 2, 0xffff, 0xfff8),
            _ => (u64::from(c) * 4, 0x0fff_ffff, 0x0fff_fff8),
        };
        let mut b = [0u8; 4];
        let n = if self.bits == 32 { 4 } else { 2 };
        dev.read_at(&mut b[..n], self.first_fat + off)?;
        let mut v = u32::from_le_bytes(b);
        if self.bits == 12 {
            v = if c % 2 == 1 { v >> 4 } else { v };
        }
        v &= mask;
        Ok((v >= 2 && v < end).then_some(v))
    }
    /// Raw bytes of a directory (cluster 0 = the fixed FAT12/16 root).
    fn dir_bytes(&self, dev: &DevRef, first: u32) -> Result<Vec<u8>> {
        if first == 0 {
            let mut v = vec![0u8; self.root_dir_len as usize];
            dev.read_at(&mut v, self.root_dir_off)?;
            return Ok(v);
        }
        let mut v = Vec::new();
        let mut c = Some(first);
        while let Some(cl) = c {
            if v.len() > 64 << 20 {
                return Err(Error::bad(
                    "FAT directory cluster chain is too long (loop?)",
                ));
            }
            let mut b = vec![0u8; self.cluster_len() as usize];
            dev.read_at(&mut b, self.cluster_off(cl))?;
            v.extend_from_slice(&b);
            c = self.next(dev, cl)?;
        }
        Ok(v)
    }
}

/// "NAME.EXT" → the 11-byte on-disk form.
fn sfn11(short: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    let (name, ext) = match short.iter().position(|&c| c == b'.') {
        Some(i) => (&short[..i], &short[i + 1..]),
        None => (short, &[][..]),
    };
    for (o, c) in out[..8].iter_mut().zip(name) {
        *o = *c;
    }
    for (o, c) in out[8..].iter_mut().zip(ext) {
        *o = *c;
    }
    out
}

/// Rewrites the first slots of the directory reached by `short_path` (short names of each
/// component from the root) to plain `.` and `..` if fatfs put LFN entries there.
pub fn fix_new_dir(dev: &DevRef, bits: u32, short_path: &[Vec<u8>]) -> Result<()> {
    let g = geometry(dev, bits)?;
    let mut cluster = g.root_cluster;
    for comp in short_path {
        let want = sfn11(comp);
        let raw = g.dir_bytes(dev, cluster)?;
        let e = raw
            .chunks_exact(32)
            .find(|e| e[11] != 0x0f && e[0] != 0xe5 && e[..11] == want)
            .ok_or_else(|| Error::Failed("new FAT directory not found on disk".into()))?;
        cluster = ((u64::from(le_u16(e, 20)?) << 16) | u64::from(le_u16(e, 26)?)) as u32;
    }
    if cluster < 2 {
        return Ok(());
    }
    let off = g.cluster_off(cluster);
    let mut head = vec![0u8; 128];
    dev.read_at(&mut head, off)?;
    let lfn = |i: usize| head[i * 32 + 11] == 0x0f;
    if lfn(0) && &head[32..43] == b".          " && lfn(2) && &head[96..107] == b"..         " {
        let mut fixed = vec![0u8; 128];
        fixed[..32].copy_from_slice(&head[32..64]);
        fixed[32..64].copy_from_slice(&head[96..128]);
        if short_path.len() == 1 {
            // `..` of a directory in the root names cluster 0, also on FAT32.
            fixed[32 + 20..32 + 22].fill(0);
            fixed[32 + 26..32 + 28].fill(0);
        }
        dev.write_at(&fixed, off)?;
    }
    Ok(())
}
