//! What runs after `fork`: only async-signal-safe system calls on data prepared by the parent
//! ([`Plan`]); no allocation, no locks. Three processes: the first child unshares the
//! namespaces and waits for its uid/gid maps; its child is PID 1 of the new PID namespace
//! (sets up the mounts, reaps, and exits with the command's status, which kills everything
//! left in the namespace); PID 1's child execs the command under the seccomp filter.

use crate::plan::{Fds, Plan};
use libc::{c_int, c_ulong};
use std::ptr::null;

/// Setup steps, reported to the parent with errno when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// unshare(2) of the namespaces.
    Unshare = 1,
    /// Waiting for the parent to write the id maps.
    Sync,
    /// setresuid/setresgid to root inside.
    SetId,
    /// Forking PID 1.
    ForkInit,
    /// Making every mount private.
    Private,
    /// Bind-mounting the guest root.
    BindRoot,
    /// Remounting it nodev,nosuid.
    RemountRoot,
    /// Mounting /proc.
    Proc,
    /// Mounting the /dev tmpfs.
    DevTmpfs,
    /// Creating a /dev node's mount point.
    DevNode,
    /// Bind-mounting a host device node.
    DevBind,
    /// A read-only bind mount.
    Bind,
    /// Making it read-only.
    BindRo,
    /// pivot_root(2).
    PivotRoot,
    /// Detaching the old root.
    DetachOld,
    /// sethostname(2).
    Hostname,
    /// Forking the command.
    ForkCmd,
    /// Redirecting stdin, stdout, stderr.
    Stdio,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// Installing the seccomp filter.
    Seccomp,
    /// execve of the command.
    Exec,
}

impl Stage {
    /// From the number in the error pipe.
    pub fn from_u32(n: u32) -> Option<Stage> {
        use Stage::*;
        const ALL: [Stage; 21] = [
            Unshare,
            Sync,
            SetId,
            ForkInit,
            Private,
            BindRoot,
            RemountRoot,
            Proc,
            DevTmpfs,
            DevNode,
            DevBind,
            Bind,
            BindRo,
            PivotRoot,
            DetachOld,
            Hostname,
            ForkCmd,
            Stdio,
            NoNewPrivs,
            Seccomp,
            Exec,
        ];
        ALL.iter().copied().find(|s| *s as u32 == n)
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reports `stage` and errno on the error pipe and exits.
fn fail(fds: &Fds, stage: Stage) -> ! {
    let e = errno();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&e.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; msg outlives the call.
    unsafe {
        libc::write(fds.err_w, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn check(fds: &Fds, r: c_int, stage: Stage) {
    if r < 0 {
        fail(fds, stage);
    }
}

fn mount(
    src: *const libc::c_char,
    dst: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: c_ulong,
    data: *const libc::c_char,
) -> c_int {
    // SAFETY: every pointer is null or a NUL-terminated string owned by the Plan.
    unsafe { libc::mount(src, dst, fstype, flags, data.cast()) }
}

/// Waits for `pid`, retrying on EINTR; returns a shell-style status (128+signal when killed).
fn wait_for(pid: libc::pid_t) -> c_int {
    let mut st: c_int = 0;
    loop {
        // SAFETY: st is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        if r < 0 && errno() != libc::EINTR {
            return 127;
        }
    }
    exit_code(st)
}

fn exit_code(st: c_int) -> c_int {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        127
    }
}

/// The first child: namespaces, then PID 1.
pub fn stage1(plan: &Plan, fds: &Fds) -> ! {
    // SAFETY: only async-signal-safe calls on memory prepared before fork.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        if libc::getppid() != plan.parent_pid {
            libc::_exit(127);
        }
        check(fds, libc::unshare(plan.unshare_flags), Stage::Unshare);
        let one = [1u8];
        libc::write(fds.ready_w, one.as_ptr().cast(), 1);
        let mut b = [0u8];
        if libc::read(fds.go_r, b.as_mut_ptr().cast(), 1) != 1 {
            fail(fds, Stage::Sync);
        }
        if plan.full_map {
            libc::setgroups(0, null());
        }
        check(fds, libc::setresgid(0, 0, 0), Stage::SetId);
        check(fds, libc::setresuid(0, 0, 0), Stage::SetId);
        let pid = libc::fork();
        check(fds, pid, Stage::ForkInit);
        if pid == 0 {
            init(plan, fds);
        }
        libc::close(fds.err_w);
        libc::close(fds.out_w);
        libc::close(fds.errout_w);
        libc::_exit(wait_for(pid))
    }
}

/// PID 1 of the new PID namespace: the mounts, then the command, then reaping.
fn init(plan: &Plan, fds: &Fds) -> ! {
    // SAFETY: only async-signal-safe calls on memory prepared before fork.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        mounts(plan, fds);
        check(
            fds,
            libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len()),
            Stage::Hostname,
        );
        if !plan.network {
            loopback_up(plan);
        }
        libc::setsid();
        let pid = libc::fork();
        check(fds, pid, Stage::ForkCmd);
        if pid == 0 {
            command(plan, fds);
        }
        libc::close(fds.err_w);
        libc::close(fds.out_w);
        libc::close(fds.errout_w);
        // Reap everything; when the command ends, so does the namespace (PID 1 exiting kills
        // whatever it left behind, such as daemons a package script started).
        loop {
            let mut st: c_int = 0;
            let r = libc::waitpid(-1, &mut st, 0);
            if r == pid {
                libc::_exit(exit_code(st));
            }
            if r < 0 && errno() != libc::EINTR {
                libc::_exit(127);
            }
        }
    }
}

/// The guest root as `/`: private propagation, bind, nodev/nosuid, /proc, /dev, read-only
/// binds, pivot_root, old root detached.
fn mounts(plan: &Plan, fds: &Fds) {
    let n = null();
    check(
        fds,
        mount(n, c"/".as_ptr(), n, libc::MS_REC | libc::MS_PRIVATE, n),
        Stage::Private,
    );
    let root = plan.root.as_ptr();
    check(fds, mount(root, root, n, libc::MS_BIND, n), Stage::BindRoot);
    let rf = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV | plan.root_locked;
    check(fds, mount(n, root, n, rf, n), Stage::RemountRoot);
    let pf = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    check(
        fds,
        mount(
            c"proc".as_ptr(),
            plan.proc_t.as_ptr(),
            c"proc".as_ptr(),
            pf,
            n,
        ),
        Stage::Proc,
    );
    check(
        fds,
        mount(
            c"tmpfs".as_ptr(),
            plan.dev_t.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            c"mode=0755,size=64k".as_ptr(),
        ),
        Stage::DevTmpfs,
    );
    for (host, target) in &plan.devs {
        // SAFETY: valid C strings.
        let fd = unsafe {
            libc::open(
                target.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o666,
            )
        };
        check(fds, fd, Stage::DevNode);
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        check(
            fds,
            mount(host.as_ptr(), target.as_ptr(), n, libc::MS_BIND, n),
            Stage::DevBind,
        );
    }
    for b in &plan.binds {
        check(
            fds,
            mount(b.host.as_ptr(), b.target.as_ptr(), n, libc::MS_BIND, n),
            Stage::Bind,
        );
        let f = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | b.locked;
        check(fds, mount(n, b.target.as_ptr(), n, f, n), Stage::BindRo);
    }
    // SAFETY: valid C strings; pivot_root(".", ".") stacks the old root on the new one.
    unsafe {
        check(fds, libc::chdir(root), Stage::PivotRoot);
        let r = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int;
        check(fds, r, Stage::PivotRoot);
        check(
            fds,
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            Stage::DetachOld,
        );
        check(fds, libc::chdir(c"/".as_ptr()), Stage::DetachOld);
    }
}

/// Brings `lo` up in the new network namespace (best effort).
fn loopback_up(plan: &Plan) {
    // SAFETY: socket/ioctl on a stack copy of the prepared ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut ifr = plan.lo_req;
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(s);
    }
}

/// The command: stdio, no new privileges, seccomp, exec.
fn command(plan: &Plan, fds: &Fds) -> ! {
    // SAFETY: only async-signal-safe calls on memory prepared before fork.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        check(fds, libc::dup2(fds.null_r, 0), Stage::Stdio);
        check(fds, libc::dup2(fds.out_w, 1), Stage::Stdio);
        check(fds, libc::dup2(fds.errout_w, 2), Stage::Stdio);
        // Nothing of diskfab's (the image file, other pipes) crosses exec.
        if libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as c_int) != 0 {
            for fd in 3..4096 {
                if fd != fds.err_w {
                    libc::close(fd);
                }
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::umask(0o022);
        check(
            fds,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            Stage::NoNewPrivs,
        );
        let prog = libc::sock_fprog {
            len: plan.filter.len() as u16,
            filter: plan.filter.as_ptr() as *mut libc::sock_filter,
        };
        check(
            fds,
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as c_ulong,
                &prog as *const libc::sock_fprog as c_ulong,
                0,
                0,
            ),
            Stage::Seccomp,
        );
        let mut saved = libc::ENOENT;
        for cand in &plan.candidates {
            libc::execve(
                cand.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
            let e = errno();
            if e != libc::ENOENT && e != libc::ENOTDIR {
                saved = e;
            }
        }
        *libc::__errno_location() = saved;
        fail(fds, Stage::Exec)
    }
}
