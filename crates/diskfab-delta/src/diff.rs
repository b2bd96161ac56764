//! File-level difference of two guest trees: added, removed, modified and type-changed
//! entries with what changed (mode, owner, size, content, symlink target, device numbers,
//! hard links; xattrs and times on request; a unified diff of small text files on request).

use crate::tree::{hash_file, read_small, Node, Tree};
use diskfab_fs::{FileType, Filesystem, Ino};
use diskfab_storage::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Largest file shown as a text diff.
pub const MAX_TEXT: u64 = 64 << 10;

/// What to compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Compare extended attributes (both trees must have been scanned with them).
    pub xattrs: bool,
    /// Compare modification times.
    pub times: bool,
    /// Add a unified diff of small text files.
    pub content: bool,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Path.
    pub path: String,
    /// `added`, `removed`, `modified` or `type-changed`.
    pub status: &'static str,
    /// Node type (in B; in A for removals).
    pub kind: &'static str,
    /// What differs, e.g. `mode 644→600`, `content`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Unified diff of a small text file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

/// Name of a node type.
pub fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::Regular => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

/// Decides whether two same-sized regular files need their contents compared (the clone fast
/// path answers "no" for files untouched above the common base in both images).
pub type HashFilter<'a> = &'a dyn Fn(&str, &Node, &Node) -> bool;

/// Paths sharing an inode (hard links), per inode.
fn link_groups(t: &Tree) -> BTreeMap<Ino, BTreeSet<&str>> {
    let mut g: BTreeMap<Ino, BTreeSet<&str>> = BTreeMap::new();
    for (p, n) in t {
        if n.kind != FileType::Directory && n.nlink > 1 {
            g.entry(n.ino).or_default().insert(p.as_str());
        }
    }
    g
}

/// Compares two trees.
pub fn diff(
    fa: &mut dyn Filesystem,
    ta: &Tree,
    fb: &mut dyn Filesystem,
    tb: &Tree,
    opts: DiffOptions,
    filter: Option<HashFilter>,
) -> Result<Vec<Change>> {
    let (ga, gb) = (link_groups(ta), link_groups(tb));
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
    for p in keys {
        let change = match (ta.get(p), tb.get(p)) {
            (None, Some(b)) => Some(Change {
                path: p.clone(),
                status: "added",
                kind: kind_name(b.kind),
                details: vec![],
                text_diff: None,
            }),
            (Some(a), None) => Some(Change {
                path: p.clone(),
                status: "removed",
                kind: kind_name(a.kind),
                details: vec![],
                text_diff: None,
            }),
            (Some(a), Some(b)) if a.kind != b.kind => Some(Change {
                path: p.clone(),
                status: "type-changed",
                kind: kind_name(b.kind),
                details: vec![format!("type {}→{}", kind_name(a.kind), kind_name(b.kind))],
                text_diff: None,
            }),
            (Some(a), Some(b)) => {
                let mut d = details(a, b, opts);
                let links = |g: &BTreeMap<Ino, BTreeSet<&str>>, n: &Node| -> Vec<String> {
                    g.get(&n.ino)
                        .map(|s| {
                            s.iter()
                                .filter(|x| **x != p.as_str())
                                .map(|x| x.to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (la, lb) = (links(&ga, a), links(&gb, b));
                if la != lb {
                    d.push(format!("hard links {la:?}→{lb:?}"));
                }
                let mut text_diff = None;
                if a.kind == FileType::Regular {
                    let differs = if a.size != b.size {
                        true
                    } else if filter.is_some_and(|f| !f(p, a, b)) {
                        false
                    } else {
                        hash_file(fa, a.ino)? != hash_file(fb, b.ino)?
                    };
                    if differs {
                        d.push("content".into());
                        if opts.content {
                            text_diff = text(fa, a, fb, b, p)?;
                        }
                    }
                }
                (!d.is_empty()).then(|| Change {
                    path: p.clone(),
                    status: "modified",
                    kind: kind_name(b.kind),
                    details: d,
                    text_diff,
                })
            }
            (None, None) => None,
        };
        out.extend(change);
    }
    Ok(out)
}

fn details(a: &Node, b: &Node, opts: DiffOptions) -> Vec<String> {
    let mut d = Vec::new();
    if a.perm != b.perm {
        d.push(format!("mode {:o}→{:o}", a.perm, b.perm));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        d.push(format!("owner {}:{}→{}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.kind == FileType::Regular && a.size != b.size {
        d.push(format!("size {}→{}", a.size, b.size));
    }
    if a.target != b.target {
        let s = |t: &Option<Vec<u8>>| t.as_deref().map(crate::tree::show).unwrap_or_default();
        d.push(format!("target {}→{}", s(&a.target), s(&b.target)));
    }
    if a.rdev != b.rdev {
        d.push(format!(
            "device {}:{}→{}:{}",
            a.rdev.0, a.rdev.1, b.rdev.0, b.rdev.1
        ));
    }
    if opts.xattrs && a.xattrs != b.xattrs {
        let names = |x: &Option<Vec<(Vec<u8>, Vec<u8>)>>| -> BTreeMap<String, Vec<u8>> {
            x.iter()
                .flatten()
                .map(|(k, v)| (crate::tree::show(k), v.clone()))
                .collect()
        };
        let (xa, xb) = (names(&a.xattrs), names(&b.xattrs));
        let changed: Vec<String> = xa
            .keys()
            .chain(xb.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| xa.get(*k) != xb.get(*k))
            .cloned()
            .collect();
        d.push(format!("xattrs {}", changed.join(",")));
    }
    if opts.times && a.mtime != b.mtime {
        d.push(format!(
            "mtime {}.{:09}→{}.{:09}",
            a.mtime.sec, a.mtime.nsec, b.mtime.sec, b.mtime.nsec
        ));
    }
    d
}

fn text(
    fa: &mut dyn Filesystem,
    a: &Node,
    fb: &mut dyn Filesystem,
    b: &Node,
    p: &str,
) -> Result<Option<String>> {
    let (Some(x), Some(y)) = (
        read_small(fa, a.ino, a.size, MAX_TEXT)?,
        read_small(fb, b.ino, b.size, MAX_TEXT)?,
    ) else {
        return Ok(None);
    };
    let (Ok(x), Ok(y)) = (std::str::from_utf8(&x), std::str::from_utf8(&y)) else {
        return Ok(None);
    };
    Ok(Some(
        similar::TextDiff::from_lines(x, y)
            .unified_diff()
            .header(&format!("a{p}"), &format!("b{p}"))
            .to_string(),
    ))
}
