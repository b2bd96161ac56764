//! CRC32c (Castagnoli) as XFS uses it for metadata: computed over the block with the checksum
//! field zeroed, stored little-endian.

use diskfab_storage::{bytes, Error, Result};

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC32c of `buf` with the four bytes at `off` taken as zero.
pub fn xfs_crc(buf: &[u8], off: usize) -> Result<u32> {
    let head = bytes::slice(buf, 0, off)?;
    let tail_start = off
        .checked_add(4)
        .ok_or_else(|| Error::bad("xfs: checksum offset overflows"))?;
    let tail = bytes::slice(buf, tail_start, buf.len().saturating_sub(tail_start))?;
    let c = update(!0, head);
    let c = update(c, &[0; 4]);
    Ok(!update(c, tail))
}

/// Checks the CRC stored at `off` of `buf`; `what` names the structure in the error.
pub fn verify(buf: &[u8], off: usize, what: &str) -> Result<()> {
    let stored = bytes::le_u32(buf, off)?;
    let want = xfs_crc(buf, off)?;
    if stored != want {
        return Err(Error::BadImage(format!(
            "xfs: {what}: checksum mismatch (stored {stored:#010x}, computed {want:#010x})"
        )));
    }
    Ok(())
}

/// Recomputes and stores the CRC at `off` of `buf` (the fuzz entry re-seals mutated blocks so
/// that the parsers behind the checksum get exercised).
pub fn store(buf: &mut [u8], off: usize) -> Result<()> {
    let c = xfs_crc(buf, off)?;
    let end = off.checked_add(4).filter(|&e| e <= buf.len());
    let dst = end
        .map(|e| &mut buf[off..e])
        .ok_or_else(|| Error::bad("xfs: checksum field outside its block"))?;
    dst.copy_from_slice(&c.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(!super::update(!0, b"123456789"), 0xe306_9283);
    }
}
