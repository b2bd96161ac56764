//! rpm's package database. The sqlite rpmdb (`rpmdb.sqlite`, current Fedora, RHEL 9, SUSE) is
//! copied to a private temporary file and read there; each row of its `Packages` table is an rpm
//! header blob, decoded here with strict bounds. The older Berkeley DB (`Packages`) and ndb
//! (`Packages.db`) formats are detected and reported with a warning.

use crate::packages::Application;
use crate::read;
use diskfab_fs::{path, FileType, Filesystem};
use diskfab_storage::bytes::be_u32;
use std::io::Write;

/// Largest rpmdb.sqlite copied out of a guest (real ones are tens to hundreds of MiB).
pub const MAX_RPMDB_BYTES: u64 = 1 << 30;
/// Longest time spent in sqlite on one database.
const SQLITE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Most packages listed from one database.
const MAX_PACKAGES: usize = 200_000;
/// Largest header blob decoded (rpm itself refuses headers over 256 MiB).
const MAX_HEADER_BYTES: usize = 256 << 20;
/// Most index entries in one header (rpm's own limit is 0xffff).
const MAX_INDEX_ENTRIES: usize = 0xffff;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SUMMARY: u32 = 1004;
const TAG_ARCH: u32 = 1022;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The directories rpm keeps its database in (the second is the newer canonical location).
pub const RPMDB_DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

/// The NUL-terminated string at `off` in the data store.
fn cstr(data: &[u8], off: usize) -> Option<String> {
    let rest = data.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Decodes one rpm header (as stored in the rpmdb, or with the `8e ad e8 01` magic and reserved
/// word of a package file's header section) into an [`Application`]. `None` if the header is
/// malformed or lacks a name or version.
pub fn parse_header(blob: &[u8]) -> Option<Application> {
    let blob = match blob.get(..4) {
        Some([0x8e, 0xad, 0xe8, 0x01]) => blob.get(8..)?,
        _ => blob,
    };
    if blob.len() > MAX_HEADER_BYTES {
        return None;
    }
    let il = be_u32(blob, 0).ok()? as usize;
    let dl = be_u32(blob, 4).ok()? as usize;
    if il == 0 || il > MAX_INDEX_ENTRIES || dl > MAX_HEADER_BYTES {
        return None;
    }
    let store = 8usize.checked_add(il.checked_mul(16)?)?;
    let data = blob.get(store..store.checked_add(dl)?)?;
    let (mut name, mut version, mut release, mut arch, mut summary, mut epoch) =
        (None, None, None, String::new(), String::new(), 0u32);
    for i in 0..il {
        let e = 8 + i * 16;
        let (tag, ty, off, count) = (
            be_u32(blob, e).ok()?,
            be_u32(blob, e + 4).ok()?,
            be_u32(blob, e + 8).ok()? as usize,
            be_u32(blob, e + 12).ok()?,
        );
        if count == 0 || off >= data.len() {
            continue;
        }
        let string = || match ty {
            TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING => {
                cstr(data, off).filter(|s| s.len() <= 4096)
            }
            _ => None,
        };
        match tag {
            TAG_NAME => name = string(),
            TAG_VERSION => version = string(),
            TAG_RELEASE => release = string(),
            TAG_ARCH => arch = string().unwrap_or_default(),
            TAG_SUMMARY => summary = string().unwrap_or_default(),
            TAG_EPOCH if ty == TYPE_INT32 && off % 4 == 0 => epoch = be_u32(data, off).ok()?,
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty())?;
    Some(Application {
        name,
        epoch,
        version: version.filter(|v| !v.is_empty())?,
        release: release.unwrap_or_default(),
        arch,
        summary,
    })
}

/// Copies guest file `p` (at most `limit` bytes) into `dst` in chunks. `Ok(false)` if absent.
fn copy_out(
    fs: &mut dyn Filesystem,
    p: &str,
    limit: u64,
    dst: &std::path::Path,
) -> Result<bool, String> {
    let Ok(ino) = path::resolve(fs, p.as_bytes(), true) else {
        return Ok(false);
    };
    let m = fs.getattr(ino).map_err(|e| format!("{p}: {e}"))?;
    if m.file_type != FileType::Regular {
        return Ok(false);
    }
    if m.size > limit {
        return Err(format!(
            "{p}: {} bytes is larger than the {limit}-byte limit; skipped",
            m.size
        ));
    }
    let mut out = std::fs::File::create(dst).map_err(|e| format!("temporary copy of {p}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < m.size {
        let want = buf.len().min((m.size - off) as usize);
        let n = fs
            .read(ino, off, &mut buf[..want])
            .map_err(|e| format!("{p}: {e}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("temporary copy of {p}: {e}"))?;
        off += n as u64;
    }
    Ok(true)
}

/// Packages from the rows of an sqlite rpmdb file on the host (a private copy).
pub fn read_sqlite(db: &std::path::Path, warnings: &mut Vec<String>) -> Vec<Application> {
    let mut out = Vec::new();
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match rusqlite::Connection::open_with_flags(db, flags) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("rpmdb.sqlite: {e}"));
            return out;
        }
    };
    // A hostile file may make `Packages` a view computing forever, or return huge blobs:
    // only a real table is read, within a time limit and a value-size limit.
    let deadline = std::time::Instant::now() + SQLITE_TIME_LIMIT;
    conn.progress_handler(10_000, Some(move || std::time::Instant::now() > deadline));
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        MAX_HEADER_BYTES as i32,
    );
    let is_table = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |r| r.get::<_, String>(0),
        )
        .is_ok_and(|t| t == "table");
    if !is_table {
        warnings.push("rpmdb.sqlite: no Packages table".into());
        return out;
    }
    let rows = conn
        .prepare("SELECT blob FROM Packages")
        .and_then(|mut st| {
            let mut skipped = 0usize;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if out.len() >= MAX_PACKAGES {
                    warnings.push(format!(
                        "rpmdb.sqlite: more than {MAX_PACKAGES} packages; the rest are not listed"
                    ));
                    break;
                }
                let blob = r.get_ref(0)?.as_blob_or_null().ok().flatten();
                match blob.and_then(parse_header) {
                    Some(a) => out.push(a),
                    None => skipped += 1,
                }
            }
            Ok(skipped)
        });
    match rows {
        Ok(0) => {}
        Ok(n) => warnings.push(format!(
            "rpmdb.sqlite: {n} malformed package header(s) skipped"
        )),
        Err(e) => warnings.push(format!("rpmdb.sqlite: {e}")),
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    out
}

/// Installed rpm packages of the guest, from the first rpmdb found.
pub fn packages(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Vec<Application> {
    for dir in RPMDB_DIRS {
        let db = format!("{dir}/rpmdb.sqlite");
        if !read::exists(fs, &db) {
            continue;
        }
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!("{db}: no temporary directory: {e}"));
                return Vec::new();
            }
        };
        let local = tmp.path().join("rpmdb.sqlite");
        match copy_out(fs, &db, MAX_RPMDB_BYTES, &local) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(w) => {
                warnings.push(w);
                return Vec::new();
            }
        }
        // Transactions not yet checkpointed live in the write-ahead log: bring it along.
        let wal = format!("{db}-wal");
        if let Err(w) = copy_out(
            fs,
            &wal,
            MAX_RPMDB_BYTES,
            &tmp.path().join("rpmdb.sqlite-wal"),
        ) {
            warnings.push(w);
        }
        return read_sqlite(&local, warnings);
    }
    for dir in RPMDB_DIRS {
        for (f, what) in [("Packages", "Berkeley DB"), ("Packages.db", "ndb")] {
            if read::exists(fs, &format!("{dir}/{f}")) {
                warnings.push(format!(
                    "{dir}/{f}: {what} rpm database detected; its packages are not listed"
                ));
                return Vec::new();
            }
        }
    }
    warnings.push("rpm package database not found".into());
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a header blob from (tag, type, payload) entries.
    fn header(entries: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, ty, payload) in entries {
            if *ty == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *ty, data.len() as u32, 1] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(payload);
        }
        let mut h = (entries.len() as u32).to_be_bytes().to_vec();
        h.extend_from_slice(&(data.len() as u32).to_be_bytes());
        h.extend(index);
        h.extend(data);
        h
    }

    #[test]
    fn header_blob_decodes_name_epoch_version_release_arch_summary() {
        let h = header(&[
            (TAG_NAME, TYPE_STRING, b"bash\0".to_vec()),
            (TAG_VERSION, TYPE_STRING, b"5.2.26\0".to_vec()),
            (TAG_RELEASE, TYPE_STRING, b"3.fc40\0".to_vec()),
            (
                TAG_SUMMARY,
                TYPE_I18NSTRING,
                b"The GNU Bourne Again shell\0".to_vec(),
            ),
            (TAG_EPOCH, TYPE_INT32, 2u32.to_be_bytes().to_vec()),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0".to_vec()),
        ]);
        let a = parse_header(&h).unwrap();
        assert_eq!(
            (
                a.name.as_str(),
                a.epoch,
                a.version.as_str(),
                a.release.as_str(),
                a.arch.as_str(),
                a.summary.as_str()
            ),
            (
                "bash",
                2,
                "5.2.26",
                "3.fc40",
                "x86_64",
                "The GNU Bourne Again shell"
            )
        );
        let mut with_magic = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
        with_magic.extend_from_slice(&h);
        assert_eq!(parse_header(&with_magic), Some(a));
    }

    #[test]
    fn an_rpmdb_whose_packages_is_a_view_is_not_queried() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rpmdb.sqlite");
        let c = rusqlite::Connection::open(&f).unwrap();
        c.execute_batch(
            // A view is refused whatever it computes (this one ends; a hostile one might not).
            "CREATE VIEW Packages AS SELECT zeroblob(16) AS blob;",
        )
        .unwrap();
        drop(c);
        let mut w = Vec::new();
        let t0 = std::time::Instant::now();
        assert!(read_sqlite(&f, &mut w).is_empty());
        assert!(t0.elapsed().as_secs() < 5);
        assert_eq!(w, ["rpmdb.sqlite: no Packages table"]);
    }

    #[test]
    fn malformed_header_blobs_are_refused_without_panicking() {
        let good = header(&[
            (TAG_NAME, TYPE_STRING, b"x\0".to_vec()),
            (TAG_VERSION, TYPE_STRING, b"1\0".to_vec()),
        ]);
        // Every truncation is refused (the data store no longer fits).
        for n in 0..good.len() {
            assert!(parse_header(&good[..n]).is_none(), "truncated at {n}");
        }
        // Absurd counts and lengths.
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).is_none());
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).is_none());
        // An offset past the data store and an unterminated string lose the field, not the run.
        let mut bad = good.clone();
        bad[8 + 8..8 + 12].copy_from_slice(&1000u32.to_be_bytes());
        assert!(parse_header(&bad).is_none(), "name unreadable → no package");
        let unterminated = header(&[
            (TAG_VERSION, TYPE_STRING, b"1\0".to_vec()),
            (TAG_NAME, TYPE_STRING, b"xyz".to_vec()),
        ]);
        assert!(parse_header(&unterminated).is_none());
        // A name stored as an integer is not a name.
        let wrong_type = header(&[
            (TAG_NAME, TYPE_INT32, 7u32.to_be_bytes().to_vec()),
            (TAG_VERSION, TYPE_STRING, b"1\0".to_vec()),
        ]);
        assert!(parse_header(&wrong_type).is_none());
    }
}
