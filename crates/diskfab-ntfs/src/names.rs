//! $FILE_NAME, $STANDARD_INFORMATION and $REPARSE_POINT values, $UpCase comparison, times.

use crate::record::{utf16_at, REF_MASK};
use diskfab_fs::Timespec;
use diskfab_storage::bytes::{le_u16, le_u32, le_u64, u8_at};
use diskfab_storage::{Error, Result};

/// Namespace of a DOS 8.3 alias only (hidden from listings, as ntfs-3g does).
pub const NS_DOS: u8 = 2;

/// A $FILE_NAME value (also the key of directory index entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The parent directory's record number.
    pub parent: u64,
    /// File attribute flags as recorded in the name.
    pub attrs: u32,
    /// 0 POSIX, 1 Win32, 2 DOS, 3 Win32 and DOS.
    pub namespace: u8,
    /// The name, UTF-16.
    pub name: Vec<u16>,
}

/// Parses a $FILE_NAME value.
pub fn parse_file_name(v: &[u8]) -> Result<FileName> {
    let len = usize::from(u8_at(v, 0x40)?);
    Ok(FileName {
        parent: le_u64(v, 0)? & REF_MASK,
        attrs: le_u32(v, 0x38)?,
        namespace: u8_at(v, 0x41)?,
        name: utf16_at(v, 0x42, len)?,
    })
}

/// Windows file attribute flags.
pub mod fa {
    /// FILE_ATTRIBUTE_READONLY
    pub const READONLY: u32 = 0x0001;
    /// FILE_ATTRIBUTE_SYSTEM
    pub const SYSTEM: u32 = 0x0004;
    /// FILE_ATTRIBUTE_ENCRYPTED
    pub const ENCRYPTED: u32 = 0x4000;
}

/// The parts of $STANDARD_INFORMATION diskfab reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StdInfo {
    /// Creation time.
    pub created: Timespec,
    /// Last data modification.
    pub modified: Timespec,
    /// Last MFT record change (reported as ctime).
    pub changed: Timespec,
    /// Last access.
    pub accessed: Timespec,
    /// File attribute flags.
    pub attrs: u32,
}

/// Converts an NT time (100 ns units since 1601-01-01) to Unix time.
pub fn nt_time(t: u64) -> Timespec {
    const EPOCH_DIFF: i64 = 11_644_473_600;
    let secs = (t / 10_000_000) as i64 - EPOCH_DIFF;
    Timespec {
        sec: secs,
        nsec: ((t % 10_000_000) * 100) as u32,
    }
}

/// Parses $STANDARD_INFORMATION.
pub fn parse_std_info(v: &[u8]) -> Result<StdInfo> {
    Ok(StdInfo {
        created: nt_time(le_u64(v, 0)?),
        modified: nt_time(le_u64(v, 8)?),
        changed: nt_time(le_u64(v, 0x10)?),
        accessed: nt_time(le_u64(v, 0x18)?),
        attrs: le_u32(v, 0x20)?,
    })
}

/// Reparse tags diskfab understands.
pub const TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// Windows symbolic link.
pub const TAG_SYMLINK: u32 = 0xA000_000C;

/// What a $REPARSE_POINT value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reparse {
    /// A symlink or junction, with its target as a Unix path.
    Link(Vec<u8>),
    /// Any other tag (reported, not followed).
    Other(u32),
}

/// Parses a $REPARSE_POINT value.
pub fn parse_reparse(v: &[u8]) -> Result<Reparse> {
    let tag = le_u32(v, 0)?;
    let buf_start = match tag {
        TAG_MOUNT_POINT => 16,
        TAG_SYMLINK => 20,
        _ => return Ok(Reparse::Other(tag)),
    };
    let (sub_off, sub_len) = (usize::from(le_u16(v, 8)?), usize::from(le_u16(v, 10)?));
    let (prt_off, prt_len) = (usize::from(le_u16(v, 12)?), usize::from(le_u16(v, 14)?));
    let relative = tag == TAG_SYMLINK && le_u32(v, 16)? & 1 != 0;
    let (off, len) = if prt_len > 0 {
        (prt_off, prt_len)
    } else {
        (sub_off, sub_len)
    };
    if len % 2 != 0 {
        return Err(Error::bad("NTFS reparse point: odd name length"));
    }
    let name = utf16_at(v, buf_start + off, len / 2)?;
    Ok(Reparse::Link(windows_target(
        &utf16_to_bytes(&name),
        relative,
    )))
}

/// A Windows link target as a Unix path: `\` → `/`; absolute targets (`\??\C:\x`, `C:\x`)
/// become paths from this volume's root (`/x`); relative ones stay relative.
pub fn windows_target(t: &[u8], relative: bool) -> Vec<u8> {
    let mut s: &[u8] = t;
    if !relative {
        s = s.strip_prefix(b"\\??\\").unwrap_or(s);
        if s.len() >= 2 && s[1] == b':' && s[0].is_ascii_alphabetic() {
            s = &s[2..];
        }
    }
    let mut out: Vec<u8> = s
        .iter()
        .map(|&c| if c == b'\\' { b'/' } else { c })
        .collect();
    if !relative && !out.starts_with(b"/") {
        out.insert(0, b'/');
    }
    out
}

/// UTF-16 to UTF-8 bytes (unpaired surrogates become U+FFFD).
pub fn utf16_to_bytes(u: &[u16]) -> Vec<u8> {
    char::decode_utf16(u.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect::<String>()
        .into_bytes()
}

/// UTF-8 bytes to UTF-16 (`None` when not UTF-8: no NTFS name can match).
pub fn bytes_to_utf16(b: &[u8]) -> Option<Vec<u16>> {
    std::str::from_utf8(b)
        .ok()
        .map(|s| s.encode_utf16().collect())
}

/// The volume's $UpCase table (65536 entries), or a simple fallback.
#[derive(Debug, Clone)]
pub struct UpCase(Vec<u16>);

impl UpCase {
    /// From the $UpCase file's bytes; a table of the wrong size falls back to ASCII rules.
    pub fn from_bytes(b: &[u8]) -> UpCase {
        if b.len() == 131072 {
            UpCase(
                b.chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
        } else {
            UpCase::ascii()
        }
    }

    /// ASCII upper-casing only.
    pub fn ascii() -> UpCase {
        UpCase(
            (0..=u16::MAX)
                .map(|c| {
                    if (0x61..=0x7A).contains(&c) {
                        c - 32
                    } else {
                        c
                    }
                })
                .collect(),
        )
    }

    /// One code unit upper-cased.
    pub fn up(&self, c: u16) -> u16 {
        self.0.get(usize::from(c)).copied().unwrap_or(c)
    }

    /// Compares two names as NTFS collates file names (upper-cased code units).
    pub fn cmp(&self, a: &[u16], b: &[u16]) -> std::cmp::Ordering {
        a.iter()
            .map(|&c| self.up(c))
            .cmp(b.iter().map(|&c| self.up(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_become_unix_paths() {
        assert_eq!(windows_target(b"..\\a\\b", true), b"../a/b");
        assert_eq!(
            windows_target(b"\\??\\C:\\Windows\\System32", false),
            b"/Windows/System32"
        );
        assert_eq!(windows_target(b"C:\\x", false), b"/x");
    }

    #[test]
    fn nt_times_convert_to_unix_seconds() {
        assert_eq!(
            nt_time(116_444_736_000_000_000),
            Timespec { sec: 0, nsec: 0 }
        );
        assert_eq!(nt_time(116_444_736_000_000_015).nsec, 1500);
    }

    #[test]
    fn upcase_collation_ignores_ascii_case() {
        let u = UpCase::ascii();
        let a: Vec<u16> = "Abc".encode_utf16().collect();
        let b: Vec<u16> = "aBC".encode_utf16().collect();
        assert_eq!(u.cmp(&a, &b), std::cmp::Ordering::Equal);
    }
}
