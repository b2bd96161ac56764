//! The backing-file gate: the only way a backing file named inside an image is ever opened.
//!
//! An image from a stranger can name any path as its backing file (`/etc/shadow`, a device, a
//! FIFO, `/proc/self/mem`). diskfab opens a backing file only if, after resolving symlinks, it is
//! a regular file inside the top image's directory or that directory's parent, or inside a
//! directory the user allowed explicitly; chains are depth-limited and loop-checked.

use diskfab_storage::{Error, Result};
use std::path::{Path, PathBuf};

/// Policy for opening backing files.
#[derive(Debug, Clone)]
pub struct BackingGate {
    /// Extra directories backing files may live in (`--backing-dir`).
    pub allow_dirs: Vec<PathBuf>,
    /// Lift the directory rule (`--allow-any-backing`); regular files and depth still apply.
    pub allow_any: bool,
    /// Longest chain accepted below the top image.
    pub max_depth: usize,
}

impl Default for BackingGate {
    fn default() -> Self {
        BackingGate {
            allow_dirs: Vec::new(),
            allow_any: false,
            max_depth: 16,
        }
    }
}

impl BackingGate {
    /// Resolves backing `name` stored in image `image` (relative names are relative to that
    /// image's directory) and checks it against the policy. `top` is the top image of the chain.
    /// Returns the canonical path.
    pub fn check(&self, image: &Path, name: &str, top: &Path, depth: usize) -> Result<PathBuf> {
        self.check_as("backing file", image, name, top, depth)
    }

    /// Resolves the external data file `name` of qcow2 image `image` under the same policy as
    /// backing files (a data file is as much a stranger-chosen path as a backing file).
    pub fn check_data_file(&self, image: &Path, name: &str, top: &Path) -> Result<PathBuf> {
        self.check_as("external data file", image, name, top, 0)
    }

    fn check_as(
        &self,
        what: &str,
        image: &Path,
        name: &str,
        top: &Path,
        depth: usize,
    ) -> Result<PathBuf> {
        if depth > self.max_depth {
            return Err(Error::bad(format!(
                "{}: backing chain deeper than {} images",
                top.display(),
                self.max_depth
            )));
        }
        let dir = image.parent().unwrap_or(Path::new("."));
        let candidate = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        let canon = std::fs::canonicalize(&candidate).map_err(|e| {
            Error::bad(format!(
                "{}: {what} {name:?} ({}) cannot be opened: {e}",
                image.display(),
                candidate.display()
            ))
        })?;
        let meta =
            std::fs::metadata(&canon).map_err(|e| Error::io(format!("{}", canon.display()), e))?;
        if !meta.is_file() {
            return Err(Error::bad(format!(
                "{}: {what} {} is not a regular file; refusing to open it",
                image.display(),
                canon.display()
            )));
        }
        if let Some(fs) = pseudo_filesystem(&canon) {
            return Err(Error::bad(format!(
                "{}: {what} {} is on {fs}, not a disk image; refusing to open it",
                image.display(),
                canon.display()
            )));
        }
        if self.allow_any || self.allowed_dirs(top).iter().any(|d| canon.starts_with(d)) {
            return Ok(canon);
        }
        Err(Error::bad(format!(
            "{}: {what} {} is outside the allowed directories (the image's own directory \
             and its parent); if you trust this image, pass --backing-dir {} or --allow-any-backing",
            image.display(),
            canon.display(),
            canon.parent().unwrap_or(Path::new("/")).display()
        )))
    }

    fn allowed_dirs(&self, top: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Ok(t) = std::fs::canonicalize(top) {
            if let Some(d) = t.parent() {
                v.push(d.to_path_buf());
                if let Some(p) = d.parent() {
                    v.push(p.to_path_buf());
                }
            }
        }
        v.extend(
            self.allow_dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok()),
        );
        v
    }
}

/// Names the kernel pseudo-filesystem `path` lives on (procfs, sysfs, ...), whose "regular
/// files" are views of kernel or process state (`/proc/self/mem`, `/proc/kcore`), never images.
/// Refused even with `allow_any`.
fn pseudo_filesystem(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    for (prefix, name) in [("/proc", "procfs"), ("/sys", "sysfs")] {
        if path == Path::new(prefix) || path.starts_with(prefix) {
            return Some(name);
        }
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into a zeroed struct we own; `c` is a valid NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // Magic numbers from linux/magic.h.
    match st.f_type as i64 {
        0x9fa0 => Some("procfs"),
        0x6265_6572 => Some("sysfs"),
        0x6462_6720 => Some("debugfs"),
        0x7472_6163 => Some("tracefs"),
        0x2762_9e41 | 0x6367_7270 => Some("cgroupfs"),
        _ => None,
    }
}
