//! A `Read + Write + Seek` view of a [`DevRef`] for the `fatfs` crate.

use diskfab_storage::DevRef;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Cursor over a device.
pub struct DevIo {
    dev: DevRef,
    pos: u64,
    writable: bool,
}

impl DevIo {
    /// Wraps `dev`; writes fail unless `writable`.
    pub fn new(dev: DevRef, writable: bool) -> Self {
        DevIo {
            dev,
            pos: 0,
            writable,
        }
    }
}

fn ioerr(e: diskfab_storage::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl Read for DevIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.dev.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = (size - self.pos).min(buf.len() as u64) as usize;
        self.dev.read_at(&mut buf[..n], self.pos).map_err(ioerr)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for DevIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "FAT filesystem opened read-only",
            ));
        }
        let size = self.dev.size();
        if self.pos >= size && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the device",
            ));
        }
        let n = (size - self.pos).min(buf.len() as u64) as usize;
        self.dev.write_at(&buf[..n], self.pos).map_err(ioerr)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.writable {
            self.dev.flush().map_err(ioerr)?;
        }
        Ok(())
    }
}

impl Seek for DevIo {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.dev.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}
