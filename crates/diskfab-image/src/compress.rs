//! Compressing output units apart from storing them. A [`Compressor`] is a plain value that any
//! thread may use (convert's workers compress clusters and grains in parallel); the writer then
//! stores each result with [`crate::Image::write_packed`], in guest order.
//!
//! Levels follow qemu-img so outputs are the same size: qcow2 zlib is raw deflate with a 4 KiB
//! window at the default level, qcow2 zstd a single frame, VMDK grains zlib streams at the
//! default level (what zlib's `compress()` uses).

use diskfab_storage::{Error, Result};

/// The encoding an output image uses for its compressed units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// qcow2 compressed cluster, raw deflate.
    Qcow2Zlib,
    /// qcow2 compressed cluster, one zstd frame.
    Qcow2Zstd,
    /// streamOptimized VMDK grain, zlib stream.
    VmdkGrain,
}

/// One unit ready for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// Store the data as it is (it does not shrink, or the unit is not a whole one).
    Plain,
    /// The compressed bytes of the unit.
    Compressed(Vec<u8>),
}

/// Compresses whole units (qcow2 clusters, VMDK grains) of one output image; `Send + Sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressor {
    codec: Codec,
    unit: u64,
}

impl Compressor {
    pub(crate) fn new(codec: Codec, unit: u64) -> Self {
        Compressor { codec, unit }
    }

    /// Bytes of one unit (cluster or grain): [`Compressor::compress`] packs only whole units.
    pub fn unit(&self) -> u64 {
        self.unit
    }

    /// The encoding.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Compresses one unit. Anything but a whole unit, and a qcow2 cluster that does not shrink
    /// by at least a sector, is [`Packed::Plain`].
    pub fn compress(&self, data: &[u8]) -> Result<Packed> {
        if data.len() as u64 != self.unit {
            return Ok(Packed::Plain);
        }
        let out = match self.codec {
            Codec::Qcow2Zlib => qcow2_zlib(data)?,
            Codec::Qcow2Zstd => Some(zstd_frame(data)?),
            Codec::VmdkGrain => return Ok(Packed::Compressed(zlib_stream(data)?)),
        };
        Ok(match out {
            Some(c) if (c.len() as u64) + 512 <= self.unit => Packed::Compressed(c),
            _ => Packed::Plain,
        })
    }
}

/// Raw deflate with qemu's parameters (default level, 4 KiB window); `None` when the output
/// would not be smaller than the input.
fn qcow2_zlib(data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut c = flate2::Compress::new_with_window_bits(flate2::Compression::default(), false, 12);
    let mut out = Vec::with_capacity(data.len());
    let status = c
        .compress_vec(data, &mut out, flate2::FlushCompress::Finish)
        .map_err(|e| Error::Failed(format!("deflate: {e}")))?;
    Ok((status == flate2::Status::StreamEnd).then_some(out))
}

/// One zstd frame at zstd's default level (3), which is what qemu uses.
fn zstd_frame(data: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(data, zstd::DEFAULT_COMPRESSION_LEVEL)
        .map_err(|e| Error::Failed(format!("zstd: {e}")))
}

/// A zlib stream (header and Adler-32) at the default level, like zlib's `compress()`.
fn zlib_stream(data: &[u8]) -> Result<Vec<u8>> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), true);
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let status = c
        .compress_vec(data, &mut out, flate2::FlushCompress::Finish)
        .map_err(|e| Error::Failed(format!("deflate: {e}")))?;
    if status != flate2::Status::StreamEnd {
        return Err(Error::Failed("deflate did not finish a grain".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(raw: bool, c: &[u8], n: usize) -> Vec<u8> {
        let mut d = flate2::Decompress::new(!raw);
        let mut out = Vec::with_capacity(n);
        d.decompress_vec(c, &mut out, flate2::FlushDecompress::Finish)
            .expect("inflate");
        out
    }

    fn sample() -> Vec<u8> {
        (0..65536u32).map(|i| (i / 7 % 251) as u8).collect()
    }

    #[test]
    fn qcow2_zlib_cluster_inflates_back_to_the_input() {
        let data = sample();
        let Packed::Compressed(c) = Compressor::new(Codec::Qcow2Zlib, 65536)
            .compress(&data)
            .expect("compress")
        else {
            panic!("a repetitive cluster must shrink");
        };
        assert_eq!(inflate(true, &c, data.len()), data);
    }

    #[test]
    fn qcow2_zstd_cluster_decodes_back_to_the_input() {
        let data = sample();
        let Packed::Compressed(c) = Compressor::new(Codec::Qcow2Zstd, 65536)
            .compress(&data)
            .expect("compress")
        else {
            panic!("a repetitive cluster must shrink");
        };
        let mut out = Vec::new();
        let mut dec = ruzstd::decoding::StreamingDecoder::new(&c[..]).expect("zstd frame");
        std::io::Read::read_to_end(&mut dec, &mut out).expect("decode");
        assert_eq!(out, data);
    }

    #[test]
    fn vmdk_grain_is_a_zlib_stream_of_the_input() {
        let data = sample();
        let Packed::Compressed(c) = Compressor::new(Codec::VmdkGrain, 65536)
            .compress(&data)
            .expect("compress")
        else {
            panic!("grains are always compressed");
        };
        assert_eq!(inflate(false, &c, data.len()), data);
    }

    #[test]
    fn incompressible_or_partial_qcow2_units_stay_plain() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for codec in [Codec::Qcow2Zlib, Codec::Qcow2Zstd] {
            let c = Compressor::new(codec, 65536);
            assert_eq!(c.compress(&random).expect("compress"), Packed::Plain);
            assert_eq!(
                c.compress(&sample()[..4096]).expect("compress"),
                Packed::Plain
            );
        }
    }
}
