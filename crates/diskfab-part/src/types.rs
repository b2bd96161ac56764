//! Partition types: names, aliases, GUIDs and MBR type bytes; GUID text form; sizes.

use diskfab_storage::{Error, Result};

/// (alias, GPT type GUID, MBR type byte). The first alias for a GUID/byte is its read name.
const TYPES: &[(&str, &str, Option<u8>)] = &[
    ("linux", "0fc63daf-8483-4772-8e79-3d69d8477de4", Some(0x83)),
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Some(0xef)),
    ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", Some(0x82)),
    ("fat32", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", Some(0x0c)),
    ("lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928", Some(0x8e)),
    ("raid", "a19d880f-05fc-4d3b-a006-743f0f84911e", Some(0xfd)),
    ("extended", "", Some(0x05)),
    ("bios-boot", "21686148-6449-6e6f-744e-656564454649", None),
    (
        "linux-root-x86-64",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        None,
    ),
    ("linux-home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", None),
    ("msr", "e3c9e316-0b5c-4db8-817d-f92df00215ae", None),
    (
        "windows-recovery",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac",
        None,
    ),
];

/// Read names of MBR type bytes not in the alias table.
const MBR_NAMES: &[(u8, &str)] = &[
    (0x01, "fat12"),
    (0x04, "fat16"),
    (0x06, "fat16"),
    (0x0e, "fat16"),
    (0x0b, "fat32"),
    (0x07, "ntfs"),
    (0x05, "extended"),
    (0x0f, "extended"),
    (0x85, "extended"),
    (0xee, "gpt-protective"),
];

/// The read name of an MBR type byte.
pub fn mbr_type_name(t: u8) -> &'static str {
    TYPES
        .iter()
        .find(|e| e.2 == Some(t))
        .map(|e| e.0)
        .or_else(|| MBR_NAMES.iter().find(|e| e.0 == t).map(|e| e.1))
        .unwrap_or("unknown")
}

/// The read name of a GPT type GUID (lowercase text).
pub fn gpt_type_name(g: &str) -> &'static str {
    TYPES
        .iter()
        .find(|e| e.1 == g && !g.is_empty())
        .map(|e| e.0)
        .unwrap_or("unknown")
}

fn alias_help() -> String {
    let names: Vec<&str> = TYPES.iter().map(|e| e.0).collect();
    format!("{}, a type GUID, or 0xNN (MBR)", names.join(", "))
}

/// The GPT type GUID for a user-given alias or GUID.
pub fn gpt_type_for(alias: &str) -> Result<[u8; 16]> {
    if let Some(e) = TYPES.iter().find(|e| e.0 == alias && !e.1.is_empty()) {
        return parse_guid(e.1);
    }
    parse_guid(alias).map_err(|_| {
        Error::Invalid(format!(
            "unknown partition type {alias:?} for GPT: use {}",
            alias_help()
        ))
    })
}

/// The MBR type byte for a user-given alias or `0xNN`.
pub fn mbr_type_for(alias: &str) -> Result<u8> {
    if let Some(e) = TYPES.iter().find(|e| e.0 == alias) {
        return e.2.ok_or_else(|| {
            Error::Invalid(format!(
                "partition type {alias} exists only on GPT disks: use --gpt"
            ))
        });
    }
    let hex = alias
        .strip_prefix("0x")
        .or_else(|| alias.strip_prefix("0X"));
    match hex.map(|h| u8::from_str_radix(h, 16)) {
        Some(Ok(b)) if b != 0 => Ok(b),
        _ => Err(Error::Invalid(format!(
            "unknown partition type {alias:?} for MBR: use {}",
            alias_help()
        ))),
    }
}

/// Formats a GPT GUID (mixed-endian on disk) as lowercase text.
pub fn guid_to_string(b: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Parses GUID text into its on-disk (mixed-endian) bytes.
pub fn parse_guid(s: &str) -> Result<[u8; 16]> {
    let bad = || Error::Invalid(format!("{s:?} is not a GUID"));
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || s.len() != 36 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut v = [0u8; 16];
    for (i, b) in v.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    v[0..4].reverse();
    v[4..6].reverse();
    v[6..8].reverse();
    Ok(v)
}

/// 16 random bytes from the kernel.
pub fn random16() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(b)
}

/// A random version-4 GUID in on-disk byte order.
pub fn random_guid() -> Result<[u8; 16]> {
    let mut b = random16()?;
    b[7] = (b[7] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// Parses a size: `1048576`, `512B`, `100K`, `512M`, `4G`, `1T`, `4GiB`, `1.5G` (binary units).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::Invalid(format!("invalid size {s:?}: use e.g. 512M, 4G"));
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || frac.len() > 9 || frac.contains('.') {
        return Err(bad());
    }
    let i: u128 = int.parse().map_err(|_| bad())?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let mult = 1u128 << shift;
    let v = i * mult + f * mult / 10u128.pow(frac.len() as u32);
    u64::try_from(v).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_and_reject_junk() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("100K").unwrap(), 102_400);
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        for bad in ["", "G", "4X", "1.2.3G", "-1", "99999999999999999999999P"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn guid_text_round_trips_in_uefi_mixed_endian() {
        let g = parse_guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
        assert_eq!(&g[..4], &[0x28, 0x73, 0x2a, 0xc1]);
        assert_eq!(guid_to_string(&g), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert!(parse_guid("nonsense").is_err());
    }
}
