//! The CRC LVM2 stores in labels, metadata-area headers and raw locations: CRC-32 with the
//! reflected polynomial 0xEDB88320, started from [`INITIAL_CRC`] and with no final inversion.

/// The start value LVM2 uses for every checksum.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

/// Continues the LVM2 CRC `crc` over `data` (call with [`INITIAL_CRC`] to start).
pub fn lvm_crc(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_crc_is_crc32_without_the_final_inversion() {
        // Standard CRC-32 of "123456789" is 0xCBF43926 (init !0, final !); with init !0 and
        // no final inversion the register holds its complement.
        assert_eq!(lvm_crc(0xffff_ffff, b"123456789"), !0xcbf4_3926);
        // Chaining equals one pass.
        let whole = lvm_crc(INITIAL_CRC, b"hello world");
        let part = lvm_crc(lvm_crc(INITIAL_CRC, b"hello "), b"world");
        assert_eq!(whole, part);
    }
}
