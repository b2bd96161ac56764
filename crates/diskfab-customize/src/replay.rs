//! Block-level replay (seed 000): analyse a customization once, then produce every instance's
//! writes without running the filesystem code again.
//!
//! Instances whose planned actions have the same *shape* (same paths, kinds, owners, modes and
//! block counts; only file bytes differ) make the filesystem allocate exactly the same blocks.
//! For each such group one template instance is applied to a [`RecordingDev`]; the files whose
//! contents differ inside the group are located (inode record and data blocks). Any other
//! instance's writes are then the template's writes with those data blocks refilled and those
//! inodes' size fields patched (checksum recomputed by the driver). The model is checked on a
//! second member of every group: its synthesized writes must equal a real recording byte for
//! byte, else the group falls back to a full (in-memory) customization per instance.
//! Chunks every group writes identically are "same" writes and go once into the shared layer.

use crate::record::{RecordingDev, Writes};
use crate::staged::{self, Action};
use diskfab_fs::{path, FileLayout, Filesystem, FsDriver, Timespec};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A file whose contents differ between members of a group.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct VaryFile {
    /// Index of its (last) Write action in the plan.
    pub action: usize,
    /// Its inode.
    pub ino: u64,
    /// Byte offset of the inode record (device-relative).
    pub inode_offset: u64,
    /// Inode record length.
    pub inode_len: u32,
    /// Data block offsets.
    pub blocks: Vec<u64>,
}

/// How a group's instances get their writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Synthesized from the template.
    Replay,
    /// Recorded from a full customization of each instance.
    Redo,
}

/// One group of same-shaped instances.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Group {
    /// Shape key.
    pub shape: String,
    /// Member instance indexes (the first is the template).
    pub members: Vec<usize>,
    /// Replay or redo.
    pub mode: Mode,
    /// Why the group is redone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Files that vary.
    pub varying: Vec<VaryFile>,
    /// The template's recorded writes.
    #[serde(skip)]
    pub writes: Writes,
}

/// The result of the analysis.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Groups.
    pub groups: Vec<Group>,
    /// Group of each instance.
    pub group_of: Vec<usize>,
    /// Chunks identical in every instance: written once into the shared layer.
    pub common: Writes,
    /// Chunk size (= filesystem block size).
    pub chunk: u64,
}

/// Merges consecutive rewrites of the same file into the last one (no rename or delete in
/// between), so each file is written once and allocates one set of blocks.
pub fn compact(actions: Vec<Action>) -> Vec<Action> {
    let mut keep = vec![true; actions.len()];
    for i in 0..actions.len() {
        let Action::Write { path: p, .. } = &actions[i] else {
            continue;
        };
        for later in &actions[i + 1..] {
            match later {
                Action::Write { path: q, .. } if q == p => {
                    keep[i] = false;
                    break;
                }
                Action::Rename { .. } | Action::Delete { .. } => break,
                _ => {}
            }
        }
    }
    actions
        .into_iter()
        .zip(keep)
        .filter_map(|(a, k)| k.then_some(a))
        .collect()
}

/// The shape key of a plan: the actions with file contents reduced to their block counts.
pub fn shape(actions: &[Action], bs: u64) -> String {
    let mut h = blake3::Hasher::new();
    for a in actions {
        let line = match a {
            Action::Write { path, data, meta } => {
                format!("W {path} {} {meta:?}", (data.len() as u64).div_ceil(bs))
            }
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        h.update(&(line.len() as u64).to_le_bytes());
        h.update(line.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Applies `actions` to a fresh recording over `dev` and returns the writes, with the
/// recording device (for reading the result).
pub fn record(
    dev: &DevRef,
    driver: &dyn FsDriver,
    actions: &[Action],
    clock: Timespec,
    chunk: u64,
) -> Result<(Writes, Arc<RecordingDev>)> {
    let rec = Arc::new(RecordingDev::new(dev.clone(), chunk)?);
    {
        let mut fs = driver.open(rec.clone(), true)?;
        fs.set_clock(Some(clock));
        staged::apply(fs.as_mut(), actions, Some(clock))?;
        fs.sync()?;
    }
    Ok((rec.writes()?, rec))
}

/// Builds an instance's writes from its group's template.
pub fn synthesize(
    g: &Group,
    actions: &[Action],
    patcher: &mut dyn Filesystem,
    chunk: u64,
    skip: &BTreeSet<u64>,
) -> Result<Writes> {
    let mut w: Writes = g
        .writes
        .iter()
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for v in &g.varying {
        let Some(Action::Write { data, .. }) = actions.get(v.action) else {
            return Err(Error::Failed(
                "replay: plan does not match its group".into(),
            ));
        };
        if (data.len() as u64).div_ceil(chunk) != v.blocks.len() as u64 {
            return Err(Error::Failed("replay: file size class changed".into()));
        }
        for (j, off) in v.blocks.iter().enumerate() {
            let mut c = vec![0u8; chunk as usize];
            let from = j * chunk as usize;
            let to = (from + chunk as usize).min(data.len());
            c[..to - from].copy_from_slice(&data[from..to]);
            w.insert(*off, c);
        }
        let base = v.inode_offset - v.inode_offset % chunk;
        let within = (v.inode_offset - base) as usize;
        let mut c = match w.get(&base).or_else(|| g.writes.get(&base)) {
            Some(c) => c.clone(),
            None => return Err(Error::Failed("replay: inode block was not recorded".into())),
        };
        let rec = c
            .get_mut(within..within + v.inode_len as usize)
            .ok_or_else(|| Error::Failed("replay: inode record crosses a block".into()))?;
        if !patcher.patch_inode_size(v.ino, rec, data.len() as u64)? {
            return Err(Error::Unsupported(
                "replay: the driver cannot patch inodes".into(),
            ));
        }
        w.insert(base, c);
    }
    Ok(w)
}

/// The chunks a group's instances differ in.
fn varying_chunks(g: &Group, chunk: u64) -> BTreeSet<u64> {
    let mut s = BTreeSet::new();
    for v in &g.varying {
        s.extend(v.blocks.iter().copied());
        s.insert(v.inode_offset - v.inode_offset % chunk);
    }
    s
}

/// Finds the files that vary inside a group and where they live after the template run.
fn locate(
    rec: &Arc<RecordingDev>,
    driver: &dyn FsDriver,
    plans: &[Vec<Action>],
    members: &[usize],
) -> Result<std::result::Result<Vec<VaryFile>, String>> {
    let t = &plans[members[0]];
    let mut fs = driver.open(rec.clone(), false)?;
    let mut out = Vec::new();
    for (i, a) in t.iter().enumerate() {
        let Action::Write { path: p, data, .. } = a else {
            continue;
        };
        let varies = members[1..].iter().any(|&m| match plans[m].get(i) {
            Some(Action::Write { data: d, .. }) => d != data,
            _ => true,
        });
        if !varies {
            continue;
        }
        let ino = path::resolve(fs.as_mut(), p.as_bytes(), false)?;
        let Some(FileLayout {
            inode_offset,
            inode_len,
            blocks,
            ..
        }) = fs.file_layout(ino)?
        else {
            return Ok(Err(format!("{p} is not stored as plain blocks")));
        };
        out.push(VaryFile {
            action: i,
            ino,
            inode_offset,
            inode_len,
            blocks,
        });
    }
    Ok(Ok(out))
}

/// Analyses all plans: groups, templates, validation, shared chunks.
pub fn analyse(
    dev: &DevRef,
    driver: &dyn FsDriver,
    plans: &[Vec<Action>],
    clock: Timespec,
    chunk: u64,
) -> Result<Analysis> {
    let mut by_shape: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of = Vec::with_capacity(plans.len());
    for (k, p) in plans.iter().enumerate() {
        let s = shape(p, chunk);
        let gi = *by_shape.entry(s.clone()).or_insert_with(|| {
            groups.push(Group {
                shape: s,
                members: Vec::new(),
                mode: Mode::Replay,
                reason: None,
                varying: Vec::new(),
                writes: Writes::new(),
            });
            groups.len() - 1
        });
        groups[gi].members.push(k);
        group_of.push(gi);
    }
    for g in &mut groups {
        let t = g.members[0];
        let (writes, rec) = record(dev, driver, &plans[t], clock, chunk)?;
        g.writes = writes;
        match locate(&rec, driver, plans, &g.members)? {
            Ok(v) => g.varying = v,
            Err(why) => {
                g.mode = Mode::Redo;
                g.reason = Some(why);
                continue;
            }
        }
        if let Some(&v) = g.members.get(1) {
            let (real, _) = record(dev, driver, &plans[v], clock, chunk)?;
            let mut fs = driver.open(rec.clone(), false)?;
            let synth = synthesize(g, &plans[v], fs.as_mut(), chunk, &BTreeSet::new());
            if synth.as_ref().ok() != Some(&real) {
                g.mode = Mode::Redo;
                g.reason = Some(match synth {
                    Err(e) => e.to_string(),
                    Ok(s) => mismatch(&s, &real),
                });
            }
        }
    }
    let common = shared_chunks(&groups, chunk);
    Ok(Analysis {
        groups,
        group_of,
        common,
        chunk,
    })
}

fn mismatch(a: &Writes, b: &Writes) -> String {
    let ka: BTreeSet<_> = a.keys().collect();
    let kb: BTreeSet<_> = b.keys().collect();
    if ka != kb {
        return format!(
            "the filesystem wrote different blocks ({} vs {} chunks)",
            ka.len(),
            kb.len()
        );
    }
    let diff = a.iter().find(|(k, v)| b.get(k) != Some(v)).map(|(k, _)| *k);
    format!(
        "block at byte {} differs beyond file data and inode size",
        diff.unwrap_or(0)
    )
}

/// Chunks written identically by every group and varying in none; empty when any group is
/// redone (its instances are recorded later, over the shared layer as it was analysed).
fn shared_chunks(groups: &[Group], chunk: u64) -> Writes {
    if groups.is_empty() || groups.iter().any(|g| g.mode == Mode::Redo) {
        return Writes::new();
    }
    let vary: BTreeSet<u64> = groups
        .iter()
        .flat_map(|g| varying_chunks(g, chunk))
        .collect();
    let mut out = BTreeMap::new();
    'chunks: for (k, v) in &groups[0].writes {
        if vary.contains(k) {
            continue;
        }
        for g in &groups[1..] {
            if g.writes.get(k) != Some(v) {
                continue 'chunks;
            }
        }
        out.insert(*k, v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staged::Meta;

    fn w(p: &str, d: &[u8]) -> Action {
        Action::Write {
            path: p.into(),
            data: d.to_vec(),
            meta: Meta::root(0o644),
        }
    }

    #[test]
    fn compact_keeps_only_the_last_rewrite_of_a_file() {
        let a = vec![
            w("/etc/shadow", b"1"),
            w("/etc/x", b"x"),
            w("/etc/shadow", b"2"),
        ];
        assert_eq!(compact(a), vec![w("/etc/x", b"x"), w("/etc/shadow", b"2")]);
        let b = vec![
            w("/a", b"1"),
            Action::Delete { path: "/a".into() },
            w("/a", b"2"),
        ];
        assert_eq!(compact(b.clone()), b);
    }

    #[test]
    fn shape_ignores_bytes_but_not_block_counts() {
        let s = |d: &[u8]| shape(&[w("/etc/hostname", d)], 4096);
        assert_eq!(s(b"web-1\n"), s(b"database-server-22\n"));
        assert_ne!(s(b"x"), s(&[b'y'; 5000]));
        assert_ne!(s(b"x"), shape(&[w("/etc/hostnamf", b"x")], 4096));
    }
}
