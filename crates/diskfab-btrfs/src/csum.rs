//! Checksums of superblocks and tree nodes: CRC-32C (btrfs' default), xxHash64 and SHA-256.
//! BLAKE2b is recognised and refused with a clear message.

use diskfab_storage::{Error, Result};

/// The checksum algorithms btrfs defines (`csum_type` in the superblock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumType {
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// xxHash64 with seed 0, 8 bytes.
    Xxhash,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl CsumType {
    /// The algorithm for a superblock's `csum_type`, or why it is refused.
    pub fn from_raw(v: u16) -> Result<CsumType> {
        match v {
            0 => Ok(CsumType::Crc32c),
            1 => Ok(CsumType::Xxhash),
            2 => Ok(CsumType::Sha256),
            3 => Err(Error::Unsupported(
                "btrfs checksum type blake2 is not supported (crc32c, xxhash and sha256 are)"
                    .into(),
            )),
            n => Err(Error::BadImage(format!("unknown btrfs checksum type {n}"))),
        }
    }

    /// The name btrfs-progs uses.
    pub fn name(self) -> &'static str {
        match self {
            CsumType::Crc32c => "crc32c",
            CsumType::Xxhash => "xxhash64",
            CsumType::Sha256 => "sha256",
        }
    }

    /// Whether the first bytes of `stored` (a 32-byte checksum field) are the checksum of `data`.
    pub fn matches(self, data: &[u8], stored: &[u8]) -> bool {
        match self {
            CsumType::Crc32c => stored.get(..4) == Some(&crc32c(data).to_le_bytes()[..]),
            CsumType::Xxhash => {
                let h = twox_hash::XxHash64::oneshot(0, data);
                stored.get(..8) == Some(&h.to_le_bytes()[..])
            }
            CsumType::Sha256 => {
                use sha2::Digest;
                let h = sha2::Sha256::digest(data);
                stored.get(..32) == Some(&h[..])
            }
        }
    }
}

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

/// The CRC-32C register after feeding `data` starting from `seed`, with no inversions (the
/// kernel's `crc32c(seed, data, len)`).
pub fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    data.iter()
        .fold(seed, |c, &b| TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

/// Standard CRC-32C (initial value and final XOR all ones).
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_raw(!0, data)
}

/// The hash btrfs keys directory and xattr items by: `crc32c(~1, name)`.
pub fn name_hash(name: &[u8]) -> u64 {
    u64::from(crc32c_raw(!1, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn blake2_is_refused_by_name_and_unknown_types_are_bad_images() {
        let e = CsumType::from_raw(3).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("blake2"));
        assert!(matches!(CsumType::from_raw(9), Err(Error::BadImage(_))));
    }
}
