//! The sandbox's properties, checked from the host side on a real Debian 12 minbase tree
//! (debootstrap, from scripts/fixtures.sh), hard-linked into a private directory per test.
//! These tests run as root (identity id map); one re-runs itself as `nobody` to cover the
//! unprivileged mapping.

use diskfab_sandbox::{IdMapping, Sandbox, Status};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
    let o = Command::new("bash").arg(script).output().expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// A private copy of the minbase tree (hard links: only new files may be written by tests).
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let tree = fixtures().join("debian-minbase");
        let dir = tempfile::Builder::new()
            .prefix("diskfab-sbx-")
            .tempdir()
            .unwrap();
        let copy = |flags: &str| {
            Command::new("cp")
                .args([flags, "--"])
                .arg(&tree)
                .arg(dir.path().join("root"))
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        // Hard links when the fixtures share the temp filesystem, else a full copy.
        if !copy("-al") {
            let _ = std::fs::remove_dir_all(dir.path().join("root"));
            assert!(copy("-a"));
        }
        Root { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn sandbox(&self) -> Sandbox {
        Sandbox::new(self.path())
    }
}

fn sh(sb: &Sandbox, script: &str) -> (bool, String, String) {
    let o = sb.run(&["/bin/sh", "-c", script]).expect("sandbox run");
    (
        o.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_command_inside_cannot_read_a_host_file() {
    let r = Root::new();
    let secret = tempfile::Builder::new()
        .prefix("diskfab-secret-")
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(secret.path(), "host-secret-7f3a").unwrap();
    let p = secret.path().display().to_string();
    // The guest's own files are there (the sandbox really runs in the guest tree) ...
    let (ok, out, _) = sh(&r.sandbox(), "cat /etc/debian_version");
    assert!(ok && out.starts_with("12."), "{out}");
    // ... the host's are not, by path, through /proc/1/root, or by searching.
    let probe = format!(
        "cat {p}; cat /proc/1/root{p}; cat /proc/self/root{p}; grep -rs host-secret-7f3a /tmp /proc/1/root/tmp; true"
    );
    let (ok, out, err) = sh(&r.sandbox(), &probe);
    assert!(ok);
    assert!(
        !out.contains("host-secret") && !err.contains("host-secret"),
        "{out}{err}"
    );
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn host_processes_are_invisible() {
    let r = Root::new();
    let (ok, out, err) = sh(&r.sandbox(), "ls /proc");
    assert!(ok, "{err}");
    let pids: Vec<u32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(!pids.is_empty() && pids.len() <= 3, "pids inside: {pids:?}");
    assert!(pids.contains(&1));
    assert!(!pids.contains(&std::process::id()) || std::process::id() <= 3);
    let host = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok()
        })
        .count();
    assert!(host > pids.len(), "the host shows {host} processes");
}

fn tcp_probe(network: bool) -> (bool, String) {
    let r = Root::new();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let mut sb = r.sandbox();
    sb.network = network;
    sb.timeout = Some(Duration::from_secs(20));
    let (ok, out, err) = sh(
        &sb,
        &format!(
            "bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo connected; cat /proc/net/dev >&2"
        ),
    );
    assert!(ok, "{err}");
    (out.contains("connected"), err)
}

#[test]
fn without_network_only_lo_exists_and_a_host_listener_is_unreachable() {
    let (connected, netdev) = tcp_probe(false);
    assert!(!connected, "a host listener was reachable from the sandbox");
    let ifaces: Vec<&str> = netdev
        .lines()
        .skip_while(|l| !l.starts_with("Inter-"))
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{netdev}");
}

#[test]
fn with_network_the_host_listener_is_reachable() {
    let (connected, _) = tcp_probe(true);
    assert!(connected);
}

#[test]
fn dev_holds_exactly_the_five_host_nodes() {
    let r = Root::new();
    let (ok, out, err) = sh(
        &r.sandbox(),
        "ls -A /dev; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo wrote",
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["null", "random", "tty", "urandom", "zero"],
        "{out}"
    );
    assert_eq!(lines[5].trim(), "4");
    assert_eq!(lines[6], "wrote");
    assert_eq!(lines.len(), 7);
}

#[test]
fn seccomp_refuses_new_namespaces_and_mounts_with_eperm() {
    let r = Root::new();
    let (_, _, err) = sh(&r.sandbox(), "unshare -U true; echo rc=$? >&2");
    assert!(
        err.contains("Operation not permitted") && err.contains("rc=1"),
        "{err}"
    );
    let (_, _, err) = sh(&r.sandbox(), "mount -t tmpfs none /mnt; echo rc=$? >&2");
    assert!(err.contains("rc=") && !err.contains("rc=0"), "{err}");
    assert!(
        err.contains("ermission denied") || err.contains("not permitted"),
        "{err}"
    );
    // Ordinary process creation still works (clone3 falls back to clone without namespace flags).
    let (ok, out, _) = sh(
        &r.sandbox(),
        "(echo sub) | cat; /bin/true & wait; echo done",
    );
    assert!(ok && out == "sub\ndone\n", "{out}");
}

#[test]
fn files_keep_the_ids_they_are_given() {
    let r = Root::new();
    let (ok, out, err) = sh(
        &r.sandbox(),
        "id -u; touch /root/a /root/b && chown 1000:1001 /root/b && chmod 4755 /root/b",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "0");
    let a = std::fs::metadata(r.path().join("root/a")).unwrap();
    let b = std::fs::metadata(r.path().join("root/b")).unwrap();
    assert_eq!((a.uid(), a.gid()), (0, 0));
    assert_eq!((b.uid(), b.gid()), (1000, 1001));
    assert_eq!(b.mode() & 0o7777, 0o4755);
    assert_eq!(diskfab_sandbox::id_mapping(), IdMapping::Identity);
}

#[test]
fn proc_is_read_only_and_guest_device_nodes_are_inert() {
    let r = Root::new();
    // A device node planted in the guest tree (here: the host's /dev/null, 1:3).
    let st = Command::new("mknod")
        .arg(r.path().join("root/planted"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success());
    let (_, _, err) = sh(
        &r.sandbox(),
        "echo x > /proc/sys/kernel/domainname; echo rc=$? >&2; echo x > /root/planted; echo rc=$? >&2",
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!err.contains("rc=0"), "{err}");
}

#[test]
fn the_hostname_is_the_sandbox_s_own() {
    let r = Root::new();
    let mut sb = r.sandbox();
    sb.hostname = "guest-box".into();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (ok, out, _) = sh(
        &sb,
        "cat /proc/sys/kernel/hostname; hostname 2>/dev/null; true",
    );
    assert!(ok);
    assert!(out.starts_with("guest-box\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

#[test]
fn the_environment_is_clean_and_stdin_is_empty() {
    std::env::set_var("DISKFAB_LEAK_TEST", "leaked");
    let r = Root::new();
    let mut sb = r.sandbox();
    sb.env.push(("EXTRA".into(), "1".into()));
    let (ok, out, _) = sh(&sb, "env | sort; wc -c");
    assert!(ok);
    assert!(!out.contains("DISKFAB_LEAK_TEST"), "{out}");
    for want in [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "LANG=C.UTF-8",
        "DEBIAN_FRONTEND=noninteractive",
        "TERM=dumb",
        "EXTRA=1",
    ] {
        assert!(out.lines().any(|l| l == want), "{want} missing from {out}");
    }
    assert!(out.lines().last() == Some("0"), "{out}");
}

#[test]
fn read_only_binds_are_visible_and_not_writable() {
    let r = Root::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "bound").unwrap();
    let mut sb = r.sandbox();
    sb.binds_ro.push((host.path().to_path_buf(), "/mnt".into()));
    let (_, out, err) = sh(&sb, "cat /mnt/f; echo x > /mnt/g; echo rc=$?");
    assert!(
        out.starts_with("bound") && out.contains("rc=") && !out.contains("rc=0"),
        "{out}{err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!host.path().join("g").exists());
}

#[test]
fn a_symlinked_mount_point_is_refused_not_followed() {
    let r = Root::new();
    let dev = r.path().join("dev");
    std::fs::rename(&dev, r.path().join("dev.orig")).unwrap();
    std::os::unix::fs::symlink("/etc", &dev).unwrap();
    let e = r.sandbox().run(&["/bin/true"]).unwrap_err();
    assert!(matches!(e, diskfab_storage::Error::Denied(_)), "{e}");
    assert!(e.to_string().contains("dev"), "{e}");
}

#[test]
fn the_timeout_kills_the_whole_namespace() {
    let r = Root::new();
    let mut sb = r.sandbox();
    sb.timeout = Some(Duration::from_millis(500));
    let t = Instant::now();
    let o = sb.run(&["/bin/sh", "-c", "sleep 30 & sleep 30"]).unwrap();
    assert_eq!(o.status, Status::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_command_is_a_clear_failure() {
    let r = Root::new();
    let e = r.sandbox().run(&["no-such-tool", "x"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("could not be started inside the guest"),
        "{e}"
    );
    let o = r.sandbox().run(&["sh", "-c", "exit 7"]).unwrap();
    assert_eq!(o.status, Status::Exited(7));
}

/// Re-runs one test of this binary as `nobody` (unprivileged user namespaces).
#[test]
fn unprivileged_callers_are_root_inside_with_a_single_id() {
    if std::env::var_os("DISKFAB_SBX_UNPRIV").is_some() {
        let root = PathBuf::from(std::env::var("DISKFAB_SBX_UNPRIV").unwrap());
        let sb = Sandbox::new(root);
        assert_eq!(diskfab_sandbox::id_mapping(), IdMapping::CallerAsRoot);
        let (ok, out, err) = sh(
            &sb,
            "id -u; ls /proc | grep -c '^[0-9]'; chown 1000 /tmp 2>&1; echo rc=$?",
        );
        assert!(ok, "{err}");
        let l: Vec<&str> = out.lines().collect();
        assert_eq!(l[0], "0", "{out}");
        // PID 1, sh, ls, grep.
        assert!(l[1].parse::<u32>().unwrap() <= 4, "{out}");
        assert!(
            out.contains("rc=1"),
            "chown to an unmapped id must fail: {out}"
        );
        return;
    }
    let r = Root::new();
    // nobody must be able to reach the tree.
    for p in [r.dir.path(), &r.path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(exe)
        .args([
            "--exact",
            "unprivileged_callers_are_root_inside_with_a_single_id",
            "--nocapture",
        ])
        .env("DISKFAB_SBX_UNPRIV", r.path())
        .output()
        .expect("setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}
