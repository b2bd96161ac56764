//! A read-only Windows registry hive (`regf`) reader with strict bounds: every cell offset and
//! size is checked against the hive bins, subkey lists are followed one `ri` level deep at most,
//! every listing is capped, and a work budget ends lookups in hostile hives (cycles, absurd
//! counts) in bounded time. Keys are looked up by path only — there is no recursive walk.
//! Transaction logs (`.LOG1`/`.LOG2`) are not replayed: a dirty hive is reported by [`Hive::dirty`].

use diskfab_storage::bytes::{be_u32, le_u16, le_u32, le_u64};

/// Largest hive read (real SOFTWARE hives are tens to a few hundred MiB).
pub const MAX_HIVE_BYTES: u64 = 512 << 20;
/// Most subkeys or values listed for one key.
const MAX_LIST: usize = 100_000;
/// Cells a single [`Hive`] may visit before giving up (bounded time on hostile hives).
const WORK_BUDGET: u64 = 20_000_000;

const BASE: usize = 4096;

/// A value's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// REG_SZ / REG_EXPAND_SZ / REG_LINK as text.
    Str(String),
    /// REG_MULTI_SZ.
    Multi(Vec<String>),
    /// REG_DWORD (also big-endian ones) and REG_QWORD.
    Int(u64),
    /// Anything else (REG_BINARY…), raw.
    Bytes(Vec<u8>),
}

impl Value {
    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as a number (also a decimal string).
    pub fn as_int(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// An opened hive: the whole file in memory.
pub struct Hive {
    data: Vec<u8>,
    root: u32,
    work: std::cell::Cell<u64>,
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

impl Hive {
    /// Checks the base block and the hive bins' extent.
    pub fn new(data: Vec<u8>) -> Result<Hive, String> {
        if data.get(..4) != Some(b"regf") {
            return Err("not a registry hive (no regf signature)".into());
        }
        let root = le_u32(&data, 36).ok().ok_or("truncated base block")?;
        if data.len() < BASE + 32 || data.get(BASE..BASE + 4) != Some(b"hbin") {
            return Err("no hive bins".into());
        }
        let h = Hive {
            data,
            root,
            work: std::cell::Cell::new(0),
        };
        h.key_cell(root).ok_or("root key cell is invalid")?;
        Ok(h)
    }

    /// The primary and secondary sequence numbers differ: changes are still in the logs.
    pub fn dirty(&self) -> bool {
        le_u32(&self.data, 4).ok() != le_u32(&self.data, 8).ok()
    }

    /// Whether the work budget is spent (the hive is hostile or absurdly large).
    pub fn exhausted(&self) -> bool {
        self.work.get() >= WORK_BUDGET
    }

    /// The data of the cell at hive offset `off` (size checked against the file).
    fn cell(&self, off: u32) -> Option<&[u8]> {
        let w = self.work.get();
        if w >= WORK_BUDGET {
            return None;
        }
        self.work.set(w + 1);
        let at = BASE.checked_add(off as usize)?;
        let size = (le_u32(&self.data, at).ok()? as i32).unsigned_abs() as usize;
        if size < 8 {
            return None;
        }
        self.data.get(at + 4..at.checked_add(size)?)
    }

    fn key_cell(&self, off: u32) -> Option<&[u8]> {
        self.cell(off)
            .filter(|c| c.get(..2) == Some(b"nk") && c.len() >= 76)
    }

    fn key_name(&self, nk: &[u8]) -> Option<String> {
        let len = le_u16(nk, 72).ok()? as usize;
        let raw = nk.get(76..76 + len)?;
        Some(if le_u16(nk, 2).ok()? & 0x20 != 0 {
            latin1(raw)
        } else {
            utf16(raw)
        })
    }

    /// Offsets of the subkeys of key cell `nk`.
    fn subkey_offsets(&self, nk: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        if le_u32(nk, 20).ok().unwrap_or(0) == 0 {
            return out;
        }
        if let Ok(list) = le_u32(nk, 28) {
            self.list_into(list, 0, &mut out);
        }
        out
    }

    fn list_into(&self, off: u32, depth: u8, out: &mut Vec<u32>) {
        let Some(c) = self.cell(off) else { return };
        let n = le_u16(c, 2).ok().unwrap_or(0) as usize;
        let (stride, nested) = match c.get(..2) {
            Some(b"lf") | Some(b"lh") => (8, false),
            Some(b"li") => (4, false),
            Some(b"ri") if depth == 0 => (4, true),
            _ => return,
        };
        for i in 0..n {
            if out.len() >= MAX_LIST {
                return;
            }
            let Ok(o) = le_u32(c, 4 + i * stride) else {
                return;
            };
            if nested {
                self.list_into(o, depth + 1, out);
            } else {
                out.push(o);
            }
        }
    }

    /// The key at `path` (components separated by `\`, matched case-insensitively).
    pub fn key(&self, path: &str) -> Option<Key<'_>> {
        let mut cur = self.root;
        for comp in path.split('\\').filter(|c| !c.is_empty()) {
            let nk = self.key_cell(cur)?;
            cur = self.subkey_offsets(nk).into_iter().find(|&o| {
                self.key_cell(o)
                    .and_then(|k| self.key_name(k))
                    .is_some_and(|n| n.eq_ignore_ascii_case(comp))
            })?;
        }
        self.key_cell(cur).map(|_| Key {
            hive: self,
            off: cur,
        })
    }
}

/// One key of a [`Hive`].
#[derive(Clone, Copy)]
pub struct Key<'a> {
    hive: &'a Hive,
    off: u32,
}

impl<'a> Key<'a> {
    fn nk(&self) -> &'a [u8] {
        self.hive.key_cell(self.off).unwrap_or(&[])
    }

    /// The key's name.
    pub fn name(&self) -> String {
        self.hive.key_name(self.nk()).unwrap_or_default()
    }

    /// The subkeys (at most 100 000).
    pub fn subkeys(&self) -> Vec<Key<'a>> {
        let hive = self.hive;
        hive.subkey_offsets(self.nk())
            .into_iter()
            .filter(|&o| hive.key_cell(o).is_some())
            .map(|off| Key { hive, off })
            .collect()
    }

    /// The named subkey.
    pub fn subkey(&self, name: &str) -> Option<Key<'a>> {
        self.subkeys()
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// All values as (name, data); unreadable ones are left out.
    pub fn values(&self) -> Vec<(String, Value)> {
        let nk = self.nk();
        let n = (le_u32(nk, 36).ok().unwrap_or(0) as usize).min(MAX_LIST);
        let Some(list) = le_u32(nk, 40).ok().and_then(|o| self.hive.cell(o)) else {
            return Vec::new();
        };
        (0..n)
            .map_while(|i| le_u32(list, i * 4).ok())
            .filter_map(|o| self.value_at(o))
            .collect()
    }

    /// The named value (`""` is the default value).
    pub fn value(&self, name: &str) -> Option<Value> {
        self.values()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn value_at(&self, off: u32) -> Option<(String, Value)> {
        let h = self.hive;
        let vk = h.cell(off).filter(|c| c.get(..2) == Some(b"vk"))?;
        let nlen = le_u16(vk, 2).ok()? as usize;
        let raw_name = vk.get(20..20 + nlen)?;
        let name = if le_u16(vk, 16).ok()? & 1 != 0 {
            latin1(raw_name)
        } else {
            utf16(raw_name)
        };
        let size = le_u32(vk, 4).ok()?;
        let ty = le_u32(vk, 12).ok()?;
        let data: Vec<u8> = if size & 0x8000_0000 != 0 {
            let n = (size & 0x7fff_ffff).min(4) as usize;
            vk.get(8..8 + n)?.to_vec()
        } else {
            let size = size as usize;
            let c = h.cell(le_u32(vk, 8).ok()?)?;
            if c.get(..2) == Some(b"db") && size > 16344 {
                self.big_data(c, size)?
            } else {
                c.get(..size)?.to_vec()
            }
        };
        let trim = |s: String| s.trim_end_matches('\0').to_string();
        let v = match ty {
            1 | 2 | 6 => Value::Str(trim(utf16(&data))),
            7 => Value::Multi(
                utf16(&data)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            4 if data.len() >= 4 => Value::Int(le_u32(&data, 0).ok()? as u64),
            5 if data.len() >= 4 => Value::Int(be_u32(&data, 0).ok()? as u64),
            11 if data.len() >= 8 => Value::Int(le_u64(&data, 0).ok()?),
            _ => Value::Bytes(data),
        };
        Some((name, v))
    }

    /// Data split over `db` segments (at most 16 MiB assembled).
    fn big_data(&self, db: &[u8], size: usize) -> Option<Vec<u8>> {
        if size > 16 << 20 {
            return None;
        }
        let n = le_u16(db, 2).ok()? as usize;
        let list = self.hive.cell(le_u32(db, 4).ok()?)?;
        let mut out = Vec::with_capacity(size);
        for i in 0..n {
            let seg = self.hive.cell(le_u32(list, i * 4).ok()?)?;
            let take = seg.len().min(16344).min(size - out.len());
            out.extend_from_slice(seg.get(..take)?);
            if out.len() >= size {
                break;
            }
        }
        (out.len() == size).then_some(out)
    }
}

/// Fuzzing entry point: a hive, recovered with the transaction log that may follow it (from
/// the next `regf` signature at a 512-byte boundary), through every lookup inspection makes
/// (including the drive letters of `MountedDevices` and the uninstall keys' applications).
/// Returns the number of keys found.
pub fn fuzz_hive(data: &[u8]) -> usize {
    let split = (1..data.len() / 512)
        .map(|i| i * 512)
        .find(|&o| data.get(o..o + 4) == Some(b"regf"))
        .unwrap_or(data.len());
    let (hive, log) = data.split_at(split);
    let (hive, _) = crate::hivelog::recover(hive.to_vec(), &[("LOG1", log)]);
    let Ok(h) = Hive::new(hive) else {
        return 0;
    };
    let _ = h.dirty();
    let mut found = 0;
    for p in [
        "",
        "Select",
        "ControlSet001\\Services",
        "Microsoft\\Windows NT\\CurrentVersion",
    ] {
        if let Some(k) = h.key(p) {
            found += 1;
            let _ = k.values();
            for s in k.subkeys().into_iter().take(64) {
                let _ = (s.name(), s.values());
            }
        }
    }
    let _ = (
        crate::windows::drive_letters(&h),
        crate::windows::applications(&h),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hive whose root key lists itself as its only subkey, with an absurd value count.
    fn cyclic_hive() -> Vec<u8> {
        let mut h = vec![0u8; BASE + 4096];
        h[..4].copy_from_slice(b"regf");
        h[36..40].copy_from_slice(&32u32.to_le_bytes());
        h[BASE..BASE + 4].copy_from_slice(b"hbin");
        h[BASE + 8..BASE + 12].copy_from_slice(&4096u32.to_le_bytes());
        // nk at hive offset 32, size 96.
        let nk = BASE + 32;
        h[nk..nk + 4].copy_from_slice(&(-96i32).to_le_bytes());
        let c = nk + 4;
        h[c..c + 2].copy_from_slice(b"nk");
        h[c + 2..c + 4].copy_from_slice(&0x20u16.to_le_bytes());
        h[c + 20..c + 24].copy_from_slice(&1u32.to_le_bytes());
        h[c + 28..c + 32].copy_from_slice(&128u32.to_le_bytes());
        h[c + 36..c + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        h[c + 40..c + 44].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        h[c + 72..c + 74].copy_from_slice(&1u16.to_le_bytes());
        h[c + 76] = b'A';
        // ri at 128 pointing to itself (nesting refused) and an lf pointing back to the root.
        let ri = BASE + 128;
        h[ri..ri + 4].copy_from_slice(&(-16i32).to_le_bytes());
        h[ri + 4..ri + 6].copy_from_slice(b"ri");
        h[ri + 6..ri + 8].copy_from_slice(&2u16.to_le_bytes());
        h[ri + 8..ri + 12].copy_from_slice(&128u32.to_le_bytes());
        h[ri + 12..ri + 16].copy_from_slice(&160u32.to_le_bytes());
        let lf = BASE + 160;
        h[lf..lf + 4].copy_from_slice(&(-16i32).to_le_bytes());
        h[lf + 4..lf + 6].copy_from_slice(b"lf");
        h[lf + 6..lf + 8].copy_from_slice(&1u16.to_le_bytes());
        h[lf + 8..lf + 12].copy_from_slice(&32u32.to_le_bytes());
        // A cell claiming 2 GiB.
        h[BASE + 200..BASE + 204].copy_from_slice(&i32::MIN.to_le_bytes());
        h
    }

    #[test]
    fn cyclic_and_absurd_hives_are_read_in_bounded_time_without_panicking() {
        let h = Hive::new(cyclic_hive()).unwrap();
        let t0 = std::time::Instant::now();
        // The root is its own subkey: a path of any depth resolves, one step at a time.
        let deep = vec!["A"; 1000].join("\\");
        assert!(h.key(&deep).is_some());
        let root = h.key("").unwrap();
        assert_eq!(root.subkeys().len(), 1);
        assert!(root.values().is_empty(), "value list outside the hive");
        assert!(h.cell(200).is_none(), "a 2 GiB cell in an 8 KiB hive");
        assert!(t0.elapsed().as_secs() < 5);
        for n in [0, 3, 4096, 4100, 4200] {
            let _ = Hive::new(cyclic_hive()[..n].to_vec());
        }
    }

    #[test]
    fn non_hives_are_refused() {
        assert!(Hive::new(b"regf".to_vec()).is_err());
        assert!(Hive::new(vec![0; 9000]).is_err());
        let mut h = cyclic_hive();
        h[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Hive::new(h).is_err(), "root offset outside the file");
    }
}
