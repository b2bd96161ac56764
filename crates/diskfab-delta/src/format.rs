//! The delta file: self-describing, versioned, streaming, integrity-protected.
//!
//! ```text
//! "DFDELTA1\n"
//! record*        u32 LE header length | JSON header | u64 LE data length | data | BLAKE3(header ‖ data)
//! end record     header {"op":"end","entries":N}, no data
//! trailer        BLAKE3 of every byte before it
//! ```
//! The first record is `begin` (version, what the delta was made from). Readers never hold more
//! than one header in memory, bound every length, and check each record's hash as they pass it;
//! the trailer proves nothing was cut, added or reordered.

use diskfab_storage::bytes::{le_u32, le_u64};
use diskfab_storage::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// File magic.
pub const MAGIC: &[u8; 9] = b"DFDELTA1\n";
/// Format version in the `begin` record.
pub const VERSION: u32 = 1;
/// Largest record header.
pub const MAX_HEADER: u32 = 1 << 20;
/// Most records.
pub const MAX_RECORDS: u64 = 50_000_000;

/// What a path must be before the delta applies (the pre-image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pre {
    /// Node type.
    pub kind: String,
    /// BLAKE3 of a regular file's contents (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Permission bits.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Entry {
    /// `begin`, `remove`, `put`, `meta` or `end`.
    pub op: String,
    /// Path (shown form, see `tree::show`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Node type for `put`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perm: Option<u32>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Modification time (seconds, nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<(i64, u32)>,
    /// Symlink target (shown form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Device numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes, names and values hex-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattrs: Option<Vec<(String, String)>>,
    /// Hard link to this (earlier or unchanged) path instead of data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Expected state before applying; absent for additions (the path must not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<Pre>,
    /// `begin`: format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `begin`: free-form description (the two images compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `end`: number of records before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses lowercase/uppercase hex.
pub fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(Error::bad("odd-length hex in delta"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::bad("bad hex in delta"))
        })
        .collect()
}

/// Writes a delta, streaming.
pub struct Writer<W: Write> {
    w: W,
    whole: blake3::Hasher,
    records: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a delta with its `begin` record.
    pub fn new(w: W, source: &str) -> Result<Self> {
        let mut me = Writer {
            w,
            whole: blake3::Hasher::new(),
            records: 0,
        };
        me.raw(MAGIC)?;
        me.record(
            &Entry {
                op: "begin".into(),
                version: Some(VERSION),
                source: Some(source.to_string()),
                ..Default::default()
            },
            0,
            &mut std::io::empty(),
        )?;
        me.records = 0;
        Ok(me)
    }

    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.whole.update(b);
        self.w
            .write_all(b)
            .map_err(|e| Error::io("writing the delta", e))
    }

    /// Writes one record whose data (exactly `len` bytes) comes from `data`.
    pub fn record(&mut self, e: &Entry, len: u64, data: &mut dyn Read) -> Result<()> {
        let h = serde_json::to_vec(e).map_err(|x| Error::Failed(x.to_string()))?;
        let mut rh = blake3::Hasher::new();
        rh.update(&h);
        self.raw(&(h.len() as u32).to_le_bytes())?;
        self.raw(&h)?;
        self.raw(&len.to_le_bytes())?;
        let mut buf = vec![0u8; (1 << 20).min(len.max(1)) as usize];
        let mut left = len;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            data.read_exact(&mut buf[..n])
                .map_err(|x| Error::io(format!("reading data for {}", e.path), x))?;
            rh.update(&buf[..n]);
            self.raw(&buf[..n])?;
            left -= n as u64;
        }
        self.raw(rh.finalize().as_bytes())?;
        self.records += 1;
        Ok(())
    }

    /// Writes the `end` record and the trailer.
    pub fn finish(mut self) -> Result<W> {
        let n = self.records;
        self.record(
            &Entry {
                op: "end".into(),
                entries: Some(n),
                ..Default::default()
            },
            0,
            &mut std::io::empty(),
        )?;
        let sum = *self.whole.finalize().as_bytes();
        self.w
            .write_all(&sum)
            .and_then(|_| self.w.flush())
            .map_err(|e| Error::io("writing the delta", e))?;
        Ok(self.w)
    }
}

/// A record's data while it is being read (hashed as it goes).
pub struct Data<'a, R: Read> {
    r: &'a mut R,
    left: u64,
    rh: &'a mut blake3::Hasher,
    whole: &'a mut blake3::Hasher,
}

impl<R: Read> Data<'_, R> {
    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.left
    }
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.r.read(&mut buf[..n])?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the delta file is truncated",
            ));
        }
        self.rh.update(&buf[..got]);
        self.whole.update(&buf[..got]);
        self.left -= got as u64;
        Ok(got)
    }
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], whole: &mut blake3::Hasher) -> Result<()> {
    r.read_exact(buf)
        .map_err(|_| Error::bad("the delta file is truncated"))?;
    whole.update(buf);
    Ok(())
}

/// Reads every record, calling `f` with its header and data (which `f` may read or leave);
/// checks each record's hash, the record count and the trailer. Returns the `begin` record.
/// `f` sees a record before its hash is checked: callers that act on data verify the whole file
/// with a first pass (`f` = no-op) or keep their effects revocable until this returns `Ok`.
pub fn read<R: Read>(
    mut r: R,
    mut f: impl FnMut(&Entry, &mut Data<'_, R>) -> Result<()>,
) -> Result<Entry> {
    let mut whole = blake3::Hasher::new();
    let mut magic = [0u8; 9];
    read_exact(&mut r, &mut magic, &mut whole)
        .map_err(|_| Error::bad("not a diskfab delta file (too short)"))?;
    if &magic != MAGIC {
        return Err(Error::bad("not a diskfab delta file (bad magic)"));
    }
    let mut begin: Option<Entry> = None;
    let mut n = 0u64;
    loop {
        if n > MAX_RECORDS {
            return Err(Error::bad("delta has too many records"));
        }
        let mut l4 = [0u8; 4];
        read_exact(&mut r, &mut l4, &mut whole)?;
        let hl = le_u32(&l4, 0)?;
        if hl == 0 || hl > MAX_HEADER {
            return Err(Error::bad(format!(
                "delta record {n}: header length {hl} out of range"
            )));
        }
        let mut h = vec![0u8; hl as usize];
        read_exact(&mut r, &mut h, &mut whole)?;
        let mut rh = blake3::Hasher::new();
        rh.update(&h);
        let e: Entry =
            serde_json::from_slice(&h).map_err(|x| Error::bad(format!("delta record {n}: {x}")))?;
        let mut l8 = [0u8; 8];
        read_exact(&mut r, &mut l8, &mut whole)?;
        let len = le_u64(&l8, 0)?;
        if begin.is_none() && (e.op != "begin" || e.version != Some(VERSION)) {
            return Err(Error::Unsupported(format!(
                "delta version {:?} (this diskfab reads version {VERSION})",
                e.version
            )));
        }
        if e.op == "end" {
            if len != 0 || e.entries != Some(n) {
                return Err(Error::bad("delta end record does not match its contents"));
            }
        } else if e.op != "begin" || begin.is_some() {
            if !matches!(e.op.as_str(), "remove" | "put" | "meta") {
                return Err(Error::bad(format!(
                    "delta record {n}: unknown op {:?}",
                    e.op
                )));
            }
            let mut d = Data {
                r: &mut r,
                left: len,
                rh: &mut rh,
                whole: &mut whole,
            };
            f(&e, &mut d)?;
            std::io::copy(&mut d, &mut std::io::sink())
                .map_err(|_| Error::bad("the delta file is truncated"))?;
        } else if len != 0 {
            return Err(Error::bad("delta begin record carries data"));
        }
        let mut sum = [0u8; 32];
        r.read_exact(&mut sum)
            .map_err(|_| Error::bad("the delta file is truncated"))?;
        if &sum != rh.finalize().as_bytes() {
            return Err(Error::bad(format!(
                "delta record {n} ({} {}) is damaged: hash mismatch",
                e.op, e.path
            )));
        }
        whole.update(&sum);
        if e.op == "end" {
            break;
        }
        if e.op == "begin" && begin.is_none() {
            begin = Some(e);
        } else {
            n += 1;
        }
    }
    let mut trailer = [0u8; 32];
    r.read_exact(&mut trailer)
        .map_err(|_| Error::bad("the delta file is truncated (no trailer)"))?;
    if &trailer != whole.finalize().as_bytes() {
        return Err(Error::bad(
            "the delta file was modified: whole-file hash mismatch",
        ));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra)
        .map_err(|e| Error::io("reading the delta", e))?
        != 0
    {
        return Err(Error::bad("trailing bytes after the delta"));
    }
    begin.ok_or_else(|| Error::bad("delta has no begin record"))
}

/// Fuzz entry point: reads `data` as a delta file. Must never panic. Returns the number of
/// records read when the whole file verifies, else 0.
pub fn fuzz_read(data: &[u8]) -> usize {
    let mut records = 0;
    let ok = read(data, |_, d| {
        records += 1;
        let mut sink = Vec::new();
        let _ = d.take(1 << 20).read_to_end(&mut sink);
        Ok(())
    });
    if ok.is_ok() {
        records
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), "a vs b").unwrap();
        let e = Entry {
            op: "put".into(),
            path: "/etc/x".into(),
            kind: Some("file".into()),
            ..Default::default()
        };
        w.record(&e, 5, &mut &b"hello"[..]).unwrap();
        w.record(
            &Entry {
                op: "remove".into(),
                path: "/y".into(),
                ..Default::default()
            },
            0,
            &mut std::io::empty(),
        )
        .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn deltas_round_trip_and_every_tampering_is_detected() {
        let d = sample();
        let mut seen = Vec::new();
        let begin = read(&d[..], |e, data| {
            let mut b = Vec::new();
            data.read_to_end(&mut b).unwrap();
            seen.push((e.path.clone(), b));
            Ok(())
        })
        .unwrap();
        assert_eq!(begin.source.as_deref(), Some("a vs b"));
        assert_eq!(
            seen,
            vec![("/etc/x".into(), b"hello".to_vec()), ("/y".into(), vec![])]
        );
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x20;
            assert!(
                read(&t[..], |_, _| Ok(())).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        for cut in 0..d.len() {
            assert!(read(&d[..cut], |_, _| Ok(())).is_err(), "cut at {cut}");
        }
        let mut longer = d.clone();
        longer.push(0);
        assert!(read(&longer[..], |_, _| Ok(())).is_err());
    }
}
