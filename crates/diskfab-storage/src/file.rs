//! [`FileDev`]: a raw file (or block device node) as a [`BlockDev`].

use crate::dev::{check_range, BlockDev};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A host file used as a device. The size is fixed when opened.
#[derive(Debug)]
pub struct FileDev {
    file: File,
    path: PathBuf,
    size: u64,
    writable: bool,
}

impl FileDev {
    /// Opens `path`; read-only unless `writable`.
    pub fn open(path: &Path, writable: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let size = file_size(&file).map_err(|e| Error::io(format!("{}", path.display()), e))?;
        Ok(FileDev {
            file,
            path: path.to_path_buf(),
            size,
            writable,
        })
    }

    /// Wraps an already-open file.
    pub fn from_file(file: File, path: PathBuf, writable: bool) -> Result<Self> {
        let size = file_size(&file).map_err(|e| Error::io(format!("{}", path.display()), e))?;
        Ok(FileDev {
            file,
            path,
            size,
            writable,
        })
    }

    /// The host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Maps an error opening a host file to the diskfab error class: a host I/O error (exit 4),
/// a missing file included; "not found" is kept for paths inside images.
pub fn open_error(path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("cannot open {}", path.display()), e)
}

/// Size of a regular file or a block device.
fn file_size(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::End(0))
}

impl BlockDev for FileDev {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(format!("read {}", self.path.display()), e))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!("{}", self.path.display())));
        }
        check_range(self.size, offset, buf.len() as u64)?;
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io(format!("write {}", self.path.display()), e))
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly(format!("{}", self.path.display())));
        }
        check_range(self.size, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        // Punch a hole: the range reads as zeroes and takes no space.
        let rc = unsafe {
            // SAFETY: plain syscall on a valid fd with integer arguments.
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // Fallback for filesystems or devices without hole punching.
        let chunk = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.write_at(&chunk[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        if !self.writable || !crate::sync_enabled() {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("flush {}", self.path.display()), e))
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn is_zero_hint(&self, offset: u64, len: u64) -> Result<bool> {
        // SEEK_DATA finds the next data at or after `offset`; if it is past the range, the
        // whole range is a hole.
        let fd = self.file.as_raw_fd();
        let r = unsafe {
            // SAFETY: plain syscall on a valid fd.
            libc::lseek(fd, offset as libc::off_t, libc::SEEK_DATA)
        };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            // ENXIO: no data after offset at all.
            return Ok(err.raw_os_error() == Some(libc::ENXIO));
        }
        Ok((r as u64) >= offset.saturating_add(len))
    }
}
