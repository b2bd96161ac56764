//! `delta create`: the changes from tree A to tree B as a delta file. Removals come first,
//! deepest paths first; then additions and modifications, parents before children. Every
//! modified or removed path carries its pre-image (type, content hash, target, mode, owner).

use crate::diff::{kind_name, Change};
use crate::format::{hex, Entry, Pre, Writer};
use crate::tree::{hash_file, Node, Tree};
use diskfab_fs::{FileType, Filesystem, Ino};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

/// What `delta create` wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateReport {
    /// Records (without begin/end).
    pub records: u64,
    /// Paths removed / put / meta-only.
    pub removed: u64,
    /// Put.
    pub put: u64,
    /// Metadata only.
    pub meta: u64,
    /// Content bytes carried.
    pub data_bytes: u64,
    /// Changes skipped by `--exclude`.
    pub excluded: u64,
}

/// The pre-image of a node.
pub fn pre_of(fs: &mut dyn Filesystem, n: &Node) -> Result<Pre> {
    Ok(Pre {
        kind: kind_name(n.kind).into(),
        hash: if n.kind == FileType::Regular {
            Some(hex(&hash_file(fs, n.ino)?))
        } else {
            None
        },
        target: n.target.as_deref().map(crate::tree::show),
        perm: n.perm,
        uid: n.uid,
        gid: n.gid,
    })
}

fn attrs(e: &mut Entry, n: &Node) {
    e.perm = Some(n.perm);
    e.uid = Some(n.uid);
    e.gid = Some(n.gid);
    e.mtime = Some((n.mtime.sec, n.mtime.nsec));
    e.xattrs = n
        .xattrs
        .as_ref()
        .map(|x| x.iter().map(|(k, v)| (hex(k), hex(v))).collect());
}

/// A reader over a regular file of a filesystem.
struct FileReader<'a> {
    fs: &'a mut dyn Filesystem,
    ino: Ino,
    off: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .fs
            .read(self.ino, self.off, buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.off += n as u64;
        Ok(n)
    }
}

/// Writes the delta of `changes` (from [`crate::diff::diff`] of A and B, scanned with xattrs)
/// to `w`. `skip(path)` excludes a change.
#[allow(clippy::too_many_arguments)]
pub fn create<W: Write>(
    fa: &mut dyn Filesystem,
    ta: &Tree,
    fb: &mut dyn Filesystem,
    tb: &Tree,
    changes: &[Change],
    w: W,
    source: &str,
    skip: &dyn Fn(&str) -> bool,
) -> Result<(W, CreateReport)> {
    let mut rep = CreateReport::default();
    let mut out = Writer::new(w, source)?;
    let kept: Vec<&Change> = changes
        .iter()
        .filter(|c| {
            let s = skip(&c.path);
            rep.excluded += u64::from(s);
            !s
        })
        .collect();
    // Removals (and the old side of type changes), deepest first.
    for c in kept.iter().rev() {
        if c.status == "removed" || c.status == "type-changed" {
            let a = ta
                .get(&c.path)
                .ok_or_else(|| Error::Failed(format!("{} vanished", c.path)))?;
            let e = Entry {
                op: "remove".into(),
                path: c.path.clone(),
                pre: Some(pre_of(fa, a)?),
                ..Default::default()
            };
            out.record(&e, 0, &mut std::io::empty())?;
            rep.removed += 1;
        }
    }
    // Hard-link groups in B, to emit links instead of second copies.
    let mut group: BTreeMap<Ino, BTreeSet<&str>> = BTreeMap::new();
    for (p, n) in tb {
        if n.kind != FileType::Directory && n.nlink > 1 {
            group.entry(n.ino).or_default().insert(p);
        }
    }
    let changed: BTreeSet<&str> = kept.iter().map(|c| c.path.as_str()).collect();
    let mut emitted: BTreeMap<Ino, String> = BTreeMap::new();
    for c in &kept {
        if c.status == "removed" {
            continue;
        }
        let b = tb
            .get(&c.path)
            .ok_or_else(|| Error::Failed(format!("{} vanished", c.path)))?;
        let content = c.status != "modified"
            || c.details.iter().any(|d| {
                d == "content"
                    || d.starts_with("target")
                    || d.starts_with("device")
                    || d.starts_with("hard links")
            });
        let mut e = Entry {
            op: if content { "put" } else { "meta" }.into(),
            path: c.path.clone(),
            pre: match (c.status, ta.get(&c.path)) {
                ("modified", Some(a)) => Some(pre_of(fa, a)?),
                _ => None,
            },
            ..Default::default()
        };
        attrs(&mut e, b);
        if !content {
            out.record(&e, 0, &mut std::io::empty())?;
            rep.meta += 1;
            continue;
        }
        e.kind = Some(kind_name(b.kind).into());
        e.target = b.target.as_deref().map(crate::tree::show);
        if matches!(b.kind, FileType::CharDevice | FileType::BlockDevice) {
            e.rdev = Some(b.rdev);
        }
        // A hard link to a path already in the delta, or to one that does not change.
        let partner = emitted.get(&b.ino).cloned().or_else(|| {
            group.get(&b.ino).and_then(|g| {
                g.iter()
                    .find(|p| **p != c.path && !changed.contains(*p) && ta.contains_key(**p))
                    .map(|p| p.to_string())
            })
        });
        let mut len = 0;
        if let Some(p) = partner.filter(|_| b.kind != FileType::Directory) {
            e.link = Some(p);
        } else if b.kind == FileType::Regular {
            len = b.size;
        }
        let mut reader = FileReader {
            fs: &mut *fb,
            ino: b.ino,
            off: 0,
        };
        out.record(&e, len, &mut reader)?;
        emitted.entry(b.ino).or_insert_with(|| c.path.clone());
        rep.put += 1;
        rep.data_bytes += len;
    }
    rep.records = rep.removed + rep.put + rep.meta;
    Ok((out.finish()?, rep))
}
