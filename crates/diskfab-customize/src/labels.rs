//! The SELinux labelling hook of [`crate::staged::apply`]: when the guest's
//! `/etc/selinux/config` does not say `SELINUX=disabled` and its policy's `file_contexts` is
//! present, every node an action creates or replaces (and every node a rename moves) gets the
//! `security.selinux` label the guest's policy gives its path — what virt-customize achieves
//! by running `setfiles` — so an enforcing guest boots with correctly labelled files without a
//! relabel. `<<none>>` or no matching spec leaves the node unlabelled (an existing label on a
//! replaced file stays, as `setfiles` leaves it).

use crate::selinux::{parse_config, Policy, MAX_FILE};
use crate::staged::Action;
use diskfab_fs::tree::{self, Step, Visit, Visitor};
use diskfab_fs::{path, FileType, Filesystem, Ino};
use diskfab_storage::{Error, Result};

/// The extended attribute holding a node's SELinux context.
pub const XATTR: &[u8] = b"security.selinux";
/// Most nodes relabelled below one renamed directory.
pub const MAX_RENAMED_TREE: usize = 1_000_000;

/// The guest's file labelling policy.
#[derive(Debug)]
pub struct Labeler {
    policy: Policy,
}

/// Reads a regular file of the guest (following symlinks inside it); `None` if missing.
fn read_file(fs: &mut dyn Filesystem, p: &str) -> Result<Option<Vec<u8>>> {
    let ino = match path::resolve(fs, p.as_bytes(), true) {
        Ok(i) => i,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(Error::Failed(m)) if m.contains("not a directory") => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = fs.getattr(ino)?;
    if m.file_type != FileType::Regular {
        return Err(Error::bad(format!("{p}: not a regular file")));
    }
    if m.size > MAX_FILE as u64 {
        return Err(Error::bad(format!(
            "{p}: {} bytes, more than the {MAX_FILE} accepted",
            m.size
        )));
    }
    let mut buf = diskfab_storage::limits::alloc_bytes(m.size, p)?;
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

impl Labeler {
    /// The guest's labelling policy, or `None` when the guest does not use SELinux (no
    /// `/etc/selinux/config`, `SELINUX=disabled`, or no `file_contexts` for its policy type).
    /// A policy that is present but malformed is an error.
    pub fn load(fs: &mut dyn Filesystem) -> Result<Option<Labeler>> {
        let Some(cfg) = read_file(fs, "/etc/selinux/config")? else {
            return Ok(None);
        };
        let cfg = parse_config(&cfg)?;
        if !cfg.enabled {
            return Ok(None);
        }
        let base = format!(
            "/etc/selinux/{}/contexts/files/file_contexts",
            cfg.policy_type
        );
        let Some(main) = read_file(fs, &base)? else {
            return Ok(None);
        };
        let mut extra = Vec::new();
        for suffix in ["homedirs", "local", "subs", "subs_dist"] {
            extra.push(read_file(fs, &format!("{base}.{suffix}"))?);
        }
        let mut files: Vec<(&str, &[u8])> = vec![("file_contexts", &main)];
        for (name, d) in ["file_contexts.homedirs", "file_contexts.local"]
            .iter()
            .zip(&extra)
        {
            if let Some(d) = d {
                files.push((name, d));
            }
        }
        let policy = Policy::parse(&files, extra[2].as_deref(), extra[3].as_deref())
            .map_err(|e| e.context(format!("the guest's SELinux policy ({base})")))?;
        Ok(Some(Labeler { policy }))
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Labels inode `ino` at `p` by the policy.
    pub fn label_ino(&self, fs: &mut dyn Filesystem, ino: Ino, p: &[u8]) -> Result<()> {
        let ft = fs.getattr(ino)?.file_type;
        if let Some(ctx) = self.policy.lookup(p, ft.mode_bits())? {
            let mut v = ctx.as_bytes().to_vec();
            v.push(0); // as libselinux's setfilecon stores it
            fs.set_xattr(ino, XATTR, &v)
                .map_err(|e| e.context("setting its SELinux label"))?;
        }
        Ok(())
    }

    /// Labels the node at canonical path `p` (not following a final symlink).
    pub fn label_path(&self, fs: &mut dyn Filesystem, p: &str) -> Result<()> {
        let ino = path::resolve(fs, p.as_bytes(), false)?;
        self.label_ino(fs, ino, p.as_bytes())
    }

    /// Labels what `a` (just applied) created, replaced or moved.
    pub fn after(&self, fs: &mut dyn Filesystem, a: &Action) -> Result<()> {
        match a {
            Action::Write { path, .. } | Action::Mkdir { path, .. } => self.label_path(fs, path),
            Action::Symlink { path, .. } => self.label_path(fs, path),
            Action::Rename { to, .. } => {
                self.label_path(fs, to)?;
                let ino = path::resolve(fs, to.as_bytes(), false)?;
                if fs.getattr(ino)?.file_type == FileType::Directory {
                    let mut v = Relabel { lab: self, n: 0 };
                    tree::walk(fs, ino, to.as_bytes(), &mut v)?;
                }
                Ok(())
            }
            Action::Delete { .. } | Action::SetAttr { .. } => Ok(()),
        }
    }
}

struct Relabel<'a> {
    lab: &'a Labeler,
    n: usize,
}

impl Visitor for Relabel<'_> {
    fn enter(&mut self, fs: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        self.n += 1;
        if self.n > MAX_RENAMED_TREE {
            return Err(Error::Unsupported(format!(
                "relabelling a moved tree of more than {MAX_RENAMED_TREE} nodes"
            )));
        }
        self.lab.label_ino(fs, v.entry.ino, &v.path)?;
        Ok(Step::Into)
    }
}
