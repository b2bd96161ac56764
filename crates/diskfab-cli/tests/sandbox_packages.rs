//! End to end on the real Debian 12 image: `--run-command` runs in the sandbox (no host files,
//! no host processes, no network unless asked), and the package operations install and remove
//! real packages with the guest's own dpkg/apt — checked by reading the image back with the
//! kernel (loop mount) and the host's dpkg-query against the image's admindir.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Vm {
    work: tempfile::TempDir,
    fix: PathBuf,
}

impl Vm {
    /// A fresh overlay of the Debian fixture.
    fn new() -> Vm {
        let fix = fixtures();
        let work = tempfile::tempdir().unwrap();
        let base = fix.join("debian-mbr.qcow2");
        ok(&[
            "create",
            work.path().join("vm.qcow2").to_str().unwrap(),
            "-b",
            base.to_str().unwrap(),
        ]);
        Vm { work, fix }
    }
    fn path(&self) -> String {
        self.work.path().join("vm.qcow2").display().to_string()
    }
    /// `diskfab customize --json VM ARGS...`.
    fn customize(&self, args: &[&str]) -> std::process::Output {
        let vm = self.path();
        let mut a = vec![
            "customize",
            "--json",
            "--backing-dir",
            self.fix.to_str().unwrap(),
            &vm,
        ];
        a.extend_from_slice(args);
        diskfab(&a)
    }
    /// The image's root filesystem, mounted read-only by the kernel.
    fn mount(&self) -> Mount {
        let check = tool("qemu-img", &["check", &self.path()]);
        assert!(check.contains("No errors were found"), "{check}");
        let raw = self.work.path().join("vm.raw");
        let _ = std::fs::remove_file(&raw);
        to_raw(Path::new(&self.path()), &raw);
        let (start, size) = sfdisk_part(&raw, 1);
        e2fsck_clean(&raw, start, size);
        Mount::ext(&raw, start, size)
    }
}

fn success(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "diskfab failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// dpkg's own view of `pkg` in the image's package database.
fn dpkg_status(root: &Path, pkg: &str) -> String {
    let o = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `hello` (depends only on libc6) downloaded on the host by apt-get.
fn hello_deb(dir: &Path) -> PathBuf {
    let o = Command::new("apt-get")
        .args(["download", "-q", "hello"])
        .current_dir(dir)
        .output()
        .expect("apt-get");
    assert!(
        o.status.success(),
        "apt-get download hello: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb")
}

#[test]
fn run_command_cannot_read_host_files_see_host_processes_or_reach_the_network() {
    let vm = Vm::new();
    let secret = tempfile::Builder::new()
        .prefix("diskfab-secret-")
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(secret.path(), "host-secret-91c2").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = secret.path().display();
    let script = format!(
        "cat {s} /proc/1/root{s} 2>&1; echo procs=$(ls /proc | grep -c '^[0-9]'); \
         (bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo net=connected || echo net=refused); \
         echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '); \
         perl -e 'mkdir \"/esc\"; chroot \"/esc\"; chdir \"..\" for 1..64; chroot \".\"; \
         print \"escape=\", (open(F, \"<\", \"{s}\") ? \"read \" . <F> : \"blocked\"), \"\\n\"'; \
         rmdir /esc; echo sandboxed > /root/ran.txt"
    );
    let r = success(&vm.customize(&["--run-command", &script]));
    assert_eq!(r["command_output"].as_array().unwrap().len(), 1, "{r}");
    let out = r["command_output"][0].as_str().unwrap();
    assert!(!out.contains("host-secret-91c2"), "{out}");
    assert!(out.contains("No such file"), "{out}");
    // The classic chroot escape (chroot into a subdirectory, climb with `..`, chroot there)
    // reached the host's root under the old chroot runner; after pivot_root there is nothing
    // above the guest's root.
    assert!(out.contains("escape=blocked"), "{out}");
    let procs: u32 = out
        .split("procs=")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // PID 1, sh, and the subshell running ls and grep.
    assert!(procs <= 5, "{out}");
    assert!(
        out.contains("net=refused") && out.contains("ifaces=lo\n"),
        "{out}"
    );
    assert!(listener.accept().is_err(), "the host listener was reached");
    // What the command wrote comes back into the image.
    let m = vm.mount();
    assert_eq!(
        std::fs::read_to_string(m.path().join("root/ran.txt")).unwrap(),
        "sandboxed\n"
    );
    drop(m);
    // With --network the same probe reaches the host listener.
    let r = success(&vm.customize(&[
        "--network",
        "--run-command",
        &format!("bash -c 'echo > /dev/tcp/127.0.0.1/{port}' && echo net=connected"),
    ]));
    assert!(r["command_output"][0]
        .as_str()
        .unwrap()
        .contains("net=connected"));
}

#[test]
fn install_file_then_uninstall_a_real_deb_with_dpkg_as_the_oracle() {
    let vm = Vm::new();
    let deb = hello_deb(vm.work.path());
    let r = success(&vm.customize(&["--install-file", deb.to_str().unwrap()]));
    assert!(
        r["command_output"][0]
            .as_str()
            .unwrap()
            .contains("Setting up hello"),
        "{r}"
    );
    {
        let m = vm.mount();
        assert_eq!(dpkg_status(m.path(), "hello"), "install ok installed");
        assert!(m.path().join("usr/bin/hello").is_file());
        // Nothing of the sandbox's temporary files stays in the image.
        assert!(!m.path().join(".diskfab-install-files").exists());
        assert!(!m.path().join("usr/sbin/policy-rc.d").exists());
    }
    // The installed program runs in the guest.
    let r = success(&vm.customize(&["--run-command", "hello"]));
    assert!(r["command_output"][0]
        .as_str()
        .unwrap()
        .contains("Hello, world!"));
    success(&vm.customize(&["--uninstall", "hello"]));
    let m = vm.mount();
    let st = dpkg_status(m.path(), "hello");
    assert!(
        st.is_empty() || st.starts_with("deinstall ok") || st.contains("not-installed"),
        "{st}"
    );
    assert!(!m.path().join("usr/bin/hello").exists());
}

#[test]
fn install_fetches_a_package_with_the_guest_s_apt_over_the_host_network() {
    let vm = Vm::new();
    let resolv_before = {
        let m = vm.mount();
        std::fs::read(m.path().join("etc/resolv.conf")).ok()
    };
    let o = vm.customize(&["--install", "hello"]);
    let r = success(&o);
    assert!(
        r["command_output"][0]
            .as_str()
            .unwrap()
            .contains("Setting up hello"),
        "{r}"
    );
    let m = vm.mount();
    assert_eq!(dpkg_status(m.path(), "hello"), "install ok installed");
    // The host's resolver configuration was lent for the run only.
    assert_eq!(
        std::fs::read(m.path().join("etc/resolv.conf")).ok(),
        resolv_before
    );
    // apt-get clean ran: no downloaded archives stay in the image.
    let debs = std::fs::read_dir(m.path().join("var/cache/apt/archives"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "deb")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(debs, 0);
}

#[test]
fn no_network_install_is_refused_with_exit_2_and_nothing_written() {
    let vm = Vm::new();
    let before = sha(Path::new(&vm.path()));
    let o = vm.customize(&[
        "--write",
        "/etc/motd:x",
        "--no-network",
        "--install",
        "hello",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--no-network") && err.contains("--install-file"),
        "{err}"
    );
    assert_eq!(sha(Path::new(&vm.path())), before, "the image was written");
    // Option-like package names are refused the same way.
    let o = vm.customize(&["--install", "-oAPT::Get::X=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(sha(Path::new(&vm.path())), before);
}

#[test]
fn stamp_refuses_a_package_operation_after_a_templated_one_before_writing() {
    let fix = fixtures();
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("hosts.csv");
    std::fs::write(&csv, "name\nweb1\nweb2\n").unwrap();
    let out = work.path().join("clones");
    let base = fix.join("debian-mbr.qcow2");
    let o = diskfab(&[
        "stamp",
        base.to_str().unwrap(),
        "--instances",
        csv.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--hostname",
        "{{name}}",
        "--install",
        "hello",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--install") && err.contains("shared layer"),
        "{err}"
    );
    assert!(!out.exists());
}
