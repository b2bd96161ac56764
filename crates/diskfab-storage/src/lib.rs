//! diskfab storage layer.
//!
//! The bottom of the stack: the [`BlockDev`] trait every other layer reads and writes through,
//! host files ([`FileDev`]), windows of another device ([`Slice`], used for partitions),
//! in-memory devices ([`MemDev`]), the shared [`Error`] type, [`bytes`] (the bounded
//! byte-order reads every parser uses) and the memory budget ([`limits`]) that bounds every
//! table sized from an image.
#![deny(missing_docs)]

pub mod bytes;
mod cache;
mod dev;
mod durability;
mod error;
mod file;
pub mod limits;
mod mem;
mod slice;

pub use cache::CacheDev;
pub use dev::{check_range, BlockDev, DevRef};
pub use durability::{sync_enabled, without_sync};
pub use error::{Error, Result};
pub use file::{open_error, FileDev};
pub use mem::MemDev;
pub use slice::Slice;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn slice_refuses_access_outside_its_window() {
        let dev: DevRef = Arc::new(MemDev::new(4096));
        let s = Slice::new(dev.clone(), 1024, 1024).unwrap();
        s.write_at(b"abc", 1021).unwrap();
        let mut b = [0u8; 3];
        dev.read_at(&mut b, 2045).unwrap();
        assert_eq!(&b, b"abc");
        assert!(s.write_at(b"abcd", 1021).is_err());
        assert!(Slice::new(dev, 4000, 200).is_err());
    }

    #[test]
    fn file_dev_punches_holes_and_reports_them() {
        let t = tempfile::NamedTempFile::new().unwrap();
        t.as_file().set_len(4 << 20).unwrap();
        let d = FileDev::open(t.path(), true).unwrap();
        d.write_at(&[7u8; 8192], 1 << 20).unwrap();
        assert!(!d.is_zero_hint(1 << 20, 4096).unwrap());
        d.write_zeroes(1 << 20, 8192).unwrap();
        let mut b = [1u8; 8192];
        d.read_at(&mut b, 1 << 20).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        assert!(d.is_zero_hint(0, 4 << 20).unwrap());
    }

    #[test]
    fn read_only_file_dev_refuses_writes() {
        let t = tempfile::NamedTempFile::new().unwrap();
        t.as_file().set_len(4096).unwrap();
        let d = FileDev::open(t.path(), false).unwrap();
        assert!(matches!(d.write_at(b"x", 0), Err(Error::ReadOnly(_))));
        assert_eq!(
            Error::bad("x").exit_code(),
            3,
            "bad images map to exit code 3"
        );
    }
}
