//! LUKS1 and LUKS2 header detection (report only: nothing is decrypted). Pure parsers over the
//! first bytes of a device: LUKS1's binary header with its eight key slots; LUKS2's binary
//! header (SHA-256 checked over the header and JSON area) and the JSON metadata (cipher,
//! segments, key slots, digests), bounded to the 4 MiB LUKS2 allows.

use diskfab_storage::bytes::{be_u16, be_u32, be_u64, slice};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// LUKS magic of the primary header.
pub const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// Size of LUKS2's binary header (the JSON area follows it).
pub const LUKS2_BIN: usize = 4096;
/// Largest LUKS2 header (binary + JSON) the format allows.
pub const LUKS2_MAX: u64 = 4 << 20;
const LUKS1_SLOT_ENABLED: u32 = 0x00ac_71f3;

/// One key slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeySlot {
    /// Slot number.
    pub id: u32,
    /// LUKS1: whether the slot is enabled (LUKS2 lists only used slots).
    pub enabled: bool,
    /// LUKS2 slot type (`luks2`); LUKS1: `luks1`.
    pub kind: String,
    /// Key-derivation function (`pbkdf2`, `argon2id`, ...).
    pub kdf: String,
    /// PBKDF2 iterations, when the KDF has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Key size in bytes (LUKS2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u64>,
}

/// What a LUKS header says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LuksInfo {
    /// 1 or 2.
    pub version: u16,
    /// The UUID.
    pub uuid: String,
    /// Cipher as cryptsetup shows it (`aes-xts-plain64`).
    pub cipher: String,
    /// Hash (LUKS1: the header hash; LUKS2: the first digest's).
    pub hash: String,
    /// Where the encrypted data starts, bytes.
    pub payload_offset: u64,
    /// Master key size, bits.
    pub key_bits: u64,
    /// LUKS2 label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// LUKS2 subsystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    /// LUKS2 header sequence id (cryptsetup's "Epoch").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Key slots.
    pub keyslots: Vec<KeySlot>,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Whether `head` starts with the LUKS magic; the version (1 or 2) when it does.
pub fn detect(head: &[u8]) -> Option<u16> {
    if head.get(..6)? != MAGIC {
        return None;
    }
    be_u16(head, 6).ok()
}

/// Parses a LUKS1 header (the first 592 bytes matter).
pub fn parse_luks1(h: &[u8]) -> Result<LuksInfo> {
    if detect(h) != Some(1) {
        return Err(Error::bad("not a LUKS1 header"));
    }
    let name = cstr(slice(h, 8, 32)?);
    let mode = cstr(slice(h, 40, 32)?);
    let mut keyslots = Vec::new();
    for i in 0..8u32 {
        let o = 208 + 48 * i as usize;
        keyslots.push(KeySlot {
            id: i,
            enabled: be_u32(h, o)? == LUKS1_SLOT_ENABLED,
            kind: "luks1".into(),
            kdf: "pbkdf2".into(),
            iterations: Some(u64::from(be_u32(h, o + 4)?)),
            key_size: None,
        });
    }
    Ok(LuksInfo {
        version: 1,
        uuid: cstr(slice(h, 168, 40)?),
        cipher: format!("{name}-{mode}"),
        hash: cstr(slice(h, 72, 32)?),
        payload_offset: u64::from(be_u32(h, 104)?) * 512,
        key_bits: u64::from(be_u32(h, 108)?) * 8,
        label: None,
        subsystem: None,
        epoch: None,
        keyslots,
    })
}

/// The total LUKS2 header size (binary + JSON) a binary header declares, validated.
pub fn luks2_header_size(h: &[u8]) -> Result<u64> {
    let size = be_u64(h, 8)?;
    if !size.is_power_of_two() || !(16384..=LUKS2_MAX).contains(&size) {
        return Err(Error::bad(format!("LUKS2 header size {size}")));
    }
    Ok(size)
}

/// Parses a LUKS2 header: `h` holds the whole header area (binary header and JSON).
pub fn parse_luks2(h: &[u8]) -> Result<LuksInfo> {
    if detect(h) != Some(2) {
        return Err(Error::bad("not a LUKS2 header"));
    }
    let size = luks2_header_size(h)? as usize;
    let area = slice(h, 0, size)?;
    let alg = cstr(slice(h, 72, 32)?);
    if alg != "sha256" {
        return Err(Error::Unsupported(format!("LUKS2 header checksum {alg:?}")));
    }
    let mut hasher = Sha256::new();
    hasher.update(&area[..448]);
    hasher.update([0u8; 64]);
    hasher.update(&area[512..]);
    if hasher.finalize().as_slice() != slice(h, 448, 32)? {
        return Err(Error::bad("LUKS2 header checksum mismatch"));
    }
    let json_bytes = &area[LUKS2_BIN..];
    let end = json_bytes
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(json_bytes.len());
    let json: Value = serde_json::from_slice(&json_bytes[..end])
        .map_err(|e| Error::bad(format!("LUKS2 JSON metadata: {e}")))?;
    let seg = json["segments"]["0"].clone();
    let digest = json["digests"]["0"].clone();
    let mut keyslots = Vec::new();
    if let Some(m) = json["keyslots"].as_object() {
        for (id, k) in m {
            keyslots.push(KeySlot {
                id: id
                    .parse()
                    .map_err(|_| Error::bad(format!("LUKS2 key slot id {id:?}")))?,
                enabled: true,
                kind: k["type"].as_str().unwrap_or("?").to_string(),
                kdf: k["kdf"]["type"].as_str().unwrap_or("?").to_string(),
                iterations: k["kdf"]["iterations"].as_u64(),
                key_size: k["key_size"].as_u64(),
            });
        }
    }
    keyslots.sort_by_key(|k| k.id);
    let key_bits = keyslots.first().and_then(|k| k.key_size).unwrap_or(0) * 8;
    let opt = |s: String| (!s.is_empty()).then_some(s);
    Ok(LuksInfo {
        version: 2,
        uuid: cstr(slice(h, 168, 40)?),
        cipher: seg["encryption"].as_str().unwrap_or("?").to_string(),
        hash: digest["hash"].as_str().unwrap_or("?").to_string(),
        payload_offset: seg["offset"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        key_bits,
        label: opt(cstr(slice(h, 24, 48)?)),
        subsystem: opt(cstr(slice(h, 208, 48)?)),
        epoch: Some(be_u64(h, 16)?),
        keyslots,
    })
}

/// Reads and parses the LUKS header on `dev`: `Ok(None)` when there is none.
pub fn probe(dev: &DevRef) -> Result<Option<LuksInfo>> {
    if dev.size() < LUKS2_BIN as u64 {
        return Ok(None);
    }
    let mut head = vec![0u8; LUKS2_BIN];
    dev.read_at(&mut head, 0)?;
    match detect(&head) {
        None => Ok(None),
        Some(1) => parse_luks1(&head).map(Some),
        Some(2) => {
            let size = luks2_header_size(&head)?;
            if size > dev.size() {
                return Err(Error::bad("LUKS2 header larger than its device"));
            }
            let mut all = diskfab_storage::limits::alloc_bytes(size, "LUKS2 header")?;
            dev.read_at(&mut all, 0)?;
            parse_luks2(&all).map(Some)
        }
        Some(v) => Err(Error::Unsupported(format!("LUKS version {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luks1_fields_are_decoded() {
        let mut h = vec![0u8; 1024];
        h[..6].copy_from_slice(MAGIC);
        h[6..8].copy_from_slice(&1u16.to_be_bytes());
        h[8..11].copy_from_slice(b"aes");
        h[40..51].copy_from_slice(b"xts-plain64");
        h[72..78].copy_from_slice(b"sha256");
        h[104..108].copy_from_slice(&4096u32.to_be_bytes());
        h[108..112].copy_from_slice(&64u32.to_be_bytes());
        h[168..172].copy_from_slice(b"abcd");
        h[208..212].copy_from_slice(&LUKS1_SLOT_ENABLED.to_be_bytes());
        let i = parse_luks1(&h).unwrap();
        assert_eq!(i.cipher, "aes-xts-plain64");
        assert_eq!(i.payload_offset, 4096 * 512);
        assert_eq!(i.key_bits, 512);
        assert!(i.keyslots[0].enabled && !i.keyslots[1].enabled);
        assert!(parse_luks1(&h[..300]).is_err());
    }

    #[test]
    fn luks2_with_a_bad_checksum_or_size_is_refused() {
        let mut h = vec![0u8; 16384];
        h[..6].copy_from_slice(MAGIC);
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        h[8..16].copy_from_slice(&16384u64.to_be_bytes());
        h[72..78].copy_from_slice(b"sha256");
        h[4096..4098].copy_from_slice(b"{}");
        let e = parse_luks2(&h).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let mut d = Sha256::new();
        d.update(&h);
        let sum = d.finalize();
        h[448..480].copy_from_slice(&sum);
        let i = parse_luks2(&h).unwrap();
        assert_eq!(i.version, 2);
        h[8..16].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(parse_luks2(&h).is_err());
    }
}
