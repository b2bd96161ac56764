//! A bounded LZO1X decompressor and btrfs' framing of LZO segments (a 4-byte total length,
//! then per sector of output a 4-byte segment length and the segment; a length never straddles
//! a sector boundary).

use diskfab_storage::bytes::{le_u16, le_u32, slice, u8_at};
use diskfab_storage::{Error, Result};

fn bad(what: &str) -> Error {
    Error::bad(format!("btrfs LZO data: {what}"))
}

struct In<'a> {
    b: &'a [u8],
    p: usize,
}

impl In<'_> {
    fn byte(&mut self) -> Result<u8> {
        let v = u8_at(self.b, self.p).map_err(|_| bad("input ends early"))?;
        self.p += 1;
        Ok(v)
    }
    fn le16(&mut self) -> Result<usize> {
        let v = le_u16(self.b, self.p).map_err(|_| bad("input ends early"))?;
        self.p += 2;
        Ok(usize::from(v))
    }
    /// A length with zero-byte extensions: each zero adds 255, then `base` + the final byte.
    fn ext_len(&mut self, base: usize) -> Result<usize> {
        let mut n = 0usize;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(n + base + usize::from(b));
            }
            n += 255;
            if n > self.b.len() * 255 {
                return Err(bad("length overflows"));
            }
        }
    }
}

fn literals(inp: &mut In, out: &mut Vec<u8>, n: usize, max: usize) -> Result<()> {
    if out.len() + n > max {
        return Err(bad("output larger than expected"));
    }
    let s = slice(inp.b, inp.p, n).map_err(|_| bad("literal run past the input"))?;
    out.extend_from_slice(s);
    inp.p += n;
    Ok(())
}

fn copy_match(out: &mut Vec<u8>, dist: usize, len: usize, max: usize) -> Result<()> {
    if dist == 0 || dist > out.len() {
        return Err(bad("match reaches before the output"));
    }
    if out.len() + len > max {
        return Err(bad("output larger than expected"));
    }
    let start = out.len() - dist;
    for i in 0..len {
        let b = out[start + i];
        out.push(b);
    }
    Ok(())
}

/// Decompresses one LZO1X stream into at most `max` bytes.
pub fn lzo1x(input: &[u8], max: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(max.min(1 << 20));
    let mut inp = In { b: input, p: 0 };
    // state: literals copied after the last match (0..=3), or 4 after a literal run.
    let mut state;
    let first = u8_at(input, 0).map_err(|_| bad("empty segment"))?;
    if first > 17 {
        inp.p = 1;
        let t = usize::from(first - 17);
        literals(&mut inp, &mut out, t, max)?;
        state = if t < 4 { t } else { 4 };
    } else {
        state = 0;
    }
    loop {
        let t = usize::from(inp.byte()?);
        let (dist, len, trail) = if t < 16 {
            match state {
                0 => {
                    let n = if t == 0 { inp.ext_len(15)? } else { t };
                    literals(&mut inp, &mut out, n + 3, max)?;
                    state = 4;
                    continue;
                }
                4 => ((t >> 2) + (usize::from(inp.byte()?) << 2) + 2049, 3, t & 3),
                _ => ((t >> 2) + (usize::from(inp.byte()?) << 2) + 1, 2, t & 3),
            }
        } else if t >= 64 {
            let d = ((t >> 2) & 7) + (usize::from(inp.byte()?) << 3) + 1;
            (d, (t >> 5) + 1, t & 3)
        } else if t >= 32 {
            let l = if t & 31 == 0 {
                inp.ext_len(31)?
            } else {
                t & 31
            };
            let d = inp.le16()?;
            ((d >> 2) + 1, l + 2, d & 3)
        } else {
            let l = if t & 7 == 0 { inp.ext_len(7)? } else { t & 7 };
            let d = inp.le16()?;
            let dist = ((t & 8) << 11) + (d >> 2);
            if dist == 0 {
                return Ok(out); // end of stream
            }
            (dist + 16384, l + 2, d & 3)
        };
        copy_match(&mut out, dist, len, max)?;
        literals(&mut inp, &mut out, trail, max)?;
        state = trail;
    }
}

/// Decodes btrfs' LZO framing of a compressed extent into `ram_bytes` bytes (short segments
/// are zero-filled as the kernel does).
pub fn decompress(input: &[u8], ram_bytes: usize, sectorsize: usize) -> Result<Vec<u8>> {
    let total = le_u32(input, 0).map_err(|_| bad("no header"))? as usize;
    if total > input.len() || total < 4 {
        return Err(bad("total length does not fit the extent"));
    }
    let mut out = Vec::with_capacity(ram_bytes);
    let mut p = 4;
    while p < total && out.len() < ram_bytes {
        if sectorsize - p % sectorsize < 4 {
            p += sectorsize - p % sectorsize;
            if p >= total {
                break;
            }
        }
        let seg_len = le_u32(input, p).map_err(|_| bad("segment header past the end"))? as usize;
        p += 4;
        let seg = slice(input, p, seg_len)
            .ok()
            .filter(|_| p + seg_len <= total)
            .ok_or_else(|| bad("segment past the end"))?;
        p += seg_len;
        let want = sectorsize.min(ram_bytes - out.len());
        let mut part = lzo1x(seg, want)?;
        part.resize(want, 0);
        out.extend_from_slice(&part);
    }
    out.resize(ram_bytes, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_runs_and_overlapping_matches_decode() {
        // 5 literals "abcab", then an M2 match of length 3 at distance 3, then end of stream.
        let mut s = vec![17 + 5];
        s.extend_from_slice(b"abcab");
        // M2: len = (t>>5)+1 = 3 → t>>5 = 2; dist-1 = 2 → low 3 bits of (t>>2) = 2, next = 0.
        s.push((2 << 5) | (2 << 2));
        s.push(0);
        s.extend_from_slice(&[17, 0, 0]);
        assert_eq!(lzo1x(&s, 100).unwrap(), b"abcabcab");
        assert!(lzo1x(&s, 7).is_err(), "output is bounded");
        assert!(lzo1x(&s[..4], 100).is_err(), "truncated input is an error");
    }

    #[test]
    fn matches_before_the_start_are_refused() {
        let s = [17 + 1, b'a', (2 << 5) | (2 << 2), 0, 17, 0, 0];
        assert!(lzo1x(&s, 100).is_err());
    }
}
