//! End-to-end: `stamp` and `customize` on the real Debian image, checked with independent
//! readers — qemu-img check, e2fsck -fn on the flattened raw, the kernel's ext4 driver (loop
//! mount), getfattr, and libxcrypt (Python's crypt) for password hashes.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a mounted tree holds, per path (times excluded).
type Tree = BTreeMap<String, String>;

fn snapshot(root: &Path) -> Tree {
    let mut t = Tree::new();
    walk(root, root, &mut t);
    let xa = std::process::Command::new("getfattr")
        .args(["-R", "-d", "-h", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(root)
        .output()
        .expect("getfattr (attr)");
    let text = String::from_utf8_lossy(&xa.stdout).into_owned();
    let mut cur = String::new();
    for l in text.lines() {
        if let Some(p) = l.strip_prefix("# file: ") {
            cur = p[root.to_str().unwrap().len()..].to_string();
        } else if !l.is_empty() {
            t.entry(cur.clone()).and_modify(|e| {
                e.push_str(" xattr:");
                e.push_str(l);
            });
        }
    }
    t
}

fn walk(root: &Path, dir: &Path, t: &mut Tree) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.to_str().unwrap()[root.to_str().unwrap().len()..].to_string();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_file() {
            let d = std::fs::read(&p).unwrap();
            format!("file {} {}", d.len(), blake(&d))
        } else if m.is_dir() {
            "dir".into()
        } else {
            format!("node {:x}", m.rdev())
        };
        t.insert(
            rel,
            format!("{what} mode={:o} owner={}:{}", m.mode(), m.uid(), m.gid()),
        );
        if m.is_dir() {
            walk(root, &p, t);
        }
    }
}

fn blake(d: &[u8]) -> String {
    // A cheap content fingerprint (FNV-1a 64) — equality is what matters here.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in d {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Verifies `password` against a crypt(3) hash with libxcrypt (Python's crypt module).
fn crypt_ok(password: &str, hash: &str) -> bool {
    let o = std::process::Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; sys.exit(0 if crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2] else 1)",
            password,
            hash,
        ])
        .output()
        .expect("python3");
    o.status.success()
}

/// Flattens `img`, checks it with qemu-img and e2fsck, mounts its root partition.
fn check_and_mount(img: &Path, work: &Path) -> Mount {
    let check = tool("qemu-img", &["check", img.to_str().unwrap()]);
    assert!(check.contains("No errors were found"), "{check}");
    let raw = work.join(format!(
        "{}.raw",
        img.file_name().unwrap().to_str().unwrap()
    ));
    let _ = std::fs::remove_file(&raw);
    to_raw(img, &raw);
    let (start, size) = sfdisk_part(&raw, 1);
    e2fsck_clean(&raw, start, size);
    Mount::ext(&raw, start, size)
}

fn shadow_hash(root: &Path, user: &str) -> String {
    let s = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    s.lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .to_string()
}

struct Row {
    name: String,
    password: String,
    ip: String,
    key: String,
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            // Host names and passwords of very different lengths.
            name: format!("n{i}{}", "-ab".repeat((i * 7) % 19)),
            password: format!("p{i}{}", "Zq9,!:".repeat(i % 9)),
            ip: format!("10.{}.{}.{}", i % 3, i / 50, 2 + i % 50),
            key: format!(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} user{i}@host",
                "x".repeat(i)
            ),
        })
        .collect()
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from("name,password,ip,key\n");
    for r in rows {
        s += &format!("{},\"{}\",{},{}\n", r.name, r.password, r.ip, r.key);
    }
    s
}

const OPS: &[(&str, &str)] = &[
    ("--user-add", "deploy:groups=sudo"),
    ("--write", "/etc/motd:Managed by diskfab"),
    ("--hostname", "{{name}}"),
    ("--root-password", "password:{{password}}"),
    ("--password", "deploy:password:{{password}}x"),
    ("--ssh-inject", "root:string:{{key}}"),
    ("--network-static", "eth0:{{ip}}/8:10.0.0.1:10.0.0.2"),
    ("--write", "/etc/app/id:{{name}} {{ip}}"),
];

fn render(s: &str, r: &Row) -> String {
    s.replace("{{name}}", &r.name)
        .replace("{{password}}", &r.password)
        .replace("{{ip}}", &r.ip)
        .replace("{{key}}", &r.key)
}

#[test]
fn stamped_clones_equal_independent_customizations_file_by_file() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let base_sha = sha(&base);
    let work = tempfile::tempdir().unwrap();
    let rows = rows(20);
    let csv_path = work.path().join("hosts.csv");
    std::fs::write(&csv_path, csv(&rows)).unwrap();
    let out = work.path().join("fleet");
    let mut args: Vec<String> = ["stamp", "--json", base.to_str().unwrap(), "--instances"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend([
        csv_path.to_str().unwrap().into(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ]);
    args.extend([
        "--password-crypto".into(),
        "sha512".into(),
        "--verify-replay".into(),
    ]);
    for (f, a) in OPS {
        args.extend([f.to_string(), a.to_string()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let report: serde_json::Value = serde_json::from_str(&ok(&argv)).unwrap();
    let insts = report["instances"].as_array().unwrap();
    assert_eq!(insts.len(), rows.len());
    for (k, i) in insts.iter().enumerate() {
        assert_eq!(
            i["mode"],
            if k == 0 { "recorded" } else { "replayed" },
            "{i}"
        );
        assert!(i["file_bytes"].as_u64().unwrap() <= 256 << 10, "{i}");
    }
    assert!(report["shared_blocks"].as_u64().unwrap() > 0);

    let fixdir = fix.to_str().unwrap().to_string();
    for r in &rows {
        // Independent: a fresh overlay of BASE customized with the same values.
        let ind = work.path().join(format!("ind-{}.qcow2", r.name));
        ok(&[
            "create",
            ind.to_str().unwrap(),
            "-b",
            base.to_str().unwrap(),
        ]);
        let mut a: Vec<String> = vec![
            "customize".into(),
            "--backing-dir".into(),
            fixdir.clone(),
            ind.to_str().unwrap().into(),
            "--password-crypto".into(),
            "sha512".into(),
        ];
        for (f, v) in OPS {
            a.extend([f.to_string(), render(v, r)]);
        }
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>());

        let clone = out.join(format!("{}.qcow2", r.name));
        let m1 = check_and_mount(&clone, work.path());
        let m2 = check_and_mount(&ind, work.path());
        let (t1, t2) = (snapshot(m1.path()), snapshot(m2.path()));
        // Salts differ (random per run), so /etc/shadow is compared field by field with the
        // hashes verified by libxcrypt instead.
        for (p, v) in &t1 {
            if p == "/etc/shadow" {
                continue;
            }
            assert_eq!(Some(v), t2.get(p), "{}: {p} differs", r.name);
        }
        assert_eq!(t1.len(), t2.len(), "{}: trees differ in size", r.name);
        let sh = |m: &Mount| -> Vec<String> {
            std::fs::read_to_string(m.path().join("etc/shadow"))
                .unwrap()
                .lines()
                .map(|l| {
                    let mut f: Vec<&str> = l.split(':').collect();
                    f[1] = if f[1].starts_with('$') { "HASH" } else { f[1] };
                    f.join(":")
                })
                .collect()
        };
        assert_eq!(sh(&m1), sh(&m2));
        for m in [&m1, &m2] {
            assert!(
                crypt_ok(&r.password, &shadow_hash(m.path(), "root")),
                "{}",
                r.name
            );
            assert!(crypt_ok(
                &format!("{}x", r.password),
                &shadow_hash(m.path(), "deploy")
            ));
            let root = m.path();
            assert_eq!(
                std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
                format!("{}\n", r.name)
            );
            let ni = std::fs::read_to_string(root.join("etc/network/interfaces")).unwrap();
            assert!(ni.contains(&format!("address {}/8", r.ip)), "{ni}");
            let ak = std::fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap();
            assert_eq!(ak, format!("{}\n", r.key));
        }
    }
    assert_eq!(sha(&base), base_sha, "the base image must never change");
}

fn stamp_args<'a>(base: &'a str, csv: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "stamp",
        "--json",
        base,
        "--instances",
        csv,
        "--out",
        out,
        "--password-crypto",
        "sha512",
        "--hostname",
        "{{name}}",
        "--root-password",
        "password:{{password}}",
        "--write",
        "/etc/app/id:{{name}} {{ip}}",
    ]
}

#[test]
fn stamp_killed_at_any_moment_completes_when_run_again() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let rows = rows(200);
    let csv_path = work.path().join("hosts.csv");
    std::fs::write(&csv_path, csv(&rows)).unwrap();
    // Kill points: while the shared layer is being built, right after the analysis was
    // saved, and in the middle of writing clones.
    let clones_in = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.ends_with(".qcow2") && !n.starts_with('_') && !n.starts_with('.')
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let mut resumed_mid_write = false;
    for round in 0..3 {
        let out = work.path().join(format!("fleet{round}"));
        let args = stamp_args(
            base.to_str().unwrap(),
            csv_path.to_str().unwrap(),
            out.to_str().unwrap(),
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_diskfab"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        loop {
            let hit = match round {
                0 => out.join(".diskfab-stamp.json").exists(),
                1 => out.join(".diskfab-stamp.plan").exists(),
                _ => clones_in(&out) >= 10,
            };
            if hit || t.elapsed().as_secs() > 60 || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let killed_with = clones_in(&out);
        let report: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(report["instances"].as_array().unwrap().len(), rows.len());
        if round == 2 && killed_with > 0 && killed_with < rows.len() {
            assert_eq!(report["resumed"], true, "{report}");
            resumed_mid_write = true;
        }
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".qcow2"))
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            rows.len() + 1,
            "every clone plus _common.qcow2"
        );
        assert!(!names.iter().any(|n| n.ends_with(".tmp")));
        for (i, r) in rows.iter().enumerate() {
            let img = out.join(format!("{}.qcow2", r.name));
            if i % 20 == 0 {
                let check = tool("qemu-img", &["check", img.to_str().unwrap()]);
                assert!(check.contains("No errors were found"), "{check}");
            }
            let host = ok(&[
                "cat",
                "--backing-dir",
                fix.to_str().unwrap(),
                img.to_str().unwrap(),
                "/etc/hostname",
            ]);
            assert_eq!(host, format!("{}\n", r.name), "round {round}");
            let id = ok(&[
                "cat",
                "--backing-dir",
                fix.to_str().unwrap(),
                img.to_str().unwrap(),
                "/etc/app/id",
            ]);
            assert_eq!(id, format!("{} {}", r.name, r.ip));
        }
        // One clone through the kernel and e2fsck as well.
        let m = check_and_mount(&out.join(format!("{}.qcow2", rows[137].name)), work.path());
        assert!(crypt_ok(
            &rows[137].password,
            &shadow_hash(m.path(), "root")
        ));
        drop(m);
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(
        resumed_mid_write,
        "the kill in the middle of writing clones was not exercised"
    );
}

fn fails_cleanly(args: &[&str], out: &Path, want: &str) {
    let o = diskfab(args);
    assert!(!o.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert!(
        !out.exists(),
        "nothing may be written on bad input ({})",
        out.display()
    );
}

#[test]
fn every_bad_row_of_the_instances_file_is_listed_at_once_with_exit_2() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("fleet");
    let csv_path = work.path().join("bad.csv");
    std::fs::write(
        &csv_path,
        "name,password,ip\n\
         a,x,10.0.0.5\n\
         b_c!,x,10.0.0.6\n\
         a,y,10.0.0.7\n\
         d,x\n\
         e,x,192.168.1.5\n\
         f,x,10.0.0.5\n\
         g,x,10.0.0.8\n",
    )
    .unwrap();
    let mut args = stamp_args(
        base.to_str().unwrap(),
        csv_path.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    args.extend([
        "--network-static",
        "eth0:{{ip}}/24:10.0.0.1",
        "--write",
        "/etc/role:{{role}}",
    ]);
    let o = diskfab(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        "row 1, column role: --write",
        "row 3, column name: clone name \"b_c!\" is not usable",
        "row 4, column name: name \"a\" is already used on row 2",
        "row 5, column ip: missing value",
        "row 6, column ip: --network-static",
        "row 7, column ip: address 10.0.0.5 is also used on row 2",
    ] {
        assert!(err.contains(want), "{want:?} is not in:\n{err}");
    }
    assert!(err.contains("6 problems"), "{err}");
    assert!(
        !err.contains("row 2,") && !err.contains("row 8"),
        "good rows are not reported: {err}"
    );
    assert!(!out.exists(), "nothing is written: {}", out.display());
}

#[test]
fn bad_instances_or_operations_are_refused_before_anything_is_written() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let base_sha = sha(&base);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("fleet");
    let o = out.to_str().unwrap();
    let b = base.to_str().unwrap();
    let cases: &[(&str, &str)] = &[
        ("name,password\na,x\n", "not a column"),
        (
            "name,password,ip\na,x,10.0.0.5\na,y,10.0.0.6\n",
            "already used on row 2",
        ),
        ("name,password,ip\na,x,10.0.0.300\n", "not an IP address"),
        (
            "name,password,ip\na,x,10.0.0.5\nb,y,10.0.0.5\n",
            "also used on row 2",
        ),
        ("name,password,ip\n../x,x,10.0.0.5\n", "not usable"),
        ("name,password,ip\na,x\n", "row 2, column ip: missing value"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let csv_path = work.path().join(format!("bad{i}.csv"));
        std::fs::write(&csv_path, text).unwrap();
        let c = csv_path.to_str().unwrap();
        let mut args = stamp_args(b, c, o);
        args.extend(["--network-static", "eth0:{{ip}}/24:10.0.0.1"]);
        fails_cleanly(&args, &out, want);
    }
    let csv_path = work.path().join("good.csv");
    std::fs::write(&csv_path, "name,password,ip\na,x,10.0.0.5\n").unwrap();
    let c = csv_path.to_str().unwrap();
    let mut args = stamp_args(b, c, o);
    args.extend(["--password", "nosuchuser:password:x"]);
    fails_cleanly(&args, &out, "does not exist");
    // No space: a file larger than the guest filesystem's free space.
    let big = work.path().join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(2 << 30).unwrap();
    let mut args = stamp_args(b, c, o);
    let up = format!("{}:/big-{{{{name}}}}", big.display());
    args.extend(["--upload", &up]);
    let e = diskfab(&args);
    assert!(!e.status.success());
    assert!(!out.exists());
    // An existing directory of another job is refused without --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("something"), "x").unwrap();
    let e = diskfab(&stamp_args(b, c, o));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--force"));
    assert!(out.join("something").exists());
    assert_eq!(sha(&base), base_sha);
}

fn pathbuf(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[test]
fn customize_applies_every_operation_to_a_real_debian_image() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let vm = work.path().join("vm.qcow2");
    ok(&["create", vm.to_str().unwrap(), "-b", base.to_str().unwrap()]);
    let host = work.path().join("hostdir");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/a.txt"), "A").unwrap();
    std::fs::write(work.path().join("up.txt"), "uploaded").unwrap();
    std::fs::write(work.path().join("pw.txt"), "frompass\n").unwrap();
    let up = format!("{}:/etc/up.txt", work.path().join("up.txt").display());
    let ci = format!("{}:/opt", host.display());
    let pwf = format!("file:{}", work.path().join("pw.txt").display());
    let v = vm.to_str().unwrap();
    let fixdir = fix.to_str().unwrap();
    let out = ok(&[
        "customize",
        "--json",
        "--backing-dir",
        fixdir,
        v,
        "--hostname",
        "box.example.com",
        "--root-password",
        &pwf,
        "--user-add",
        "alice:uid=1500,groups=sudo,adm,shell=/bin/sh",
        "--password",
        "alice:password:wonder",
        "--password-crypto",
        "yescrypt",
        "--ssh-inject",
        "alice:string:ssh-ed25519 AAAAkey alice@x",
        "--write",
        "/etc/motd:hello",
        "--append-line",
        "/etc/motd:world",
        "--upload",
        &up,
        "--copy-in",
        &ci,
        "--mkdir",
        "/srv/data/x",
        "--link",
        "/srv/data:/srv/link1:/srv/link2",
        "--move",
        "/srv/data/x:/srv/y",
        "--chmod",
        "0700:/srv/y",
        "--chown",
        "alice.adm:/srv/y",
        "--touch",
        "/etc/touched",
        "--truncate",
        "/etc/issue",
        "--delete",
        "/etc/issue.net",
        "--timezone",
        "Europe/Paris",
        "--network-static",
        "eth0:192.168.7.9/24:192.168.7.1:1.1.1.1",
        "--firstboot-command",
        "touch /root/firstboot-ran",
        "--reset",
        "machine-id,logfiles,bash-history,ssh-hostkeys",
        "--run-command",
        "echo from-chroot > /root/ran.txt; chmod 0640 /root/ran.txt; rm -f /etc/debian_version",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(r["command_output"].as_array().is_some());
    let m = check_and_mount(&vm, work.path());
    let root = m.path();
    let rd = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(rd("etc/hostname"), "box.example.com\n");
    assert!(rd("etc/hosts").contains("127.0.1.1\tbox.example.com box"));
    assert!(crypt_ok("frompass", &shadow_hash(root, "root")));
    let ah = shadow_hash(root, "alice");
    assert!(ah.starts_with("$y$") && crypt_ok("wonder", &ah));
    assert!(rd("etc/passwd").contains("alice:x:1500:1500::/home/alice:/bin/sh"));
    assert!(rd("etc/group")
        .lines()
        .any(|l| l.starts_with("sudo:") && l.ends_with("alice")));
    assert!(rd("etc/gshadow").lines().any(|l| l.starts_with("alice:")));
    assert_eq!(meta("home/alice/.bashrc").uid(), 1500);
    assert_eq!(meta("home/alice").mode() & 0o7777, 0o700);
    assert_eq!(
        rd("home/alice/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAkey alice@x\n"
    );
    assert_eq!(
        meta("home/alice/.ssh/authorized_keys").mode() & 0o777,
        0o600
    );
    assert_eq!(meta("home/alice/.ssh").uid(), 1500);
    assert_eq!(rd("etc/motd"), "hello\nworld\n");
    assert_eq!(rd("etc/up.txt"), "uploaded");
    assert_eq!(rd("opt/hostdir/sub/a.txt"), "A");
    assert_eq!(
        std::fs::read_link(root.join("srv/link2")).unwrap(),
        pathbuf("/srv/data")
    );
    assert!(meta("srv/y").is_dir() && !root.join("srv/data/x").exists());
    assert_eq!(meta("srv/y").mode() & 0o7777, 0o700);
    assert_eq!((meta("srv/y").uid(), meta("srv/y").gid()), (1500, 4));
    assert_eq!(meta("etc/touched").len(), 0);
    assert_eq!(meta("etc/issue").len(), 0);
    assert!(!root.join("etc/issue.net").exists());
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).unwrap(),
        pathbuf("/usr/share/zoneinfo/Europe/Paris")
    );
    assert_eq!(rd("etc/timezone"), "Europe/Paris\n");
    let ni = rd("etc/network/interfaces");
    assert!(ni.contains("iface eth0 inet static") && ni.contains("address 192.168.7.9/24"));
    assert!(ni.contains("gateway 192.168.7.1"));
    assert_eq!(rd("etc/resolv.conf"), "nameserver 1.1.1.1\n");
    assert!(
        rd("usr/lib/diskfab/firstboot/scripts/0001-command").contains("touch /root/firstboot-ran")
    );
    assert!(root
        .join("etc/rc2.d/S99diskfab-firstboot")
        .symlink_metadata()
        .is_ok());
    assert_eq!(meta("var/log/dpkg.log").len(), 0);
    assert_eq!(rd("root/ran.txt"), "from-chroot\n");
    assert_eq!(meta("root/ran.txt").mode() & 0o777, 0o640);
    assert!(
        !root.join("etc/debian_version").exists(),
        "run-command deletions come back"
    );
}

#[test]
fn network_static_is_written_in_each_guest_format() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let cases = [
        (
            "netplan",
            "/etc/netplan/90-diskfab-eth0.yaml",
            "addresses: [\"10.1.2.3/24\"]",
        ),
        (
            "networkd",
            "/etc/systemd/network/10-diskfab-eth0.network",
            "Address=10.1.2.3/24",
        ),
        (
            "networkmanager",
            "/etc/NetworkManager/system-connections/diskfab-eth0.nmconnection",
            "address1=10.1.2.3/24,10.1.2.1",
        ),
        (
            "ifcfg",
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "IPADDR=10.1.2.3",
        ),
        ("ifupdown", "/etc/network/interfaces", "address 10.1.2.3/24"),
    ];
    for (fmt, file, want) in cases {
        let vm = work.path().join(format!("{fmt}.qcow2"));
        let v = vm.to_str().unwrap();
        ok(&["create", v, "-b", base.to_str().unwrap()]);
        ok(&[
            "customize",
            "--backing-dir",
            fix.to_str().unwrap(),
            v,
            "--network-format",
            fmt,
            "--network-static",
            "eth0:10.1.2.3/24:10.1.2.1:9.9.9.9",
        ]);
        let m = check_and_mount(&vm, work.path());
        let text = std::fs::read_to_string(m.path().join(&file[1..])).unwrap();
        assert!(text.contains(want), "{fmt}: {text}");
        assert!(text.contains("9.9.9.9"), "{fmt}: DNS in {text}");
    }
}

#[test]
fn dry_run_plans_without_writing() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let vm = work.path().join("vm.qcow2");
    let v = vm.to_str().unwrap();
    ok(&["create", v, "-b", base.to_str().unwrap()]);
    let before = sha(&vm);
    let out = ok(&[
        "customize",
        "--json",
        "--backing-dir",
        fix.to_str().unwrap(),
        v,
        "--dry-run",
        "--hostname",
        "dry",
        "--write",
        "/etc/x:y",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["actions"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(sha(&vm), before);
    let e = diskfab(&[
        "customize",
        "--backing-dir",
        fix.to_str().unwrap(),
        v,
        "--hostname",
        "bad_name!",
    ]);
    assert_eq!(e.status.code(), Some(2));
    assert_eq!(sha(&vm), before, "a bad argument writes nothing");
}

fn tiny_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=debian\n").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
}

fn stamp_three(base: &Path, csv: &Path, out: &Path, write: &str) -> serde_json::Value {
    let w = format!("{write}:{{{{name}}}}");
    serde_json::from_str(&ok(&[
        "stamp",
        "--json",
        base.to_str().unwrap(),
        "--instances",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--password-crypto",
        "sha512",
        "--verify-replay",
        "--hostname",
        "{{name}}",
        "--root-password",
        "password:{{password}}",
        "--write",
        &w,
    ]))
    .unwrap()
}

const THREE: [&str; 3] = ["alpha", "bravo-long-name", "charlie"];

#[test]
fn stamp_replays_inline_data_ext4_and_records_each_instance_with_templated_paths() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    tiny_tree(&tree);
    let raw = work.path().join("inline.raw");
    let t = tree.to_str().unwrap();
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-O",
            "inline_data",
            "-d",
            t,
            raw.to_str().unwrap(),
            "32M",
        ],
    );
    let csv_path = work.path().join("h.csv");
    std::fs::write(
        &csv_path,
        "name,password\nalpha,pw1\nbravo-long-name,pw2\ncharlie,pw33333\n",
    )
    .unwrap();
    for (case, extra) in [("fixed", "/etc/app/id"), ("paths", "/etc/app/{{name}}.id")] {
        let out = work.path().join(format!("out-{case}"));
        let report = stamp_three(&raw, &csv_path, &out, extra);
        for (i, name) in THREE.iter().enumerate() {
            let want = match (case, i) {
                ("fixed", 0) | ("paths", _) => "recorded",
                _ => "replayed",
            };
            assert_eq!(report["instances"][i]["mode"], want, "{report}");
            let img = out.join(format!("{name}.qcow2"));
            let check = tool("qemu-img", &["check", img.to_str().unwrap()]);
            assert!(check.contains("No errors were found"), "{check}");
            let flat = work.path().join(format!("{case}-{name}.raw"));
            to_raw(&img, &flat);
            let len = std::fs::metadata(&flat).unwrap().len();
            e2fsck_clean(&flat, 0, len);
            let m = Mount::ext(&flat, 0, len);
            assert_eq!(
                std::fs::read_to_string(m.path().join("etc/hostname")).unwrap(),
                format!("{name}\n")
            );
            let p = extra.replace("{{name}}", name);
            assert_eq!(
                std::fs::read_to_string(m.path().join(&p[1..])).unwrap(),
                *name
            );
        }
    }
}

#[test]
fn stamp_falls_back_to_full_customization_where_blocks_cannot_be_replayed() {
    // FAT has no inode records to patch: the analysis must say so and redo each instance.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    tiny_tree(&tree);
    let raw = work.path().join("fat.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    tool("mkfs.vfat", &[raw.to_str().unwrap()]);
    let r = raw.to_str().unwrap();
    tool(
        "mcopy",
        &[
            "-s",
            "-i",
            r,
            tree.join("etc").to_str().unwrap(),
            tree.join("root").to_str().unwrap(),
            "::/",
        ],
    );
    let csv_path = work.path().join("h.csv");
    std::fs::write(
        &csv_path,
        "name,password\nalpha,pw1\nbravo-long-name,pw2\ncharlie,pw33333\n",
    )
    .unwrap();
    let out = work.path().join("out");
    let report = stamp_three(&raw, &csv_path, &out, "/etc/app/id");
    assert!(
        report["groups"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("plain blocks"),
        "{report}"
    );
    for (i, name) in THREE.iter().enumerate() {
        assert_eq!(report["instances"][i]["mode"], "redone", "{report}");
        let img = out.join(format!("{name}.qcow2"));
        let flat = work.path().join(format!("{name}.raw"));
        to_raw(&img, &flat);
        let f = flat.to_str().unwrap();
        tool("fsck.vfat", &["-n", f]);
        assert_eq!(
            tool("mtype", &["-i", f, "::/etc/hostname"]),
            format!("{name}\n")
        );
        assert_eq!(tool("mtype", &["-i", f, "::/etc/app/id"]), *name);
    }
}
