//! The stamp job's state in its output directory, so a killed stamp resumes where it stopped:
//! `.diskfab-stamp.json` (which job this directory belongs to, and how far it got) and
//! `.diskfab-stamp.plan` (the replay analysis: templates, the chunks moved into the shared
//! layer and their previous contents). The plan is integrity-checked with BLAKE3 and bounded
//! in size; anything wrong with it means "start the job again", never "trust it".

use diskfab_customize::planfile;
use diskfab_customize::record::Writes;
use diskfab_customize::replay::Analysis;
use diskfab_fs::Timespec;
use diskfab_storage::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// State file name.
pub const STATE: &str = ".diskfab-stamp.json";
/// Plan file name.
pub const PLAN: &str = ".diskfab-stamp.plan";

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

pub use diskfab_customize::planfile::Plan;

/// Saves the analysis with `undo` (the previous contents of the shared chunks).
pub fn save_plan(
    dir: &Path,
    fingerprint: &str,
    a: &Analysis,
    undo: &Writes,
    clock: Timespec,
) -> Result<()> {
    write_atomic(
        &dir.join(PLAN),
        &planfile::encode(fingerprint, a, undo, clock),
    )
}

/// Loads and verifies the plan; `None` when missing, damaged or of another job.
pub fn load_plan(dir: &Path, fingerprint: &str) -> Option<Plan> {
    let p = dir.join(PLAN);
    if std::fs::metadata(&p).ok()?.len() > planfile::MAX_PLAN {
        return None;
    }
    planfile::decode(&std::fs::read(&p).ok()?, fingerprint)
}
