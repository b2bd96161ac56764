//! The guest-facing [`BlockDev`] of a qcow2 image: range checks, then the engine.

use super::{Map, Qcow2Dev};
use diskfab_storage::{check_range, BlockDev, Error, Result};

impl BlockDev for Qcow2Dev {
    fn size(&self) -> u64 {
        self.hdr.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.hdr.size, offset, buf.len() as u64)?;
        self.read_guest(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!(
                "{} is open read-only",
                self.host.path.display()
            )));
        }
        check_range(self.hdr.size, offset, buf.len() as u64)?;
        let mut st = self.lock()?;
        let cs = self.hdr.cluster_size();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let inner = pos & (cs - 1);
            if inner == 0 && (buf.len() - done) as u64 >= 2 * cs {
                let k = self.write_run(&mut st, pos >> self.hdr.cluster_bits, &buf[done..])?;
                if k > 0 {
                    done += (k * cs) as usize;
                    continue;
                }
            }
            let n = ((cs - inner) as usize).min(buf.len() - done);
            let vc = pos >> self.hdr.cluster_bits;
            if self.hdr.extended_l2() {
                self.ext_write_cluster(&mut st, vc, inner, &buf[done..done + n])?;
            } else {
                self.write_cluster(&mut st, vc, inner, &buf[done..done + n])?;
            }
            done += n;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!(
                "{} is open read-only",
                self.host.path.display()
            )));
        }
        check_range(self.hdr.size, offset, len)?;
        let us = 1u64 << self.hdr.unit_bits();
        let end = offset + len;
        let first_full = offset.div_ceil(us) * us;
        let last_full = end / us * us;
        if first_full >= last_full {
            return self.write_at(&vec![0u8; len as usize], offset);
        }
        if offset < first_full {
            self.write_at(&vec![0u8; (first_full - offset) as usize], offset)?;
        }
        {
            let mut st = self.lock()?;
            if self.hdr.extended_l2() {
                self.ext_zero_range(&mut st, first_full, last_full)?;
            } else {
                let cs = self.hdr.cluster_size();
                let mut c = first_full;
                while c < last_full {
                    self.zero_cluster(&mut st, c / cs)?;
                    c += cs;
                }
            }
        }
        if last_full < end {
            self.write_at(&vec![0u8; (end - last_full) as usize], last_full)?;
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
        check_range(self.hdr.size, offset, len)?;
        let cs = 1u64 << self.hdr.unit_bits();
        let mut st = self.lock()?;
        let mut c = offset / cs;
        let end = (offset + len).div_ceil(cs);
        while c < end {
            let hole = self.l1_hole_in(&st, c * cs);
            if hole > 0 {
                let next = (c * cs + hole) / cs;
                if let Some(b) = &self.backing {
                    let s = (c * cs).max(offset);
                    let e = (next * cs).min(offset + len).min(b.size());
                    if s < e && !b.is_zero_hint(s, e - s)? {
                        return Ok(false);
                    }
                }
                c = next;
                continue;
            }
            match self.lookup(&mut st, c)? {
                Map::Zero(_) => {}
                Map::Unalloc => {
                    if let Some(b) = &self.backing {
                        let s = (c * cs).max(offset);
                        let e = ((c + 1) * cs).min(offset + len).min(b.size());
                        if s < e && !b.is_zero_hint(s, e - s)? {
                            return Ok(false);
                        }
                    }
                }
                _ => return Ok(false),
            }
            c += 1;
        }
        Ok(true)
    }
}
