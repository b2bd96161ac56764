//! User and group names resolved through the image's own /etc/passwd and /etc/group.

use diskfab_fs::{path, Filesystem};
use diskfab_storage::{Error, Result};

/// Reads a whole small file from the filesystem (bounded to `limit` bytes).
pub fn read_small(fs: &mut dyn Filesystem, p: &str, limit: u64) -> Result<Vec<u8>> {
    let ino = path::resolve(fs, p.as_bytes(), true)?;
    let size = fs.getattr(ino)?.size;
    if size > limit {
        return Err(Error::Failed(format!("{p}: larger than {limit} bytes")));
    }
    let mut buf = vec![0u8; size as usize];
    let mut off = 0usize;
    while off < buf.len() {
        let n = fs.read(ino, off as u64, &mut buf[off..])?;
        if n == 0 {
            break;
        }
        off += n;
    }
    buf.truncate(off);
    Ok(buf)
}

/// Looks up `name` in a colon-separated database (passwd or group) and returns field 3 (the id).
fn lookup_id(db: &[u8], name: &str) -> Option<u32> {
    db.split(|&b| b == b'\n').find_map(|line| {
        let mut f = line.split(|&b| b == b':');
        let n = f.next()?;
        if n != name.as_bytes() {
            return None;
        }
        let id = f.nth(1)?;
        std::str::from_utf8(id).ok()?.parse().ok()
    })
}

/// Resolves a numeric id or a name from the image's `/etc/passwd` (users) or `/etc/group`.
pub fn resolve_id(fs: &mut dyn Filesystem, spec: &str, group: bool) -> Result<u32> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    let db_path = if group { "/etc/group" } else { "/etc/passwd" };
    let db = read_small(fs, db_path, 16 << 20)
        .map_err(|e| e.context(format!("cannot resolve {spec:?}")))?;
    lookup_id(&db, spec).ok_or_else(|| {
        Error::NotFound(format!(
            "{} {spec:?} is not in the image's {db_path}",
            if group { "group" } else { "user" }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::lookup_id;

    #[test]
    fn finds_ids_by_name_and_ignores_garbage_lines() {
        let db = b"root:x:0:0:root:/root:/bin/bash\n\xff\xfe:::\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n";
        assert_eq!(lookup_id(db, "sshd"), Some(101));
        assert_eq!(lookup_id(db, "root"), Some(0));
        assert_eq!(lookup_id(db, "nobody"), None);
    }
}
