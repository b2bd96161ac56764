//! A guest tree as a sorted map of paths to node metadata (no contents), read through the
//! [`Filesystem`] trait, and content hashing. Paths are raw bytes shown as text: bytes that are
//! not UTF-8 are written `\xNN` (and a backslash `\\`), so every name round-trips.

use diskfab_fs::tree::{self as walker, Step, Visit, Visitor};
use diskfab_fs::{FileType, Filesystem, Ino, Timespec};
use diskfab_storage::{Error, Result};
use std::collections::BTreeMap;

/// Deepest directory nesting walked (the shared walker's limit).
pub const MAX_DEPTH: usize = walker::MAX_DEPTH;
/// Most entries scanned in one tree.
pub const MAX_ENTRIES: usize = 50_000_000;

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Inode.
    pub ino: Ino,
    /// Type.
    pub kind: FileType,
    /// Permission bits.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size.
    pub size: u64,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: Timespec,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Device numbers.
    pub rdev: (u32, u32),
    /// Extended attributes (when asked for).
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Path → node, sorted (parents before children).
pub type Tree = BTreeMap<String, Node>;

/// Shows raw name bytes as text, escaping what is not UTF-8 (and backslashes).
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The raw bytes of a path shown by [`show`].
pub fn unshow(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let hex = s
                        .get(i + 2..i + 4)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| Error::Invalid(format!("bad escape in path {s:?}")))?;
                    out.push(hex);
                    i += 4;
                }
                _ => return Err(Error::Invalid(format!("bad escape in path {s:?}"))),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Reads the whole tree of `fs` (metadata only).
pub fn scan(fs: &mut dyn Filesystem, xattrs: bool) -> Result<Tree> {
    let mut t = Tree::new();
    let root = fs.root();
    let m = node(fs, root, xattrs)?;
    t.insert("/".into(), m);
    walker::walk(fs, root, b"", &mut Scan { t: &mut t, xattrs })?;
    Ok(t)
}

struct Scan<'a> {
    t: &'a mut Tree,
    xattrs: bool,
}

impl Visitor for Scan<'_> {
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        if self.t.len() >= MAX_ENTRIES {
            return Err(Error::Unsupported(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        let n = node(fs, v.entry.ino, self.xattrs)?;
        let step = if n.kind == FileType::Directory {
            Step::Into
        } else {
            Step::Over
        };
        self.t.insert(show(&v.path), n);
        Ok(step)
    }
}

/// The node `ino` (with its xattrs when asked).
pub fn node(fs: &mut dyn Filesystem, ino: Ino, xattrs: bool) -> Result<Node> {
    let m = fs.getattr(ino)?;
    let target = if m.file_type == FileType::Symlink {
        Some(fs.read_link(ino)?)
    } else {
        None
    };
    let xattrs = if xattrs {
        let mut x = fs.list_xattrs(ino)?;
        x.sort();
        Some(x)
    } else {
        None
    };
    Ok(Node {
        ino,
        kind: m.file_type,
        perm: m.perm,
        uid: m.uid,
        gid: m.gid,
        size: m.size,
        nlink: m.nlink,
        mtime: m.mtime,
        target,
        rdev: m.rdev,
        xattrs,
    })
}

/// BLAKE3 of a regular file's contents.
pub fn hash_file(fs: &mut dyn Filesystem, ino: Ino) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fs.read(ino, off, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(*h.finalize().as_bytes())
}

/// A regular file's whole contents, up to `max` bytes (`None` when larger).
pub fn read_small(
    fs: &mut dyn Filesystem,
    ino: Ino,
    size: u64,
    max: u64,
) -> Result<Option<Vec<u8>>> {
    if size > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; size as usize];
    let mut off = 0;
    while off < buf.len() {
        let n = fs.read(ino, off as u64, &mut buf[off..])?;
        if n == 0 {
            buf.truncate(off);
            break;
        }
        off += n;
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_paths_round_trip_any_bytes() {
        for raw in [
            &b"/etc/motd"[..],
            b"/a\\b",
            b"/bad\xff\xfe/x",
            "/é".as_bytes(),
        ] {
            assert_eq!(unshow(&show(raw)).unwrap(), raw);
        }
        assert!(unshow("\\q").is_err());
    }
}
