//! The host file under a format driver: positioned reads/writes that may grow the file.

use diskfab_storage::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// A host file (or an in-memory file for fuzzing) holding an image.
#[derive(Debug)]
pub struct Host {
    file: File,
    /// Path, for messages.
    pub path: PathBuf,
}

impl Host {
    /// Wraps an open file.
    pub fn new(file: File, path: PathBuf) -> Self {
        Host { file, path }
    }

    /// A second handle on the same file.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Host::new(
            self.file.try_clone().map_err(|e| self.err("dup", e))?,
            self.path.clone(),
        ))
    }

    /// An anonymous in-memory file holding `data` (used by the fuzz entry point).
    pub fn memory(data: &[u8]) -> Result<Self> {
        // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned by the File.
        let fd = unsafe { libc::memfd_create(c"diskfab-mem".as_ptr(), 0) };
        if fd < 0 {
            return Err(Error::io("memfd_create", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let file = unsafe { <File as std::os::unix::io::FromRawFd>::from_raw_fd(fd) };
        file.write_all_at(data, 0)
            .map_err(|e| Error::io("memfd write", e))?;
        Ok(Host::new(file, PathBuf::from("<memory>")))
    }

    /// Current length in bytes.
    pub fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| self.err("stat", e))
    }

    /// Bytes allocated on the host (st_blocks × 512).
    pub fn allocated(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
    }

    fn err(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(format!("{}: {what}", self.path.display()), e)
    }

    /// Reads exactly `buf.len()` bytes; bytes past the end of the file read as zeroes.
    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    return Ok(());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("read", e)),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `off`.
    pub fn write(&self, buf: &[u8], off: u64) -> Result<()> {
        self.file
            .write_all_at(buf, off)
            .map_err(|e| self.err("write", e))
    }

    /// Sets the file length (truncating or extending with zeroes).
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| self.err("truncate", e))
    }

    /// Deallocates a range (best effort; the range reads as zeroes afterwards either way).
    pub fn punch(&self, off: u64, len: u64) -> Result<()> {
        // SAFETY: plain fallocate on our own fd.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if r != 0 {
            let zero = vec![0u8; len as usize];
            return self.write(&zero, off);
        }
        Ok(())
    }

    /// fdatasync (skipped inside [`diskfab_storage::without_sync`]).
    pub fn sync(&self) -> Result<()> {
        if !diskfab_storage::sync_enabled() {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.err("sync", e))
    }
}
