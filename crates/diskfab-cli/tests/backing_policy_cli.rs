//! The backing-file trust policy from the command line (issue 12, findings 1 and 2): a hostile
//! overlay placed anywhere cannot make any command read a host file (exit 6, nothing written,
//! nothing leaked), and every overlay diskfab writes opens later with no flags, wherever it is.
//! Every child runs with a temporary HOME, so the trust key never touches the real one.

mod common;
use common::tool;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SECRET: &[u8] = b"id_rsa:-----BEGIN OPENSSH PRIVATE KEY-----not-a-real-key\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// diskfab with `home` as HOME and no inherited trust settings, plus `env`.
fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_diskfab"));
    c.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DISKFAB_TRUST_KEY")
        .env_remove("DISKFAB_BACKING_DIRS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run diskfab")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = run(home, args, &[]);
    assert!(
        o.status.success(),
        "diskfab {args:?} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts exit 6 and that none of `secrets` appears in stdout or stderr; returns stderr.
fn refused(home: &Path, args: &[&str], secrets: &[&[u8]]) -> String {
    let o = run(home, args, &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(6), "diskfab {args:?}: {err}");
    for sec in secrets {
        for out in [&o.stdout, &o.stderr] {
            assert!(
                !out.windows(sec.len()).any(|w| w == *sec),
                "diskfab {args:?} leaked a secret"
            );
        }
    }
    err
}

fn qemu_overlay(p: &Path, backing: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-u",
            "-b",
            backing,
            s(p),
            "1M",
        ],
    );
}

/// The first line of /etc/shadow, if readable (we run as root in CI).
fn shadow_head() -> Option<Vec<u8>> {
    let b = std::fs::read("/etc/shadow").ok()?;
    let n = b
        .iter()
        .position(|&c| c == b'\n')
        .unwrap_or(b.len())
        .min(24);
    (n >= 8).then(|| b[..n].to_vec())
}

#[test]
fn hostile_raw_backing_overlays_anywhere_are_refused_with_exit_6_and_leak_nothing() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_rsa");
    let mut sec = SECRET.to_vec();
    sec.resize(1 << 20, b'=');
    std::fs::write(&key, &sec).unwrap();
    let root_dir = tempfile::Builder::new()
        .prefix("diskfab-test-")
        .tempdir_in("/")
        .unwrap();
    let tmp_dir = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let shadow = shadow_head();
    let mut secrets: Vec<&[u8]> = vec![b"not-a-real-key"];
    if let Some(h) = &shadow {
        secrets.push(h);
    }
    let places = [
        root_dir.path().join("x.qcow2"),
        tmp_dir.path().join("x.qcow2"),
        home.join("x.qcow2"),
        home.join("Downloads/a/b/x.qcow2"),
    ];
    for p in &places {
        let rel = if p.starts_with(&home) {
            let depth = p.strip_prefix(&home).unwrap().components().count() - 1;
            format!("{}.ssh/id_rsa", "../".repeat(depth))
        } else {
            s(&key).to_string()
        };
        for backing in [s(&key), rel.as_str(), "/etc/shadow"] {
            qemu_overlay(p, backing);
            let out = p.with_file_name("out.raw");
            let dest = p.with_file_name("dest");
            std::fs::create_dir_all(&dest).unwrap();
            let e = refused(&home, &["convert", s(p), s(&out), "-O", "raw"], &secrets);
            assert!(!out.exists(), "convert left {}", out.display());
            for want in [
                s(p),
                "--backing-dir",
                "--allow-any-backing",
                "DISKFAB_BACKING_DIRS",
            ] {
                assert!(e.contains(want), "{want:?} missing: {e}");
            }
            refused(&home, &["cat", s(p), "/etc/passwd"], &secrets);
            refused(&home, &["copy-out", s(p), "/etc", s(&dest)], &secrets);
            refused(&home, &["info", s(p)], &secrets);
            refused(&home, &["--json", "info", s(p)], &secrets);
            assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        }
    }
    // The same overlay opens once the user names the secret's directory, each way.
    let p = &places[3];
    qemu_overlay(p, s(&key));
    let out = p.with_file_name("trusted.raw");
    // (global flags, environment) that trust the secret's directory.
    type Way<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let ways: [Way; 3] = [
        (&["--backing-dir", s(&ssh)], &[]),
        (&[], &[("DISKFAB_BACKING_DIRS", s(&ssh))]),
        (&["--allow-any-backing"], &[]),
    ];
    for (flags, env) in ways {
        let _ = std::fs::remove_file(&out);
        let mut args = flags.to_vec();
        args.extend(["convert", s(p), s(&out), "-O", "raw"]);
        let o = run(&home, &args, env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read(&out).unwrap() == sec);
    }
}

#[test]
fn devices_fifos_and_proc_files_are_refused_even_with_allow_any_backing() {
    let t = tempfile::tempdir().unwrap();
    tool("mkfifo", &[s(&t.path().join("fifo"))]);
    for target in [s(&t.path().join("fifo")), "/dev/zero", "/proc/self/environ"] {
        let p = t.path().join("x.qcow2");
        qemu_overlay(&p, target);
        let out = t.path().join("o.raw");
        let args = [
            "--allow-any-backing",
            "convert",
            s(&p),
            s(&out),
            "-O",
            "raw",
        ];
        refused(t.path(), &args, &[b"PATH="]);
        assert!(!out.exists());
    }
}

/// A small ext4 raw image made by mke2fs from a tree.
fn ext4_base(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("root")).unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=debian\n").unwrap();
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(tree.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
    std::fs::write(tree.join("etc/hostname"), "base\n").unwrap();
    let raw = dir.join("base.raw");
    tool(
        "mke2fs",
        &["-q", "-t", "ext4", "-d", s(&tree), s(&raw), "16M"],
    );
    raw
}

fn qemu_clean(p: &Path) {
    let c = tool("qemu-img", &["check", s(p)]);
    assert!(c.contains("No errors were found"), "{c}");
}

fn qemu_same(a: &Path, b: &Path) {
    tool("qemu-img", &["compare", "-q", s(a), s(b)]);
}

#[test]
fn overlays_diskfab_writes_open_later_with_no_flags_wherever_they_are() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let images = t.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let raw = ext4_base(&images);
    let q = images.join("base.qcow2");
    ok(&home, &["convert", s(&raw), s(&q), "-O", "qcow2"]);
    let note = t.path().join("note.txt");
    std::fs::write(&note, "hello from the host\n").unwrap();
    // clone, of a raw and of a qcow2 base, into an unrelated directory.
    for (i, base) in [&raw, &q].into_iter().enumerate() {
        let out = t.path().join(format!("srv/clones{i}"));
        ok(&home, &["clone", s(base), "--count", "2", "--out", s(&out)]);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let (c1, c2) = (&names[0], &names[1]);
        ok(&home, &["copy-in", s(c1), s(&note), "/root"]);
        assert_eq!(
            ok(&home, &["cat", s(c1), "/root/note.txt"]),
            "hello from the host\n"
        );
        assert_eq!(ok(&home, &["cat", s(c2), "/etc/hostname"]), "base\n");
        qemu_clean(c1);
        qemu_clean(c2);
        qemu_same(c2, &raw);
        let flat = t.path().join(format!("flat{i}.raw"));
        ok(&home, &["convert", s(c1), s(&flat), "-O", "raw"]);
        qemu_same(c1, &flat);
    }
    // create -b, then convert -o backing= of a changed clone, elsewhere again.
    let c = t.path().join("else/where/c.qcow2");
    std::fs::create_dir_all(c.parent().unwrap()).unwrap();
    ok(&home, &["create", s(&c), "-b", s(&raw)]);
    ok(&home, &["copy-in", s(&c), s(&note), "/etc"]);
    assert_eq!(
        ok(&home, &["cat", s(&c), "/etc/note.txt"]),
        "hello from the host\n"
    );
    qemu_clean(&c);
    let conv = t.path().join("conv/d.qcow2");
    std::fs::create_dir_all(conv.parent().unwrap()).unwrap();
    let o = format!("backing={}", s(&raw));
    ok(
        &home,
        &["convert", s(&c), s(&conv), "-O", "qcow2", "-o", &o],
    );
    assert_eq!(
        ok(&home, &["cat", s(&conv), "/etc/note.txt"]),
        "hello from the host\n"
    );
    qemu_clean(&conv);
    qemu_same(&conv, &c);
    // stamp: _common.qcow2 over the raw base, one overlay per row.
    let csv = t.path().join("i.csv");
    std::fs::write(&csv, "name\nalpha\nbravo\n").unwrap();
    let st = t.path().join("stamped/out");
    std::fs::create_dir_all(st.parent().unwrap()).unwrap();
    ok(
        &home,
        &[
            "stamp",
            s(&raw),
            "--instances",
            s(&csv),
            "--out",
            s(&st),
            "--hostname",
            "{{name}}",
        ],
    );
    for n in ["alpha", "bravo"] {
        let p = st.join(format!("{n}.qcow2"));
        assert_eq!(
            ok(&home, &["cat", s(&p), "/etc/hostname"]),
            format!("{n}\n")
        );
        qemu_clean(&p);
    }
    qemu_clean(&st.join("_common.qcow2"));
    // The key was made on first use: private, in a private directory.
    let key = home.join(".config/diskfab/trust.key");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&key), mode(key.parent().unwrap())), (0o600, 0o700));
    assert_eq!(std::fs::metadata(&key).unwrap().len(), 32);
    // Another user's key (another HOME) does not trust these overlays' raw bases.
    let other = t.path().join("other-home");
    std::fs::create_dir_all(&other).unwrap();
    let e = refused(&other, &["cat", s(&c), "/etc/hostname"], &[]);
    assert!(e.contains("trust mark"), "{e}");
}

#[test]
fn without_a_usable_key_overlays_are_unmarked_and_the_error_says_why() {
    let t = tempfile::tempdir().unwrap();
    let images = t.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let raw = ext4_base(&images);
    // HOME is a regular file: no key can be created under it.
    let home = t.path().join("not-a-dir");
    std::fs::write(&home, "").unwrap();
    let out = t.path().join("clones");
    ok(&home, &["clone", s(&raw), "--count", "1", "--out", s(&out)]);
    let c = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let e = refused(&home, &["cat", s(&c), "/etc/hostname"], &[]);
    assert!(e.contains("trust mark") && e.contains("key"), "{e}");
    let args = ["--backing-dir", s(&images), "cat", s(&c), "/etc/hostname"];
    assert_eq!(ok(&home, &args), "base\n");
}

/// A differencing VHD: disk type 4 in both footer copies, a parent name, checksums fixed.
fn vhd_differencing(p: &Path) {
    let sum = |b: &[u8], at: usize| {
        !b.iter()
            .enumerate()
            .filter(|(i, _)| !(at..at + 4).contains(i))
            .fold(0u32, |a, (_, &x)| a.wrapping_add(u32::from(x)))
    };
    let mut b = std::fs::read(p).unwrap();
    let n = b.len();
    for at in [0, n - 512] {
        b[at + 60..at + 64].copy_from_slice(&4u32.to_be_bytes());
        let c = sum(&b[at..at + 512], 64);
        b[at + 64..at + 68].copy_from_slice(&c.to_be_bytes());
    }
    let dh = u64::from_be_bytes(b[16..24].try_into().unwrap()) as usize;
    let name: Vec<u8> = "parent.vhd"
        .encode_utf16()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    b[dh + 64..dh + 64 + name.len()].copy_from_slice(&name);
    let c = sum(&b[dh..dh + 1024], 36);
    b[dh + 36..dh + 40].copy_from_slice(&c.to_be_bytes());
    std::fs::write(p, b).unwrap();
}

/// A differencing VHDX: the HasParent flag in the file parameters metadata item.
fn vhdx_differencing(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let table = b.windows(8).position(|w| w == b"metadata").unwrap();
    let fp: [u8; 16] = [
        0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7,
        0x6b,
    ];
    let e = table
        + b[table..table + 65536]
            .windows(16)
            .position(|w| w == fp)
            .unwrap();
    let off = u32::from_le_bytes(b[e + 16..e + 20].try_into().unwrap()) as usize;
    b[table + off + 4] |= 2;
    std::fs::write(p, b).unwrap();
}

#[test]
fn differencing_vhd_and_vhdx_are_refused_and_no_other_file_is_opened() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for (fmt, name, patch) in [
        ("vpc", "diff.vhd", vhd_differencing as fn(&Path)),
        ("vhdx", "diff.vhdx", vhdx_differencing),
    ] {
        let p = d.join(name);
        tool("qemu-img", &["create", "-q", "-f", fmt, s(&p), "4M"]);
        patch(&p);
        std::fs::write(d.join("parent.vhd"), vec![1u8; 4 << 20]).unwrap();
        std::fs::write(d.join("parent.vhdx"), vec![1u8; 4 << 20]).unwrap();
        let log = d.join(format!("{fmt}.strace"));
        let o = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=open,openat,openat2",
                "-o",
                s(&log),
            ])
            .arg(env!("CARGO_BIN_EXE_diskfab"))
            .args(["info", s(&p)])
            .env("HOME", d)
            .output()
            .expect("strace (scripts/deps.sh installs it)");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{err}");
        assert!(err.contains("differencing"), "{err}");
        let trace = std::fs::read_to_string(&log).unwrap();
        assert!(trace.contains(name), "strace saw nothing: {trace}");
        assert!(!trace.contains("parent"), "a parent was opened: {trace}");
    }
}
