//! End-to-end: `diff`, `delta create|show|apply` and `build` on pairs made with the reference
//! tools (mke2fs -d from two trees differing in known ways; the debootstrap Debian image),
//! checked with qemu-img, e2fsck and the kernel (loop mount, `diff -r`, stat).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(script: &str, dir: &Path) {
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two trees that differ in every way a diff must see, made into ext4 images by mke2fs -d.
fn pair(work: &Path, b_block: &str) -> (PathBuf, PathBuf) {
    sh(
        "mkdir -p A/etc A/d/empty A/x A/t A/keep
         echo one > A/etc/a.txt; echo same > A/etc/same; echo gone > A/etc/gone
         ln -s target1 A/etc/link; echo hl > A/x/h1; echo f > A/t/file; mkfifo A/keep/fifo
         cp -a A B
         echo two > B/etc/a.txt; rm B/etc/gone; echo new > B/etc/new; ln -sfn target2 B/etc/link
         chmod 600 B/etc/same; chown 1000:1000 B/x/h1; ln B/x/h1 B/x/h2
         rmdir B/d/empty; mkdir B/d/empty2; setfattr -n user.k -v val B/etc/same
         rm B/t/file; rmdir B/t; echo nowfile > B/t
         head -c 300000 /dev/urandom > B/etc/big.bin",
        work,
    );
    let a = work.join("a.raw");
    let b = work.join("b.raw");
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-d",
            work.join("A").to_str().unwrap(),
            a.to_str().unwrap(),
            "64M",
        ],
    );
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-b",
            b_block,
            "-d",
            work.join("B").to_str().unwrap(),
            b.to_str().unwrap(),
            "64M",
        ],
    );
    (a, b)
}

const EXPECTED: &[(&str, &str, &str)] = &[
    ("removed", "dir", "/d/empty"),
    ("added", "dir", "/d/empty2"),
    ("modified", "file", "/etc/a.txt"),
    ("added", "file", "/etc/big.bin"),
    ("removed", "file", "/etc/gone"),
    ("modified", "symlink", "/etc/link"),
    ("added", "file", "/etc/new"),
    ("modified", "file", "/etc/same"),
    ("type-changed", "file", "/t"),
    ("removed", "file", "/t/file"),
    ("modified", "file", "/x/h1"),
    ("added", "file", "/x/h2"),
];

fn changes(out: &str) -> Vec<(String, String, String, Vec<String>)> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let d = c["details"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (
                c["status"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
                d,
            )
        })
        .collect()
}

fn json_diff(args: &[&str]) -> String {
    let o = diskfab(args);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn diff_reports_exactly_the_known_changes_across_block_sizes_and_formats() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = pair(work.path(), "1024");
    let bq = work.path().join("b.qcow2");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "qcow2",
            b.to_str().unwrap(),
            bq.to_str().unwrap(),
        ],
    );
    for bb in [&b, &bq] {
        let out = json_diff(&[
            "diff",
            "--json",
            "--xattrs",
            a.to_str().unwrap(),
            bb.to_str().unwrap(),
        ]);
        let got = changes(&out);
        let short: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|(s, k, p, _)| (s.as_str(), k.as_str(), p.as_str()))
            .collect();
        assert_eq!(short, EXPECTED);
        let details = |p: &str| got.iter().find(|c| c.2 == p).unwrap().3.clone();
        assert_eq!(details("/etc/a.txt"), vec!["content"]);
        assert_eq!(details("/etc/link"), vec!["target target1→target2"]);
        assert_eq!(details("/etc/same"), vec!["mode 644→600", "xattrs user.k"]);
        assert_eq!(
            details("/x/h1"),
            vec!["owner 0:0→1000:1000", "hard links []→[\"/x/h2\"]"]
        );
    }
    // Identical images: exit 0 and nothing listed.
    let o = diskfab(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    // --content shows a unified diff of the small text file; --csv is parseable.
    let out = json_diff(&[
        "diff",
        "--json",
        "--content",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ])
    .to_string();
    assert!(out.contains("-one") && out.contains("+two"), "{out}");
    let csv = String::from_utf8_lossy(
        &diskfab(&["diff", "--csv", a.to_str().unwrap(), b.to_str().unwrap()]).stdout,
    )
    .into_owned();
    assert!(csv.starts_with("status,type,path,details\n") && csv.contains("added,file,/etc/new,"));
}

fn mounted(img: &Path, work: &Path, name: &str) -> Mount {
    let raw = work.join(name);
    to_raw(img, &raw);
    let len = std::fs::metadata(&raw).unwrap().len();
    e2fsck_clean(&raw, 0, len);
    Mount::ext(&raw, 0, len)
}

fn stat_list(root: &Path) -> String {
    let o = Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U:%G %s %l %n\n"])
        .current_dir(root)
        .output()
        .unwrap();
    // Directory sizes depend on the block size, not on the contents.
    let mut l: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|x| {
            let mut f: Vec<&str> = x.split(' ').collect();
            if f[1] == "d" {
                f[4] = "-";
            }
            f.join(" ")
        })
        .collect();
    l.sort();
    l.join("\n")
}

#[test]
fn applying_a_delta_reproduces_b_and_refuses_conflicts_and_damage() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (a, b) = pair(w, "4096");
    let delta = w.join("ab.delta");
    ok(&[
        "delta",
        "create",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        delta.to_str().unwrap(),
    ]);
    let show = ok(&["delta", "show", "--json", delta.to_str().unwrap()]);
    assert!(show.contains("\"/etc/new\""), "{show}");
    let a_sha = sha(&a);
    let ov = w.join("a2.qcow2");
    ok(&["create", ov.to_str().unwrap(), "-b", a.to_str().unwrap()]);
    ok(&[
        "delta",
        "apply",
        ov.to_str().unwrap(),
        delta.to_str().unwrap(),
    ]);
    assert_eq!(sha(&a), a_sha, "the base is never written");
    let check = tool("qemu-img", &["check", ov.to_str().unwrap()]);
    assert!(check.contains("No errors were found"));
    // diskfab sees no difference, nor does the kernel.
    let o = diskfab(&[
        "diff",
        "--xattrs",
        ov.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let (m1, m2) = (mounted(&ov, w, "a2.raw"), mounted(&b, w, "b-copy.raw"));
    tool(
        "diff",
        &[
            "-r",
            "--no-dereference",
            "-x",
            "fifo",
            m1.path().to_str().unwrap(),
            m2.path().to_str().unwrap(),
        ],
    );
    assert_eq!(stat_list(m1.path()), stat_list(m2.path()));
    assert_eq!(
        tool(
            "getfattr",
            &[
                "--only-values",
                "-n",
                "user.k",
                m1.path().join("etc/same").to_str().unwrap()
            ]
        ),
        "val"
    );
    drop((m1, m2));

    // Conflicts: a target whose /etc/a.txt is not A's. Listed, nothing written; with --check
    // that is the question's negative answer (exit 1), without it a refused apply (exit 5).
    let other = w.join("other.qcow2");
    ok(&["create", other.to_str().unwrap(), "-b", a.to_str().unwrap()]);
    ok(&[
        "copy-in",
        other.to_str().unwrap(),
        w.join("B/etc/new").to_str().unwrap(),
        "/etc",
    ]);
    ok(&["rm", other.to_str().unwrap(), "/etc/a.txt"]);
    let before = sha(&other);
    for (extra, code) in [(&[][..], 5), (&["--check"][..], 1)] {
        let mut args = vec![
            "delta",
            "apply",
            "--json",
            other.to_str().unwrap(),
            delta.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = diskfab(&args);
        assert_eq!(o.status.code(), Some(code), "{extra:?}");
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let paths: Vec<&str> = r["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, vec!["/etc/a.txt", "/etc/new"]);
        assert_eq!(sha(&other), before);
    }
    ok(&[
        "delta",
        "apply",
        "--force",
        other.to_str().unwrap(),
        delta.to_str().unwrap(),
    ]);
    assert_eq!(
        diskfab(&["diff", other.to_str().unwrap(), b.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );

    // Damage: every flipped region and every truncation is refused with exit 3, nothing written.
    let good = std::fs::read(&delta).unwrap();
    let fresh = w.join("fresh.qcow2");
    ok(&["create", fresh.to_str().unwrap(), "-b", a.to_str().unwrap()]);
    let fsha = sha(&fresh);
    for (i, cut) in [
        (10usize, None),
        (good.len() / 2, None),
        (good.len() - 40, None),
        (0, Some(good.len() - 1)),
        (0, Some(good.len() / 3)),
    ] {
        let mut bad = good.clone();
        match cut {
            Some(n) => bad.truncate(n),
            None => bad[i] ^= 0x55,
        }
        let p = w.join("bad.delta");
        std::fs::write(&p, &bad).unwrap();
        let o = diskfab(&[
            "delta",
            "apply",
            fresh.to_str().unwrap(),
            p.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha(&fresh), fsha);
    }
}

fn write_delta(path: &Path, entries: &[(diskfab_core::delta::format::Entry, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = diskfab_core::delta::format::Writer::new(f, "hand-made").unwrap();
    for (e, d) in entries {
        w.record(e, d.len() as u64, &mut &d[..]).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn hostile_delta_paths_and_device_nodes_are_refused() {
    use diskfab_core::delta::format::Entry;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    sh(
        "mkdir -p T/etc T/real && ln -s /real T/lnk && echo x > T/etc/f",
        w,
    );
    let img = w.join("t.raw");
    tool(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-d",
            w.join("T").to_str().unwrap(),
            img.to_str().unwrap(),
            "32M",
        ],
    );
    let put = |p: &str, kind: &str| Entry {
        op: "put".into(),
        path: p.into(),
        kind: Some(kind.into()),
        perm: Some(0o644),
        uid: Some(0),
        gid: Some(0),
        ..Default::default()
    };
    let before = sha(&img);
    for (name, e) in [
        ("dotdot", put("/etc/../../x", "file")),
        ("relative", put("etc/x", "file")),
        ("through-symlink", put("/lnk/evil", "file")),
        (
            "device",
            Entry {
                rdev: Some((1, 3)),
                ..put("/dev-null", "char")
            },
        ),
    ] {
        let p = w.join(format!("{name}.delta"));
        write_delta(&p, &[(e, b"data")]);
        let o = diskfab(&["delta", "apply", img.to_str().unwrap(), p.to_str().unwrap()]);
        assert!(!o.status.success(), "{name} was accepted");
        assert_eq!(sha(&img), before, "{name}: nothing written");
    }
    // Devices only when asked for.
    let p = w.join("device.delta");
    ok(&[
        "delta",
        "apply",
        "--allow-devices",
        img.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    let ls = ok(&["ls", "-l", img.to_str().unwrap(), "/"]);
    assert!(ls.contains("dev-null"), "{ls}");
}

#[test]
fn clone_fast_path_gives_the_same_answer_as_the_full_comparison() {
    let fix = fixtures();
    let base = fix.join("debian-mbr.qcow2");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let fixdir = fix.to_str().unwrap();
    let c = |n: &str| w.join(n).to_str().unwrap().to_string();
    for n in ["c1.qcow2", "c2.qcow2", "c3.qcow2"] {
        ok(&["create", &c(n), "-b", base.to_str().unwrap()]);
    }
    ok(&[
        "customize",
        "--backing-dir",
        fixdir,
        &c("c1.qcow2"),
        "--hostname",
        "one",
        "--write",
        "/etc/x:1",
        "--chmod",
        "0600:/etc/issue",
    ]);
    ok(&[
        "customize",
        "--backing-dir",
        fixdir,
        &c("c2.qcow2"),
        "--hostname",
        "two",
        "--write",
        "/etc/y:2",
        "--delete",
        "/etc/issue.net",
        "--user-add",
        "bob",
    ]);
    // Same size, different bytes: only the fast path's block tracking can tell.
    ok(&[
        "customize",
        "--backing-dir",
        fixdir,
        &c("c3.qcow2"),
        "--hostname",
        "one",
        "--write",
        "/etc/x:2",
        "--chmod",
        "0600:/etc/issue",
    ]);
    let tree = fix.join("debian-minbase");
    std::fs::write(
        w.join("mod-os-release"),
        std::fs::read_to_string(tree.join("etc/os-release"))
            .unwrap()
            .replace("Debian", "Dexian"),
    )
    .unwrap();
    ok(&[
        "copy-in",
        "--backing-dir",
        fixdir,
        &c("c3.qcow2"),
        w.join("mod-os-release").to_str().unwrap(),
        "/usr/lib",
    ]);
    ok(&[
        "mv",
        "--backing-dir",
        fixdir,
        &c("c3.qcow2"),
        "/usr/lib/mod-os-release",
        "/usr/lib/os-release",
    ]);
    for (x, y) in [
        ("c1.qcow2", "c2.qcow2"),
        ("c1.qcow2", "c3.qcow2"),
        ("c2.qcow2", "c3.qcow2"),
    ] {
        let fast = json_diff(&["diff", "--json", "--backing-dir", fixdir, &c(x), &c(y)]);
        let full = json_diff(&[
            "diff",
            "--json",
            "--no-fast-path",
            "--backing-dir",
            fixdir,
            &c(x),
            &c(y),
        ]);
        let fv: serde_json::Value = serde_json::from_str(&fast).unwrap();
        assert_eq!(fv["fast_path"], true);
        assert_eq!(changes(&fast), changes(&full), "{x} vs {y}");
        assert!(!changes(&fast).is_empty());
    }
    let d13 = changes(&json_diff(&[
        "diff",
        "--json",
        "--backing-dir",
        fixdir,
        &c("c1.qcow2"),
        &c("c3.qcow2"),
    ]));
    let paths: Vec<&str> = d13.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(paths, vec!["/etc/x", "/usr/lib/os-release"], "{d13:?}");
}

#[test]
fn factory_builds_are_reproducible_and_never_touch_their_inputs() {
    let fix = fixtures();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let base = w.join("base.qcow2");
    std::fs::copy(fix.join("debian-mbr.qcow2"), &base).unwrap();
    let after = w.join("after.qcow2");
    ok(&[
        "create",
        after.to_str().unwrap(),
        "-b",
        base.to_str().unwrap(),
    ]);
    ok(&[
        "customize",
        after.to_str().unwrap(),
        "--mkdir",
        "/opt/app",
        "--write",
        "/opt/app/run.sh:echo app",
        "--chmod",
        "0755:/opt/app/run.sh",
    ]);
    ok(&[
        "delta",
        "create",
        base.to_str().unwrap(),
        after.to_str().unwrap(),
        "-o",
        w.join("app.delta").to_str().unwrap(),
    ]);
    std::fs::write(
        w.join("web.toml"),
        "base = \"base.qcow2\"\ndeltas = [\"app.delta\"]\noutput = \"web.qcow2\"\ncompression = \"zstd\"\npassword-crypto = \"sha512\"\nops = [ { hostname = \"web-1\" }, { root-password = \"password:s3cret\" }, { write = \"/etc/motd:built by diskfab\" } ]\n",
    )
    .unwrap();
    let (bsha, dsha) = (sha(&base), sha(&w.join("app.delta")));
    let recipe = w.join("web.toml");
    ok(&["build", recipe.to_str().unwrap()]);
    ok(&[
        "build",
        recipe.to_str().unwrap(),
        "-o",
        w.join("web2.qcow2").to_str().unwrap(),
    ]);
    tool(
        "cmp",
        &[
            w.join("web.qcow2").to_str().unwrap(),
            w.join("web2.qcow2").to_str().unwrap(),
        ],
    );
    ok(&[
        "build",
        recipe.to_str().unwrap(),
        "-O",
        "raw",
        "-o",
        w.join("web.raw").to_str().unwrap(),
    ]);
    ok(&[
        "build",
        recipe.to_str().unwrap(),
        "-O",
        "raw",
        "-o",
        w.join("web2.raw").to_str().unwrap(),
    ]);
    tool(
        "cmp",
        &[
            w.join("web.raw").to_str().unwrap(),
            w.join("web2.raw").to_str().unwrap(),
        ],
    );
    assert_eq!((sha(&base), sha(&w.join("app.delta"))), (bsha, dsha));
    let check = tool(
        "qemu-img",
        &["check", w.join("web.qcow2").to_str().unwrap()],
    );
    assert!(check.contains("No errors were found"));
    let raw = w.join("web.raw");
    let (start, size) = sfdisk_part(&raw, 1);
    e2fsck_clean(&raw, start, size);
    let m = Mount::ext(&raw, start, size);
    assert_eq!(
        std::fs::read_to_string(m.path().join("etc/hostname")).unwrap(),
        "web-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(m.path().join("opt/app/run.sh")).unwrap(),
        "echo app"
    );
    assert_eq!(
        std::fs::read_to_string(m.path().join("etc/motd")).unwrap(),
        "built by diskfab"
    );
    // `size` grows the virtual disk (never shrinks it).
    std::fs::write(
        w.join("big.toml"),
        "base = \"base.qcow2\"\nsize = \"3G\"\nops = [ { hostname = \"big\" } ]\n",
    )
    .unwrap();
    ok(&[
        "build",
        w.join("big.toml").to_str().unwrap(),
        "-o",
        w.join("big.qcow2").to_str().unwrap(),
    ]);
    let info: serde_json::Value = serde_json::from_str(&tool(
        "qemu-img",
        &[
            "info",
            "--output=json",
            w.join("big.qcow2").to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(info["virtual-size"], 3u64 << 30);
    std::fs::write(
        w.join("small.toml"),
        "base = \"base.qcow2\"\nsize = \"1G\"\n",
    )
    .unwrap();
    assert_eq!(
        diskfab(&[
            "build",
            w.join("small.toml").to_str().unwrap(),
            "-o",
            w.join("small.qcow2").to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    // The built output is written once; an existing output is refused.
    let o = diskfab(&["build", recipe.to_str().unwrap()]);
    assert!(!o.status.success());
}
