//! Decoding compressed extents (zlib, LZO, zstd) into exactly `ram_bytes` bytes.

use crate::items::Compression;
use diskfab_storage::{Error, Result};
use std::io::Read;

/// The largest decoded extent btrfs writes compressed (`BTRFS_MAX_UNCOMPRESSED`).
pub const MAX_DECODED: u64 = 128 << 10;

/// Decodes `input` to `ram_bytes` bytes; a shorter result is zero-filled as the kernel does,
/// a longer one is cut.
pub fn decompress(
    c: Compression,
    input: &[u8],
    ram_bytes: u64,
    sectorsize: u32,
) -> Result<Vec<u8>> {
    if ram_bytes > MAX_DECODED {
        return Err(Error::bad(format!(
            "btrfs compressed extent claims {ram_bytes} decoded bytes (at most {MAX_DECODED})"
        )));
    }
    let want = ram_bytes as usize;
    let mut out = match c {
        Compression::None => input.get(..want).unwrap_or(input).to_vec(),
        Compression::Zlib => read_bounded(flate2::read::ZlibDecoder::new(input), want, "zlib")?,
        Compression::Zstd => {
            let mut src = input;
            let dec = ruzstd::decoding::StreamingDecoder::new(&mut src)
                .map_err(|e| Error::bad(format!("btrfs zstd extent: {e}")))?;
            read_bounded(dec, want, "zstd")?
        }
        Compression::Lzo => crate::lzo::decompress(input, want, sectorsize as usize)?,
    };
    out.resize(want, 0);
    Ok(out)
}

fn read_bounded(r: impl Read, want: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    r.take(want as u64)
        .read_to_end(&mut out)
        .map_err(|e| Error::bad(format!("btrfs {what} extent: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn zlib_extents_decode_and_are_bounded_by_ram_bytes() {
        let data = b"hello btrfs ".repeat(100);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let c = z.finish().unwrap();
        let out = decompress(Compression::Zlib, &c, data.len() as u64, 4096).unwrap();
        assert_eq!(out, data);
        let short = decompress(Compression::Zlib, &c, 5, 4096).unwrap();
        assert_eq!(short, b"hello");
        assert!(decompress(Compression::Zlib, &c, 1 << 30, 4096).is_err());
        assert!(decompress(Compression::Zlib, b"garbage", 10, 4096).is_err());
    }
}
