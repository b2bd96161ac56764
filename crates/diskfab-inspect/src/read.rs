//! Bounded reads of guest files through the shared resolver (symlinks stay inside the guest).

use diskfab_fs::{path, FileType, Filesystem};

/// Reads a regular file of at most `limit` bytes; `Err(reason)` for warnings, `Ok(None)` if absent.
pub fn file(fs: &mut dyn Filesystem, p: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let Ok(ino) = path::resolve(fs, p.as_bytes(), true) else {
        return Ok(None);
    };
    let m = fs.getattr(ino).map_err(|e| format!("{p}: {e}"))?;
    if m.file_type != FileType::Regular {
        return Ok(None);
    }
    if m.size > limit {
        return Err(format!(
            "{p}: {} bytes is larger than the {limit}-byte limit; skipped",
            m.size
        ));
    }
    let mut buf = vec![0u8; m.size as usize];
    let mut off = 0;
    while off < buf.len() {
        match fs.read(ino, off as u64, &mut buf[off..]) {
            Ok(0) => break,
            Ok(n) => off += n,
            Err(e) => return Err(format!("{p}: {e}")),
        }
    }
    buf.truncate(off);
    Ok(Some(buf))
}

/// A small text file (≤ 1 MiB) as a lossy string; absent or unreadable → None.
pub fn text(fs: &mut dyn Filesystem, p: &str, warnings: &mut Vec<String>) -> Option<String> {
    match file(fs, p, 1 << 20) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(w) => {
            warnings.push(w);
            None
        }
    }
}

/// Whether `p` exists (any type, symlinks followed inside the guest).
pub fn exists(fs: &mut dyn Filesystem, p: &str) -> bool {
    path::resolve(fs, p.as_bytes(), true).is_ok()
}

/// Names in directory `p` (sorted), empty if absent.
pub fn list(fs: &mut dyn Filesystem, p: &str) -> Vec<String> {
    let Ok(ino) = path::resolve(fs, p.as_bytes(), true) else {
        return Vec::new();
    };
    let mut v: Vec<String> = fs
        .read_dir(ino)
        .map(|es| {
            es.into_iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.truncate(100_000);
    v
}

/// `p` with each component matched case-insensitively (Windows names on a case-sensitive
/// filesystem): the path as it is spelled in the guest, if it exists.
pub fn find_ci(fs: &mut dyn Filesystem, p: &str) -> Option<String> {
    let mut cur = String::new();
    for comp in p.split('/').filter(|c| !c.is_empty()) {
        let dir = if cur.is_empty() { "/" } else { cur.as_str() };
        let name = if exists(fs, &format!("{cur}/{comp}")) {
            comp.to_string()
        } else {
            list(fs, dir)
                .into_iter()
                .find(|n| n.eq_ignore_ascii_case(comp))?
        };
        cur = format!("{cur}/{name}");
    }
    Some(cur)
}

/// The target of symlink `p`, if it is one.
pub fn link(fs: &mut dyn Filesystem, p: &str) -> Option<String> {
    let ino = path::resolve(fs, p.as_bytes(), false).ok()?;
    let t = fs.read_link(ino).ok()?;
    Some(String::from_utf8_lossy(&t).into_owned())
}

/// `KEY=value` lines (shell-style quotes removed), e.g. os-release.
pub fn key_values(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            Some((
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            ))
        })
        .collect()
}

/// INI sections: (section, key, value) triples.
pub fn ini(s: &str) -> Vec<(String, String, String)> {
    let mut sec = String::new();
    let mut out = Vec::new();
    for l in s.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if let Some(n) = l.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            sec = n.to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            out.push((sec.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}
