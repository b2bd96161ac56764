//! LZNT1 decompression (NTFS compressed attributes): a compression unit is a sequence of
//! chunks, each decompressing to at most 4096 bytes.

use diskfab_storage::bytes::{le_u16, slice, u8_at};
use diskfab_storage::{Error, Result};

const CHUNK: usize = 4096;

/// Decompresses `src` into `out` (the unit's size); bytes after the last chunk stay zero.
/// Returns how many bytes the chunks produced.
pub fn decompress(src: &[u8], out: &mut [u8]) -> Result<usize> {
    out.fill(0);
    let (mut ip, mut op) = (0usize, 0usize);
    while ip + 2 <= src.len() && op < out.len() {
        let h = le_u16(src, ip)?;
        if h == 0 {
            break;
        }
        let size = usize::from(h & 0x0FFF) + 1;
        let data = slice(src, ip + 2, size)?;
        ip += 2 + size;
        let end = (op + CHUNK).min(out.len());
        let dst = &mut out[op..end];
        let n = if h & 0x8000 == 0 {
            let n = data.len().min(dst.len());
            dst[..n].copy_from_slice(&data[..n]);
            n
        } else {
            chunk(data, dst)?
        };
        // Every chunk stands for 4096 bytes: a shorter one is padded with zeroes.
        let _ = n;
        op = end;
    }
    Ok(op)
}

/// Decompresses one compressed chunk into `dst` (at most 4096 bytes); returns bytes produced.
fn chunk(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let (mut ip, mut op) = (0usize, 0usize);
    while ip < src.len() {
        let flags = u8_at(src, ip)?;
        ip += 1;
        for bit in 0..8 {
            if ip >= src.len() {
                return Ok(op);
            }
            if op >= dst.len() {
                return Ok(op);
            }
            if flags & (1 << bit) == 0 {
                dst[op] = u8_at(src, ip)?;
                ip += 1;
                op += 1;
                continue;
            }
            let token = le_u16(src, ip)?;
            ip += 2;
            if op == 0 {
                return Err(Error::bad("LZNT1: back-reference at the start of a chunk"));
            }
            let mut offs_bits = 4u32;
            let mut i = op - 1;
            while i >= 0x10 {
                offs_bits += 1;
                i >>= 1;
            }
            let len_bits = 16 - offs_bits;
            let len = usize::from(token & ((1u16 << len_bits) - 1)) + 3;
            let back = usize::from(token >> len_bits) + 1;
            if back > op {
                return Err(Error::bad("LZNT1: back-reference before the chunk start"));
            }
            for _ in 0..len {
                if op >= dst.len() {
                    return Ok(op);
                }
                dst[op] = dst[op - back];
                op += 1;
            }
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_back_reference_tokens_expand() {
        // Chunk header: compressed, 6 data bytes; flags 0b0000_0100: "abc" then a copy of
        // 6 bytes from 3 back (token: offset-1=2 in the top 4 bits, length-3=3 below).
        let token: u16 = (2 << 12) | 3;
        let mut c = vec![0u8, 0];
        c.extend([0b0000_1000, b'a', b'b', b'c']);
        c.extend(token.to_le_bytes());
        let h = 0x8000 | (c.len() as u16 - 2 - 1) | 0x3000;
        c[..2].copy_from_slice(&h.to_le_bytes());
        let mut out = vec![0u8; 16];
        assert_eq!(decompress(&c, &mut out).unwrap(), 16);
        assert_eq!(&out[..9], b"abcabcabc");
    }

    #[test]
    fn uncompressed_chunks_copy_and_bad_references_fail() {
        let mut c = vec![0xFFu8, 0x3F];
        c.extend(std::iter::repeat_n(7u8, 4096));
        let mut out = vec![1u8; 8192];
        assert_eq!(decompress(&c, &mut out).unwrap(), 4096);
        assert!(out[..4096].iter().all(|&b| b == 7) && out[4096..].iter().all(|&b| b == 0));
        let bad = [0x02, 0xB0, 0x01, 0x00, 0x10];
        assert!(decompress(&bad, &mut out).is_err());
    }
}
