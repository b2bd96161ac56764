//! The stamp job's state in its output directory, so a killed stamp resumes where it stopped:
//! `.diskfab-stamp.json` (which job this directory belongs to, and how far it got) and
//! `.diskfab-stamp.plan` (the replay analysis: templates, the chunks moved into the shared
//! layer and their previous contents). The plan is integrity-checked with BLAKE3 and bounded
//! in size; anything wrong with it means "start the job again", never "trust it".

use diskfab_customize::record::Writes;
use diskfab_customize::replay::{Analysis, Group};
use diskfab_fs::Timespec;
use diskfab_storage::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// State file name.
pub const STATE: &str = ".diskfab-stamp.json";
/// Plan file name.
pub const PLAN: &str = ".diskfab-stamp.plan";
const MAGIC: &[u8; 8] = b"DFSTAMP1";
const MAX_PLAN: u64 = 1 << 30;

/// Progress of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Identity of the job (inputs and options).
    pub fingerprint: String,
    /// `started`, `analysed` or `done`.
    pub phase: String,
}

/// Writes `bytes` to `path` atomically (temporary name, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display().to_string(), e))
}

/// Saves the state.
pub fn save_state(dir: &Path, s: &State) -> Result<()> {
    let j = serde_json::to_vec_pretty(s).map_err(|e| Error::Failed(e.to_string()))?;
    write_atomic(&dir.join(STATE), &j)
}

/// Loads the state, if any and readable.
pub fn load_state(dir: &Path) -> Option<State> {
    let d = std::fs::read(dir.join(STATE)).ok()?;
    if d.len() > 1 << 20 {
        return None;
    }
    serde_json::from_slice(&d).ok()
}

/// What the plan file holds besides chunk data.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    clock: (i64, u32),
    chunk: u64,
    groups: Vec<Group>,
    /// Offsets of each group's template writes, in data order.
    group_offsets: Vec<Vec<u64>>,
    /// Offsets moved into the shared layer, in data order (their previous contents follow).
    committed: Vec<u64>,
}

/// A loaded plan.
pub struct Plan {
    /// The analysis (its `common` holds the shared chunks' *previous* contents).
    pub analysis: Analysis,
    /// The clock the templates were recorded with.
    pub clock: Timespec,
}

/// Saves the analysis with `undo` (the previous contents of the shared chunks).
pub fn save_plan(
    dir: &Path,
    fingerprint: &str,
    a: &Analysis,
    undo: &Writes,
    clock: Timespec,
) -> Result<()> {
    let h = Header {
        fingerprint: fingerprint.to_string(),
        clock: (clock.sec, clock.nsec),
        chunk: a.chunk,
        groups: a.groups.clone(),
        group_offsets: a
            .groups
            .iter()
            .map(|g| g.writes.keys().copied().collect())
            .collect(),
        committed: undo.keys().copied().collect(),
    };
    let hj = serde_json::to_vec(&h).map_err(|e| Error::Failed(e.to_string()))?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(hj.len() as u64).to_le_bytes());
    out.extend_from_slice(&hj);
    for g in &a.groups {
        for v in g.writes.values() {
            out.extend_from_slice(v);
        }
    }
    for v in undo.values() {
        out.extend_from_slice(v);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    write_atomic(&dir.join(PLAN), &out)
}

/// Loads and verifies the plan; `None` when missing, damaged or of another job.
pub fn load_plan(dir: &Path, fingerprint: &str) -> Option<Plan> {
    let p = dir.join(PLAN);
    if std::fs::metadata(&p).ok()?.len() > MAX_PLAN {
        return None;
    }
    let d = std::fs::read(&p).ok()?;
    let (body, sum) = d.split_at_checked(d.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let hl = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?) as usize;
    let hj = body.get(16..16usize.checked_add(hl)?)?;
    let h: Header = serde_json::from_slice(hj).ok()?;
    if h.fingerprint != fingerprint || !h.chunk.is_power_of_two() || h.chunk > 65536 {
        return None;
    }
    let mut rest = &body[16 + hl..];
    let mut take = |n: usize| -> Option<Vec<u8>> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a.to_vec())
    };
    let c = h.chunk as usize;
    let mut groups = h.groups;
    if groups.len() != h.group_offsets.len() {
        return None;
    }
    for (g, offs) in groups.iter_mut().zip(&h.group_offsets) {
        g.writes = offs
            .iter()
            .map(|o| Some((*o, take(c)?)))
            .collect::<Option<Writes>>()?;
    }
    let common = h
        .committed
        .iter()
        .map(|o| Some((*o, take(c)?)))
        .collect::<Option<Writes>>()?;
    Some(Plan {
        analysis: Analysis {
            groups,
            group_of: Vec::new(),
            common,
            chunk: h.chunk,
        },
        clock: Timespec {
            sec: h.clock.0,
            nsec: h.clock.1,
        },
    })
}
