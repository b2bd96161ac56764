//! Directory B+trees: full listings and case-insensitive lookups, with a depth limit and
//! every index record visited at most once (a cycle is a bad image, never a hang).

use crate::index::{self, Entry};
use crate::names::{FileName, UpCase};
use crate::record::ty;
use crate::volume::{File, Stream, Volume};
use diskfab_storage::{limits, Error, Result};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Deepest B+tree accepted (real ones have a handful of levels).
const MAX_DEPTH: usize = 32;
/// Name of the file-name index.
pub const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

/// A directory's index: its root entries and the allocation stream.
struct Tree {
    root: Vec<Entry>,
    alloc: Option<Stream>,
    size: u32,
    vcn_bytes: u64,
}

fn tree(v: &Volume, f: &File) -> Result<Tree> {
    let Some(root) = v.stream(f, ty::INDEX_ROOT, &I30)? else {
        return Err(Error::bad(format!(
            "NTFS: directory record {} has no index",
            f.rec
        )));
    };
    let root = index::parse_root(root.resident.as_deref().unwrap_or_default())?;
    let size = root.index_size;
    if !(256..=65536).contains(&size) || !size.is_power_of_two() {
        return Err(Error::bad(format!("NTFS index: records of {size} bytes")));
    }
    let cs = v.boot.cluster_size;
    Ok(Tree {
        root: root.entries,
        alloc: v.stream(f, ty::INDEX_ALLOCATION, &I30)?,
        size,
        vcn_bytes: u64::from(if size >= cs { cs } else { 512 }),
    })
}

/// Reads the index node at `vcn`.
fn node(v: &mut Volume, t: &Tree, vcn: u64) -> Result<Vec<Entry>> {
    let Some(alloc) = &t.alloc else {
        return Err(Error::bad(
            "NTFS index: child node without $INDEX_ALLOCATION",
        ));
    };
    let off = vcn
        .checked_mul(t.vcn_bytes)
        .filter(|o| o.saturating_add(u64::from(t.size)) <= alloc.size)
        .ok_or_else(|| Error::bad(format!("NTFS index: child VCN {vcn} outside the index")))?;
    let mut buf = vec![0u8; t.size as usize];
    v.read(usize::MAX, alloc, off, &mut buf)?;
    index::parse_indx(&mut buf, vcn)
}

/// Every (name, file reference) of a directory, in index order.
pub fn list(v: &mut Volume, f: &File) -> Result<Vec<(FileName, u64)>> {
    let t = tree(v, f)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Depth-first, in order: (entries of a node, next index, depth).
    let mut stack: Vec<(Vec<Entry>, usize, usize)> = vec![(t.root.clone(), 0, 0)];
    while let Some((entries, i, depth)) = stack.pop() {
        let Some(e) = entries.get(i).cloned() else {
            continue;
        };
        stack.push((entries, i + 1, depth));
        // Visit the entry's child first (smaller keys), then the entry.
        if let Some(k) = e.key.clone() {
            out.push((k, e.file_ref));
            limits::check_elems::<(FileName, u64)>(out.len() as u64, "an NTFS directory")?;
        }
        if let Some(vcn) = e.subnode {
            if depth + 1 > MAX_DEPTH {
                return Err(Error::bad("NTFS index: B+tree deeper than 32 levels"));
            }
            if !seen.insert(vcn) {
                return Err(Error::bad(format!(
                    "NTFS index: node VCN {vcn} reached twice"
                )));
            }
            let child = node(v, &t, vcn)?;
            stack.push((child, 0, depth + 1));
        }
    }
    Ok(out)
}

/// Looks up `name` (upper-cased collation); an exact match wins over a case-insensitive one.
pub fn lookup(v: &mut Volume, f: &File, name: &[u16]) -> Result<Option<(FileName, u64)>> {
    let t = tree(v, f)?;
    let up: UpCase = v.upcase.clone();
    let mut entries = t.root.clone();
    let mut seen = HashSet::new();
    let mut fallback = None;
    for _ in 0..=MAX_DEPTH {
        let mut down = None;
        for e in &entries {
            let Some(k) = &e.key else {
                down = e.subnode;
                break;
            };
            match up.cmp(name, &k.name) {
                Ordering::Equal if k.name == name && k.namespace != crate::names::NS_DOS => {
                    return Ok(Some((k.clone(), e.file_ref)))
                }
                Ordering::Equal => {
                    if fallback.is_none() {
                        fallback = Some((k.clone(), e.file_ref));
                    }
                }
                Ordering::Less => {
                    down = e.subnode;
                    break;
                }
                Ordering::Greater => {}
            }
        }
        let Some(vcn) = down else { return Ok(fallback) };
        if !seen.insert(vcn) {
            return Err(Error::bad(format!(
                "NTFS index: node VCN {vcn} reached twice"
            )));
        }
        entries = node(v, &t, vcn)?;
    }
    Err(Error::bad("NTFS index: B+tree deeper than 32 levels"))
}
