//! Byte-order decoding with bounds checks: the one way every parser reads integers out of
//! untrusted bytes. Every read that would leave the buffer is [`Error::BadImage`], never a
//! panic, and offsets are added with overflow checks.
//!
//! Free functions read at an absolute offset (`le_u32(buf, 0x40)?`); [`Reader`] is a cursor
//! for sequential records.

use crate::{Error, Result};

/// The `len` bytes at `off`, or [`Error::BadImage`] when they are not all inside `buf`.
pub fn slice(buf: &[u8], off: usize, len: usize) -> Result<&[u8]> {
    off.checked_add(len)
        .and_then(|end| buf.get(off..end))
        .ok_or_else(|| {
            Error::BadImage(format!(
                "truncated data: {len} bytes at offset {off} of a {}-byte buffer",
                buf.len()
            ))
        })
}

/// The `N` bytes at `off` as an array.
pub fn array<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N]> {
    let mut a = [0u8; N];
    a.copy_from_slice(slice(buf, off, N)?);
    Ok(a)
}

/// The byte at `off`.
pub fn u8_at(buf: &[u8], off: usize) -> Result<u8> {
    Ok(array::<1>(buf, off)?[0])
}

macro_rules! readers {
    ($($(#[$doc:meta])* $name:ident: $t:ty, $from:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(buf: &[u8], off: usize) -> Result<$t> {
            Ok(<$t>::$from(array(buf, off)?))
        }
    )*};
}

readers! {
    /// Little-endian `u16` at `off`.
    le_u16: u16, from_le_bytes;
    /// Little-endian `u32` at `off`.
    le_u32: u32, from_le_bytes;
    /// Little-endian `u64` at `off`.
    le_u64: u64, from_le_bytes;
    /// Big-endian `u16` at `off`.
    be_u16: u16, from_be_bytes;
    /// Big-endian `u32` at `off`.
    be_u32: u32, from_be_bytes;
    /// Big-endian `u64` at `off`.
    be_u64: u64, from_be_bytes;
}

/// Every little-endian `u32` of `buf` (a trailing partial value is ignored), e.g. a table.
pub fn le_u32s(buf: &[u8]) -> Vec<u32> {
    buf.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Every big-endian `u32` of `buf` (a trailing partial value is ignored).
pub fn be_u32s(buf: &[u8]) -> Vec<u32> {
    buf.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Every big-endian `u64` of `buf` (a trailing partial value is ignored).
pub fn be_u64s(buf: &[u8]) -> Vec<u64> {
    buf.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_be_bytes(a)
        })
        .collect()
}

/// A bounded cursor over a buffer: each read advances it, and a read past the end is
/// [`Error::BadImage`] (the cursor then stays where it was).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! cursor_readers {
    ($($(#[$doc:meta])* $name:ident: $t:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self) -> Result<$t> {
            let v = $name(self.buf, self.pos)?;
            self.pos += std::mem::size_of::<$t>();
            Ok(v)
        }
    )*};
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Moves the cursor to `pos` (at most the end of the buffer).
    pub fn seek(&mut self, pos: usize) -> Result<()> {
        slice(self.buf, pos, 0)?;
        self.pos = pos;
        Ok(())
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = slice(self.buf, self.pos, n)?;
        self.pos += n;
        Ok(s)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    cursor_readers! {
        /// The next little-endian `u16`.
        le_u16: u16;
        /// The next little-endian `u32`.
        le_u32: u32;
        /// The next little-endian `u64`.
        le_u64: u64;
        /// The next big-endian `u16`.
        be_u16: u16;
        /// The next big-endian `u32`.
        be_u32: u32;
        /// The next big-endian `u64`.
        be_u64: u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: [u8; 10] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a];

    #[test]
    fn integers_decode_in_both_byte_orders() {
        assert_eq!(le_u16(&B, 0).unwrap(), 0x0201);
        assert_eq!(be_u16(&B, 0).unwrap(), 0x0102);
        assert_eq!(le_u32(&B, 1).unwrap(), 0x0504_0302);
        assert_eq!(be_u32(&B, 1).unwrap(), 0x0203_0405);
        assert_eq!(le_u64(&B, 2).unwrap(), 0x0a09_0807_0605_0403);
        assert_eq!(be_u64(&B, 2).unwrap(), 0x0304_0506_0708_090a);
        assert_eq!(u8_at(&B, 9).unwrap(), 0x0a);
        assert_eq!(array::<3>(&B, 7).unwrap(), [8, 9, 10]);
    }

    #[test]
    fn reads_past_the_end_are_bad_image_errors_not_panics() {
        assert!(matches!(le_u16(&B, 9), Err(Error::BadImage(_))));
        assert!(matches!(be_u32(&B, 7), Err(Error::BadImage(_))));
        assert!(matches!(le_u64(&B, 3), Err(Error::BadImage(_))));
        assert!(matches!(u8_at(&B, 10), Err(Error::BadImage(_))));
        assert!(le_u64(&[], 0).is_err());
        // Offsets near usize::MAX never wrap around to a valid range.
        assert!(matches!(
            le_u32(&B, usize::MAX - 1),
            Err(Error::BadImage(_))
        ));
        assert!(slice(&B, usize::MAX, 2).is_err());
        let e = slice(&B, 8, 4).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("offset 8"), "{e}");
        // The exact end is fine.
        assert_eq!(slice(&B, 10, 0).unwrap(), b"");
        assert_eq!(le_u16(&B, 8).unwrap(), 0x0a09);
    }

    #[test]
    fn tables_decode_whole_values_only() {
        assert_eq!(le_u32s(&B), [0x0403_0201, 0x0807_0605]);
        assert_eq!(be_u32s(&B), [0x0102_0304, 0x0506_0708]);
        assert_eq!(be_u64s(&B), [0x0102_0304_0506_0708]);
        assert!(be_u64s(&B[..7]).is_empty());
    }

    #[test]
    fn reader_advances_and_stops_at_the_end() {
        let mut r = Reader::new(&B);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.be_u16().unwrap(), 0x0203);
        assert_eq!(r.le_u32().unwrap(), 0x0706_0504);
        assert_eq!(r.pos(), 7);
        assert_eq!(r.remaining(), 3);
        assert!(matches!(r.le_u32(), Err(Error::BadImage(_))));
        assert_eq!(r.pos(), 7, "a failed read does not move the cursor");
        assert_eq!(r.bytes(3).unwrap(), [8, 9, 10]);
        assert!(r.u8().is_err());
        r.seek(1).unwrap();
        assert_eq!(r.le_u64().unwrap(), 0x0908_0706_0504_0302);
        assert!(r.seek(11).is_err());
        assert!(r.skip(2).is_err());
        r.skip(1).unwrap();
        assert_eq!(r.remaining(), 0);
    }
}
