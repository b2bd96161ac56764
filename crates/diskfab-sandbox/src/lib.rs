//! diskfab sandbox: runs a guest's own programs (`--run-command`, package operations) with the
//! guest tree as `/` and nothing of the host reachable.
//!
//! One [`Sandbox::run`] forks three processes. The first unshares user, mount, PID, IPC, UTS,
//! cgroup and (unless [`Sandbox::network`]) network namespaces; the parent writes its uid/gid
//! maps (as root: the identity map of every id diskfab itself has, so files keep their real
//! owners and package managers can chown; otherwise the caller as root inside, a single id).
//! Its child is PID 1 of the new PID namespace: it bind-mounts the guest root (nodev, nosuid),
//! mounts a fresh read-only `/proc`, a tmpfs `/dev` holding only null, zero, random, urandom
//! and tty bound from the host, read-only binds, then `pivot_root`s into the guest and detaches
//! the old root, sets the hostname, starts a session (no controlling terminal), and forks the
//! command, which sets `PR_SET_NO_NEW_PRIVS`, installs a seccomp filter ([`seccomp`]) and
//! execs with a clean environment and stdin from /dev/null. When the command exits, PID 1
//! exits and the kernel kills whatever it left behind.
//!
//! When namespaces cannot be created the run fails with `Error::Denied("cannot create a
//! sandbox: ...")`; there is no fallback to a plain chroot.
#![deny(missing_docs)]

mod child;
mod plan;
pub mod seccomp;

use child::Stage;
use diskfab_storage::{Error, Result};
use plan::{Fds, Plan};
pub use plan::{BASE_ENV, DEVICES};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Largest amount of stdout (and of stderr) kept from one command; the rest is drained.
pub const MAX_OUTPUT: usize = 16 << 20;

/// A sandbox around one guest root directory.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The materialised guest root, mounted as `/`.
    pub root: PathBuf,
    /// Share the host's network namespace (default: a new one with only `lo`).
    pub network: bool,
    /// Environment entries added to (or replacing) [`BASE_ENV`].
    pub env: Vec<(String, String)>,
    /// Read-only bind mounts (host path, guest path); the guest path must exist in the tree
    /// with the same type and no symlink on the way.
    pub binds_ro: Vec<(PathBuf, PathBuf)>,
    /// The hostname in the UTS namespace (default `localhost`).
    pub hostname: String,
    /// Wall-clock limit; the whole namespace is killed when it passes.
    pub timeout: Option<Duration>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit code (128+N when killed by signal N, as a shell reports it).
    Exited(i32),
    /// Killed when [`Sandbox::timeout`] passed.
    TimedOut,
}

/// A finished command.
#[derive(Debug, Clone)]
pub struct Output {
    /// How it ended.
    pub status: Status,
    /// Its standard output (at most [`MAX_OUTPUT`] bytes).
    pub stdout: Vec<u8>,
    /// Its standard error (at most [`MAX_OUTPUT`] bytes).
    pub stderr: Vec<u8>,
}

impl Output {
    /// True when the command exited with 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// How guest ids relate to host ids in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMapping {
    /// diskfab runs as root: every id is mapped to itself; chown works.
    Identity,
    /// Unprivileged: only root inside exists (the caller outside); chown to other ids fails.
    CallerAsRoot,
}

/// The id mapping a run by this process gets.
pub fn id_mapping() -> IdMapping {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        IdMapping::Identity
    } else {
        IdMapping::CallerAsRoot
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn denied(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Denied(format!(
        "cannot create a sandbox: {what}: {e}; diskfab runs guest commands only in user, mount \
         and PID namespaces (check that user namespaces are enabled: sysctl \
         user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns, or run as root)"
    ))
}

impl Sandbox {
    /// A sandbox of `root` with the defaults: no network, the base environment, no binds.
    pub fn new(root: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            root: root.into(),
            network: false,
            env: Vec::new(),
            binds_ro: Vec::new(),
            hostname: "localhost".into(),
            timeout: None,
        }
    }

    /// Runs `argv` (argv[0] searched in the sandbox's PATH unless it contains `/`).
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        let full_map = id_mapping() == IdMapping::Identity;
        let maps = id_maps(full_map)?;
        let plan = Plan::new(self, argv, full_map)?;
        let (err_r, err_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (eout_r, eout_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
        let fds = Fds {
            err_w: err_w.as_raw_fd(),
            out_w: out_w.as_raw_fd(),
            errout_w: eout_w.as_raw_fd(),
            ready_w: ready_w.as_raw_fd(),
            go_r: go_r.as_raw_fd(),
            null_r: null.as_raw_fd(),
        };
        // SAFETY: the child runs only async-signal-safe code on memory prepared above.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io("fork", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            child::stage1(&plan, &fds);
        }
        drop((err_w, out_w, eout_w, ready_w, go_r, null));
        let mut child = Child { pid, reaped: false };
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into b.
        if unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
            child.wait();
            return Err(setup_error(&err_r).unwrap_or_else(|| denied("unshare", "no answer")));
        }
        if let Err(e) = write_maps(pid, &maps, full_map) {
            child.kill();
            return Err(denied("writing the uid/gid maps", e));
        }
        // SAFETY: writing one byte from b.
        unsafe { libc::write(go_w.as_raw_fd(), b.as_ptr().cast(), 1) };
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let (stdout, stderr, timed_out) = collect(&out_r, &eout_r, deadline);
        if timed_out {
            child.kill();
        }
        let code = child.wait();
        if let Some(e) = setup_error(&err_r) {
            return Err(e);
        }
        let status = if timed_out {
            Status::TimedOut
        } else {
            Status::Exited(code)
        };
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// The first child; killed and reaped if dropped early.
struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

impl Child {
    fn wait(&mut self) -> i32 {
        let mut st = 0;
        loop {
            // SAFETY: st is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            if r == self.pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return 127;
            }
        }
        self.reaped = true;
        if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            128 + libc::WTERMSIG(st)
        }
    }

    /// SIGKILL: PID 1 inside dies with it (PR_SET_PDEATHSIG), and with it the namespace.
    fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (uid_map, gid_map) contents.
fn id_maps(full: bool) -> Result<(String, String)> {
    if !full {
        // SAFETY: no preconditions.
        let (u, g) = unsafe { (libc::geteuid(), libc::getegid()) };
        return Ok((format!("0 {u} 1\n"), format!("0 {g} 1\n")));
    }
    // Every id this process's own namespace has, mapped to itself.
    let own = |f: &str| -> Result<String> {
        let t = std::fs::read_to_string(f).map_err(|e| Error::io(f.to_string(), e))?;
        Ok(t.lines()
            .filter_map(|l| {
                let v: Vec<&str> = l.split_whitespace().collect();
                (v.len() == 3).then(|| format!("{} {} {}\n", v[0], v[0], v[2]))
            })
            .collect())
    };
    Ok((own("/proc/self/uid_map")?, own("/proc/self/gid_map")?))
}

fn write_maps(pid: libc::pid_t, maps: &(String, String), full: bool) -> std::io::Result<()> {
    if !full {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), &maps.0)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), &maps.1)
}

/// A setup failure reported by a child, if any.
fn setup_error(err_r: &OwnedFd) -> Option<Error> {
    let mut m = [0u8; 8];
    // SAFETY: all writers are gone (exited or exec'd); reading into m.
    let n = unsafe { libc::read(err_r.as_raw_fd(), m.as_mut_ptr().cast(), 8) };
    if n != 8 {
        return None;
    }
    let stage = Stage::from_u32(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]))?;
    let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes([m[4], m[5], m[6], m[7]]));
    Some(match stage {
        Stage::Exec => Error::Failed(format!(
            "the command could not be started inside the guest: {e} (is it installed in the \
             guest? the sandbox runs the guest's own programs, never the host's)"
        )),
        s => denied(&format!("{s:?}"), e),
    })
}

/// Reads both pipes until EOF or the deadline; returns (stdout, stderr, timed out).
fn collect(out: &OwnedFd, err: &OwnedFd, deadline: Option<Instant>) -> (Vec<u8>, Vec<u8>, bool) {
    let mut bufs = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let raw = [out.as_raw_fd(), err.as_raw_fd()];
    let mut chunk = vec![0u8; 64 << 10];
    while open[0] || open[1] {
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (
                        std::mem::take(&mut bufs[0]),
                        std::mem::take(&mut bufs[1]),
                        true,
                    );
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let mut pfd: Vec<libc::pollfd> = (0..2)
            .filter(|i| open[*i])
            .map(|i| libc::pollfd {
                fd: raw[i],
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: pfd is a valid array of its length.
        let r = unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, wait_ms) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for p in &pfd {
            if p.revents == 0 {
                continue;
            }
            let i = if p.fd == raw[0] { 0 } else { 1 };
            // SAFETY: reading into chunk.
            let n = unsafe { libc::read(p.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                open[i] = false;
                continue;
            }
            let keep = (n as usize).min(MAX_OUTPUT.saturating_sub(bufs[i].len()));
            bufs[i].extend_from_slice(&chunk[..keep]);
        }
    }
    let [o, e] = bufs;
    (o, e, false)
}
