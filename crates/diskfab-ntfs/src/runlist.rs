//! Runlists ("mapping pairs"): which clusters hold which part of a non-resident attribute.

use diskfab_storage::bytes::u8_at;
use diskfab_storage::{Error, Result};

/// One run: `len` clusters from virtual cluster `vcn`, stored at `lcn` (`None` = sparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster of the run.
    pub vcn: u64,
    /// Length in clusters (never 0).
    pub len: u64,
    /// First logical cluster, or `None` for a hole.
    pub lcn: Option<u64>,
}

/// Reads a little-endian integer of `n` (0..=8) bytes at `off`, sign-extended when `signed`.
fn varint(buf: &[u8], off: usize, n: usize, signed: bool) -> Result<i128> {
    let mut v: u64 = 0;
    for i in 0..n {
        v |= u64::from(u8_at(buf, off + i)?) << (8 * i);
    }
    if n == 0 {
        return Ok(0);
    }
    if signed && n < 8 && v & (1 << (8 * n - 1)) != 0 {
        v |= u64::MAX << (8 * n);
    }
    Ok(if signed {
        i128::from(v as i64)
    } else {
        i128::from(v)
    })
}

/// Decodes the mapping pairs in `buf` (starting at virtual cluster `start_vcn`) up to their
/// terminating zero byte; at most `max_runs` runs. Every run lies inside `clusters` (the
/// volume size in clusters) and virtual clusters never overflow.
pub fn decode(buf: &[u8], start_vcn: u64, clusters: u64, max_runs: usize) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let (mut pos, mut vcn, mut lcn) = (0usize, start_vcn, 0i128);
    loop {
        let h = u8_at(buf, pos)?;
        if h == 0 {
            return Ok(runs);
        }
        let (ls, os) = (usize::from(h & 0xF), usize::from(h >> 4));
        if ls == 0 || ls > 8 || os > 8 {
            return Err(Error::bad(format!(
                "NTFS runlist: bad run header 0x{h:02x}"
            )));
        }
        let len = varint(buf, pos + 1, ls, false)? as u64;
        let delta = varint(buf, pos + 1 + ls, os, true)?;
        pos += 1 + ls + os;
        if len == 0 || len > clusters {
            return Err(Error::bad(format!("NTFS runlist: run of {len} clusters")));
        }
        let lcn_of_run = if os == 0 {
            None
        } else {
            lcn += delta;
            if lcn < 0 || (lcn as u128) + u128::from(len) > u128::from(clusters) {
                return Err(Error::bad(format!(
                    "NTFS runlist: run at cluster {lcn} (+{len}) outside the volume"
                )));
            }
            Some(lcn as u64)
        };
        if runs.len() >= max_runs {
            return Err(Error::bad(format!(
                "NTFS runlist: more than {max_runs} runs"
            )));
        }
        runs.push(Run {
            vcn,
            len,
            lcn: lcn_of_run,
        });
        vcn = vcn
            .checked_add(len)
            .ok_or_else(|| Error::bad("NTFS runlist: virtual clusters overflow"))?;
    }
}

/// The run holding virtual cluster `vcn` (runs sorted by `vcn`).
pub fn find(runs: &[Run], vcn: u64) -> Option<&Run> {
    let i = runs.partition_point(|r| r.vcn + r.len <= vcn);
    runs.get(i).filter(|r| r.vcn <= vcn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_decode_with_relative_signed_offsets_and_holes() {
        // 0x21: 1 length byte, 2 offset bytes; 0x01: a hole; 0x11 with a negative delta.
        let b = [0x21, 0x04, 0x00, 0x10, 0x01, 0x03, 0x11, 0x02, 0xF0, 0x00];
        let r = decode(&b, 0, 1 << 20, 10).unwrap();
        assert_eq!(
            r,
            [
                Run {
                    vcn: 0,
                    len: 4,
                    lcn: Some(0x1000)
                },
                Run {
                    vcn: 4,
                    len: 3,
                    lcn: None
                },
                Run {
                    vcn: 7,
                    len: 2,
                    lcn: Some(0x1000 - 16)
                },
            ]
        );
        assert_eq!(find(&r, 5).unwrap().lcn, None);
        assert_eq!(find(&r, 8).unwrap().vcn, 7);
        assert!(find(&r, 9).is_none());
    }

    #[test]
    fn runs_outside_the_volume_or_unterminated_are_bad_images() {
        assert!(decode(&[0x11, 0x04, 0x7F, 0x00], 0, 100, 10).is_err());
        assert!(decode(&[0x11, 0x04], 0, 1000, 10).is_err());
        assert!(decode(&[0x11, 0x04, 0x10, 0x11, 0x01, 0x80, 0x00], 0, 1000, 10).is_err());
        assert!(decode(&[0x11, 0x01, 0x01, 0x11, 0x01, 0x01, 0x00], 0, 1000, 1).is_err());
        assert!(decode(&[0x09, 0x01, 0x00], 0, 1000, 1).is_err());
    }
}
