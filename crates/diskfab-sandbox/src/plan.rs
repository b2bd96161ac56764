//! Everything the children need, prepared before `fork` (C strings, pointer arrays, the
//! seccomp program), and the checks on the guest tree that make the mount targets safe.

use crate::Sandbox;
use diskfab_storage::{Error, Result};
use libc::c_ulong;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The host device nodes bind-mounted into the sandbox's `/dev`.
pub const DEVICES: [&str; 5] = ["null", "zero", "random", "urandom", "tty"];

/// A read-only bind mount.
pub struct Bind {
    /// Host path.
    pub host: CString,
    /// Absolute host path of the target inside the guest root.
    pub target: CString,
    /// Flags of the source mount that a remount must keep (user namespaces lock them).
    pub locked: c_ulong,
}

/// File descriptors shared by the parent and the children.
pub struct Fds {
    /// Setup errors (stage, errno) to the parent; close-on-exec.
    pub err_w: i32,
    /// The command's stdout.
    pub out_w: i32,
    /// The command's stderr.
    pub errout_w: i32,
    /// "Namespaces created" to the parent.
    pub ready_w: i32,
    /// "Maps written" from the parent.
    pub go_r: i32,
    /// /dev/null for stdin.
    pub null_r: i32,
}

/// The prepared run.
pub struct Plan {
    /// The parent's pid (the first child checks it after PR_SET_PDEATHSIG).
    pub parent_pid: libc::pid_t,
    /// unshare(2) flags.
    pub unshare_flags: i32,
    /// True when the whole id range is mapped (diskfab runs as root).
    pub full_map: bool,
    /// The guest root.
    pub root: CString,
    /// Flags of the mount holding the root that a remount must keep.
    pub root_locked: c_ulong,
    /// `<root>/proc`.
    pub proc_t: CString,
    /// `<root>/dev`.
    pub dev_t: CString,
    /// (host node, target) for each device.
    pub devs: Vec<(CString, CString)>,
    /// Read-only binds.
    pub binds: Vec<Bind>,
    /// The UTS hostname.
    pub hostname: CString,
    /// True to share the host's network namespace.
    pub network: bool,
    /// `ifreq` naming `lo`.
    pub lo_req: libc::ifreq,
    /// Paths to try for argv[0] (a PATH search done in advance).
    pub candidates: Vec<CString>,
    _argv: Vec<CString>,
    /// NULL-terminated argv.
    pub argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    /// NULL-terminated environment.
    pub envp_ptrs: Vec<*const libc::c_char>,
    /// The seccomp program.
    pub filter: Vec<libc::sock_filter>,
}

pub(crate) fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString> {
    CString::new(s.as_ref()).map_err(|_| Error::Invalid(format!("{what} contains a NUL byte")))
}

fn cpath(p: &Path) -> Result<CString> {
    cstr(p.as_os_str().as_bytes(), &p.display().to_string())
}

/// The mount flags of the filesystem holding `p` that a bind remount in a user namespace must
/// repeat (read-only, nosuid, nodev, noexec, atime flags).
fn locked_flags(p: &Path) -> Result<c_ulong> {
    let c = cpath(p)?;
    // SAFETY: zeroed statvfs is a valid out-parameter; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io(
            format!("statvfs {}", p.display()),
            std::io::Error::last_os_error(),
        ));
    }
    let mut f = 0;
    for (st_flag, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms;
        }
    }
    Ok(f)
}

/// Resolves guest path `rel` under `root` without following symlinks: every component must be
/// a real directory (the last one a directory when `dir`, else a regular file). Mount targets
/// are resolved by the host kernel before pivot_root, so a symlink here could point a mount
/// at a host path.
pub fn safe_target(root: &Path, rel: &Path, dir: bool) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(Error::Invalid(format!(
                "sandbox mount point {} must not contain '..'",
                rel.display()
            )));
        };
        cur.push(name);
        let last = i + 1 == comps.len();
        let m = std::fs::symlink_metadata(&cur)
            .map_err(|e| Error::io(format!("sandbox mount point {}", rel.display()), e))?;
        let ok = if last && !dir {
            m.file_type().is_file()
        } else {
            m.file_type().is_dir()
        };
        if !ok {
            return Err(Error::Denied(format!(
                "cannot create a sandbox: the guest's {} is a symlink or not a {}; the sandbox \
                 mounts its own there and will not follow links out of the guest tree",
                rel.display(),
                if last && !dir {
                    "regular file"
                } else {
                    "directory"
                }
            )));
        }
    }
    Ok(cur)
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The default environment; `Sandbox::env` entries replace or extend it.
pub const BASE_ENV: [(&str, &str); 5] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("TERM", "dumb"),
];

impl Plan {
    /// Prepares `argv` in `sb`; `full_map` as decided by the caller's privileges.
    pub fn new(sb: &Sandbox, argv: &[&str], full_map: bool) -> Result<Plan> {
        let Some(first) = argv.first() else {
            return Err(Error::Invalid("sandbox: empty command".into()));
        };
        let root = std::fs::canonicalize(&sb.root)
            .map_err(|e| Error::io(format!("sandbox root {}", sb.root.display()), e))?;
        let proc_t = safe_target(&root, Path::new("proc"), true)?;
        let dev_t = safe_target(&root, Path::new("dev"), true)?;
        let mut devs = Vec::new();
        for d in DEVICES {
            devs.push((cstr(format!("/dev/{d}"), d)?, cpath(&dev_t.join(d))?));
        }
        let mut binds = Vec::new();
        for (host, guest) in &sb.binds_ro {
            let hm = std::fs::metadata(host)
                .map_err(|e| Error::io(format!("sandbox bind {}", host.display()), e))?;
            let target = safe_target(&root, guest, hm.is_dir())?;
            binds.push(Bind {
                host: cpath(host)?,
                target: cpath(&target)?,
                locked: locked_flags(host)?,
            });
        }
        let mut env: Vec<(String, String)> = BASE_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in &sb.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let candidates = if first.contains('/') {
            vec![cstr(first, "command")?]
        } else {
            path.split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| cstr(format!("{d}/{first}"), "command"))
                .collect::<Result<_>>()?
        };
        let argv_c: Vec<CString> = argv
            .iter()
            .map(|a| cstr(a, "command argument"))
            .collect::<Result<_>>()?;
        let envp_c: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}"), "environment variable"))
            .collect::<Result<_>>()?;
        let mut flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        if !sb.network {
            flags |= libc::CLONE_NEWNET;
        }
        // SAFETY: an all-zero ifreq is valid.
        let mut lo_req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (i, b) in b"lo".iter().enumerate() {
            lo_req.ifr_name[i] = *b as libc::c_char;
        }
        let hostname = if sb.hostname.is_empty() || sb.hostname.len() > 64 {
            "localhost".to_string()
        } else {
            sb.hostname.clone()
        };
        Ok(Plan {
            // SAFETY: getpid has no preconditions.
            parent_pid: unsafe { libc::getpid() },
            unshare_flags: flags,
            full_map,
            root_locked: locked_flags(&root)?,
            root: cpath(&root)?,
            proc_t: cpath(&proc_t)?,
            dev_t: cpath(&dev_t)?,
            devs,
            binds,
            hostname: cstr(hostname, "hostname")?,
            network: sb.network,
            lo_req,
            candidates,
            argv_ptrs: ptrs(&argv_c),
            _argv: argv_c,
            envp_ptrs: ptrs(&envp_c),
            _envp: envp_c,
            filter: crate::seccomp::program(),
        })
    }
}
