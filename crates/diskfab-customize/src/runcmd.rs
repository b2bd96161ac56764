//! Operations that run the guest's own programs — `--run-command` and the package operations
//! — in a sandbox ([`diskfab_sandbox`]): the guest's root is materialised in a private host
//! directory, mounted as `/` in new user, mount, PID, IPC, UTS, cgroup and (unless the network
//! is given) network namespaces under a seccomp filter, and whatever the command changed comes
//! back as staged actions. Only when the guest's architecture matches the host's (no
//! emulation).

use crate::export::{collect, export_tree};
use crate::ops::Op;
use crate::packages::{self, Manager};
use crate::staged::Action;
use crate::NetPolicy;
use diskfab_fs::Filesystem;
use diskfab_sandbox::{Sandbox, Status};
use diskfab_storage::{Error, Result};
use std::path::{Path, PathBuf};

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "x86" => "i386",
        other => other,
    }
}

/// Runs `cmd` in the guest root; returns its output and the changes it made.
pub fn run_command(fs: &mut dyn Filesystem, cmd: &str) -> Result<(String, Vec<Action>)> {
    let op = Op::new("run-command", cmd)?;
    run_op(fs, &op, NetPolicy::PackagesOnly)
}

/// Runs one runner operation (`run-command`, `install`, `uninstall`, `update`,
/// `install-file`) in the guest root under the network policy `net`.
pub fn run_op(fs: &mut dyn Filesystem, op: &Op, net: NetPolicy) -> Result<(String, Vec<Action>)> {
    let arch = diskfab_inspect::arch(fs).unwrap_or_default();
    if arch != host_arch() {
        return Err(Error::Unsupported(format!(
            "--{} needs a guest of the host's architecture ({}); this guest is {}. \
             Use --firstboot-command to run it when the guest boots",
            op.name,
            host_arch(),
            if arch.is_empty() { "unknown" } else { &arch }
        )));
    }
    packages::validate(op, net == NetPolicy::Never)?;
    let dir = tempfile::Builder::new()
        .prefix("diskfab-run-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary directory", e))?;
    let root = dir.path().join("root");
    std::fs::create_dir(&root).map_err(|e| Error::io(root.display().to_string(), e))?;
    let ex = export_tree(fs, &root)?;
    let mut sb = Sandbox::new(&root);
    sb.hostname = guest_hostname(&root);
    let mut temp = Temporary::default();
    let res = prepare(&mut sb, &mut temp, op, net).and_then(|argv| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        sb.run(&argv)
    });
    // The temporary files go before the changes are collected, whatever happened.
    let restored = temp.restore();
    let out = res?;
    restored?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = if op.name == "run-command" {
        format!("--run-command {:?}", op.arg)
    } else {
        format!("--{} {}", op.name, op.arg)
    };
    match out.status {
        Status::Exited(0) => {}
        Status::Exited(c) => {
            let hint = if diskfab_sandbox::id_mapping() == diskfab_sandbox::IdMapping::CallerAsRoot
            {
                " (diskfab is not running as root, so the sandbox has only one user id: \
                 commands that chown files to other users, as package managers do, fail; run \
                 diskfab as root for those)"
            } else {
                ""
            };
            return Err(Error::Failed(format!(
                "{shown} failed (exit status {c}) in the sandbox{hint}; nothing from it was \
                 written. Output:\n{text}"
            )));
        }
        Status::TimedOut => {
            return Err(Error::Failed(format!(
                "{shown} timed out; nothing from it was written"
            )))
        }
    }
    let actions = collect(&root, &ex)?;
    Ok((text, actions))
}

/// The guest's own hostname when it is a plain, sane /etc/hostname.
fn guest_hostname(root: &Path) -> String {
    let p = root.join("etc/hostname");
    let ok = std::fs::symlink_metadata(root.join("etc")).is_ok_and(|m| m.is_dir())
        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() <= 256);
    let name = if ok {
        std::fs::read_to_string(&p).unwrap_or_default()
    } else {
        String::new()
    };
    let name = name.trim();
    if !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        name.to_string()
    } else {
        "localhost".into()
    }
}

/// Changes made to the exported tree only for the duration of the run.
#[derive(Default)]
struct Temporary {
    /// (temporary path, saved original or None) to put back.
    swaps: Vec<(PathBuf, Option<PathBuf>)>,
    /// Directories to remove.
    dirs: Vec<PathBuf>,
}

impl Temporary {
    /// Puts `data` at `path` (whose parent must be a real directory), saving what was there.
    fn replace(&mut self, path: PathBuf, data: &[u8], mode: u32) -> Result<()> {
        let saved = if std::fs::symlink_metadata(&path).is_ok() {
            let s = path.with_file_name(format!(
                ".{}.diskfab-saved",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            std::fs::rename(&path, &s).map_err(|e| Error::io(path.display().to_string(), e))?;
            Some(s)
        } else {
            None
        };
        self.swaps.push((path.clone(), saved));
        std::fs::write(&path, data).map_err(|e| Error::io(path.display().to_string(), e))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| Error::io(path.display().to_string(), e))
    }

    fn restore(&mut self) -> Result<()> {
        let mut first = Ok(());
        for (p, saved) in self.swaps.drain(..).rev() {
            let r = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(_) => Ok(()),
            }
            .and_then(|_| saved.map_or(Ok(()), |s| std::fs::rename(s, &p)));
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(Error::io(format!("restoring {}", p.display()), e));
            }
        }
        for d in self.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(d);
        }
        first
    }
}

/// The directory `rel` of the guest tree, only if it and its parents are real directories
/// (never a symlink that could lead diskfab, running on the host, out of the tree).
fn real_dir(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    Some(p)
}

/// Sets up the sandbox for `op`; returns the argv to run.
fn prepare(sb: &mut Sandbox, temp: &mut Temporary, op: &Op, net: NetPolicy) -> Result<Vec<String>> {
    let root = sb.root.clone();
    if op.name == "run-command" {
        sb.network = net == NetPolicy::Always;
        return Ok(vec!["/bin/sh".into(), "-c".into(), op.arg.clone()]);
    }
    let m = packages::detect(&root)?;
    sb.network = match op.name.as_str() {
        "install-file" => net == NetPolicy::Always,
        _ => net != NetPolicy::Never,
    };
    if sb.network {
        // The guest's resolver configuration (often a link into /run) is replaced by the
        // host's for the run and put back afterwards.
        if let (Some(etc), Ok(host)) = (real_dir(&root, "etc"), std::fs::read("/etc/resolv.conf")) {
            temp.replace(etc.join("resolv.conf"), &host, 0o644)?;
        }
    }
    if m == Manager::Apt {
        // Package scripts must not start services inside the sandbox (Debian's policy-rc.d).
        if let Some(d) = real_dir(&root, "usr/sbin") {
            if std::fs::symlink_metadata(d.join("policy-rc.d")).is_err() {
                temp.replace(d.join("policy-rc.d"), b"#!/bin/sh\nexit 101\n", 0o755)?;
            }
        }
    }
    let mut guest_files = Vec::new();
    if op.name == "install-file" {
        let name = ".diskfab-install-files";
        let d = root.join(name);
        std::fs::create_dir(&d).map_err(|e| Error::io(d.display().to_string(), e))?;
        temp.dirs.push(d.clone());
        for (i, f) in packages::files(&op.arg)?.iter().enumerate() {
            let base = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._+-~".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let dest = d.join(format!("{i}-{base}"));
            std::fs::copy(f, &dest)
                .map_err(|e| Error::io(format!("--install-file {}", f.display()), e))?;
            guest_files.push(format!("/{name}/{i}-{base}"));
        }
    }
    let s = packages::script(m, op, &guest_files)?;
    let mut argv = vec!["/bin/sh".into(), "-c".into(), s.script, "sh".into()];
    argv.extend(s.args);
    Ok(argv)
}
