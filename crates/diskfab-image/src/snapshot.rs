//! The qcow2 internal snapshot table: pure, bounded parsing (QEMU's limits: 65536 snapshots,
//! 64 MiB of table, 1 KiB of extra data per entry), and loading it from the image.

use crate::header::{Qcow2Header, MAX_HOST_OFFSET, MAX_L1_ENTRIES};
use crate::host::Host;
use diskfab_storage::bytes::{be_u16, be_u32, be_u64};
use diskfab_storage::{Error, Result};
use serde::Serialize;

/// Most snapshots accepted.
pub const MAX_SNAPSHOTS: u32 = 65536;
/// Largest snapshot table accepted, in bytes.
pub const MAX_TABLE_BYTES: u64 = 64 << 20;
const MAX_EXTRA: u32 = 1024;

/// One internal snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The snapshot ID (QEMU numbers them "1", "2", ...).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Creation time, seconds since the epoch.
    pub date_sec: u32,
    /// Creation time, nanoseconds part.
    pub date_nsec: u32,
    /// Guest clock at the snapshot, nanoseconds.
    pub vm_clock_nsec: u64,
    /// Bytes of saved VM state (0 for disk-only snapshots).
    pub vm_state_size: u64,
    /// Virtual disk size at the snapshot, when recorded.
    pub disk_size: Option<u64>,
    /// Host offset of the snapshot's L1 table.
    #[serde(skip)]
    pub l1_table_offset: u64,
    /// Entries of that L1 table.
    #[serde(skip)]
    pub l1_size: u32,
}

fn text(b: &[u8], o: usize, n: usize, what: &str) -> Result<String> {
    let raw = b
        .get(o..o + n)
        .ok_or_else(|| Error::bad("qcow2 snapshot table is truncated"))?;
    String::from_utf8(raw.to_vec())
        .map_err(|_| Error::bad(format!("qcow2 snapshot {what} is not UTF-8")))
}

/// Parses `nb` snapshot entries from `b` (the table's bytes, as many as the file holds up to
/// [`MAX_TABLE_BYTES`]); `cs` is the cluster size. Never panics; any entry running past `b`,
/// an unaligned or absurd L1 table, or oversized extra data is an error.
pub fn parse_snapshot_table(b: &[u8], nb: u32, cs: u64) -> Result<Vec<Snapshot>> {
    if nb > MAX_SNAPSHOTS {
        return Err(Error::bad(format!(
            "qcow2 has {nb} snapshots (at most {MAX_SNAPSHOTS})"
        )));
    }
    let mut out = Vec::with_capacity(nb.min(1024) as usize);
    let mut o = 0usize;
    for i in 0..nb {
        let l1_table_offset = be_u64(b, o)?;
        let l1_size = be_u32(b, o + 8)?;
        let (id_len, name_len) = (
            usize::from(be_u16(b, o + 12)?),
            usize::from(be_u16(b, o + 14)?),
        );
        let extra = be_u32(b, o + 36)?;
        if extra > MAX_EXTRA {
            return Err(Error::bad(format!(
                "qcow2 snapshot {i} has {extra} bytes of extra data (at most {MAX_EXTRA})"
            )));
        }
        if !l1_table_offset.is_multiple_of(cs)
            || l1_table_offset >= MAX_HOST_OFFSET
            || u64::from(l1_size) > MAX_L1_ENTRIES
            || (l1_size > 0 && l1_table_offset == 0)
        {
            return Err(Error::bad(format!(
                "qcow2 snapshot {i} has an invalid L1 table ({l1_size} entries at {l1_table_offset:#x})"
            )));
        }
        let x = o + 40;
        let extra = extra as usize;
        let vm_small = u64::from(be_u32(b, o + 32)?);
        let vm_state_size = if extra >= 8 { be_u64(b, x)? } else { vm_small };
        let disk_size = if extra >= 16 {
            Some(be_u64(b, x + 8)?)
        } else {
            None
        };
        let id_at = x + extra;
        out.push(Snapshot {
            id: text(b, id_at, id_len, "ID")?,
            name: text(b, id_at + id_len, name_len, "name")?,
            date_sec: be_u32(b, o + 16)?,
            date_nsec: be_u32(b, o + 20)?,
            vm_clock_nsec: be_u64(b, o + 24)?,
            vm_state_size,
            disk_size,
            l1_table_offset,
            l1_size,
        });
        o = (id_at + id_len + name_len).div_ceil(8) * 8;
        if o as u64 > MAX_TABLE_BYTES {
            return Err(Error::bad("qcow2 snapshot table is larger than 64 MiB"));
        }
    }
    Ok(out)
}

/// Reads and parses the snapshot table of an image whose file is `file_len` bytes long.
pub fn load(host: &Host, hdr: &Qcow2Header, file_len: u64) -> Result<Vec<Snapshot>> {
    if hdr.nb_snapshots == 0 {
        return Ok(Vec::new());
    }
    let off = hdr.snapshots_offset;
    if off == 0 || !off.is_multiple_of(hdr.cluster_size()) || off >= file_len {
        return Err(Error::bad(format!(
            "{}: snapshot table offset {off:#x} is unaligned or past the end of the file",
            host.path.display()
        )));
    }
    let mut b = vec![0u8; (file_len - off).min(MAX_TABLE_BYTES) as usize];
    host.read(&mut b, off)?;
    parse_snapshot_table(&b, hdr.nb_snapshots, hdr.cluster_size())
        .map_err(|e| e.context(host.path.display()))
}

/// Bytes the table of `snaps` takes (to count its clusters).
pub fn table_bytes(snaps: &[Snapshot], b: &[u8]) -> usize {
    // Re-walk the entry sizes: 40 + extra + id + name, padded to 8.
    let mut o = 0usize;
    for _ in snaps {
        let (Ok(id), Ok(name), Ok(extra)) =
            (be_u16(b, o + 12), be_u16(b, o + 14), be_u32(b, o + 36))
        else {
            break;
        };
        o = (o + 40 + extra as usize + usize::from(id) + usize::from(name)).div_ceil(8) * 8;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, name: &str, l1: u64, extra: u32) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&l1.to_be_bytes());
        e.extend_from_slice(&2u32.to_be_bytes());
        e.extend_from_slice(&(id.len() as u16).to_be_bytes());
        e.extend_from_slice(&(name.len() as u16).to_be_bytes());
        e.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        e.extend_from_slice(&5u32.to_be_bytes());
        e.extend_from_slice(&7u64.to_be_bytes());
        e.extend_from_slice(&0u32.to_be_bytes());
        e.extend_from_slice(&extra.to_be_bytes());
        e.extend(std::iter::repeat_n(0u8, extra as usize));
        e.extend_from_slice(id.as_bytes());
        e.extend_from_slice(name.as_bytes());
        while e.len() % 8 != 0 {
            e.push(0);
        }
        e
    }

    #[test]
    fn entries_parse_with_names_ids_and_padding() {
        let mut t = entry("1", "before", 0x30000, 16);
        t.extend(entry("2", "after-upgrade", 0x50000, 24));
        let s = parse_snapshot_table(&t, 2, 0x10000).unwrap();
        assert_eq!((s[0].id.as_str(), s[0].name.as_str()), ("1", "before"));
        assert_eq!(
            (s[1].id.as_str(), s[1].name.as_str()),
            ("2", "after-upgrade")
        );
        assert_eq!(
            (s[1].l1_table_offset, s[1].date_sec),
            (0x50000, 1_700_000_000)
        );
        assert_eq!(table_bytes(&s, &t), t.len());
    }

    #[test]
    fn hostile_tables_are_errors_never_panics() {
        let t = entry("1", "x", 0x30000, 16);
        assert!(
            parse_snapshot_table(&t, 2, 0x10000).is_err(),
            "second entry beyond the end"
        );
        assert!(
            parse_snapshot_table(&t, u32::MAX, 0x10000).is_err(),
            "absurd count"
        );
        assert!(parse_snapshot_table(&t, MAX_SNAPSHOTS + 1, 0x10000).is_err());
        assert!(parse_snapshot_table(&entry("1", "x", 0x30001, 0), 1, 0x10000).is_err());
        assert!(parse_snapshot_table(&entry("1", "x", 1 << 60, 0), 1, 0x10000).is_err());
        assert!(parse_snapshot_table(&entry("1", "x", 0x30000, 4096), 1, 0x10000).is_err());
        let mut bad = entry("1", "xy", 0x30000, 0);
        bad[41] = 0xff;
        assert!(
            parse_snapshot_table(&bad, 1, 0x10000).is_err(),
            "name not UTF-8"
        );
        // Any cut before the end of the name (40 + 16 extra + "1" + "x"; padding is optional).
        for n in 0..58 {
            assert!(
                parse_snapshot_table(&t[..n], 1, 0x10000).is_err(),
                "cut at {n}"
            );
        }
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut b = t.clone();
                b[i] ^= 1 << bit;
                let _ = parse_snapshot_table(&b, 1, 0x10000);
            }
        }
    }
}
