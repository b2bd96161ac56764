//! The exit-code table of docs/cli.md, pinned for every command: 0 success, 1 a negative answer
//! (only from the commands that ask a question), 2 usage, 3 bad image, 4 host I/O, 5 the
//! operation failed, 6 refused by the trust policy; `check` keeps qemu-img's 0/1/2/3.
//! Images are made by mkfs.ext4 and qemu-img, damaged by byte patches.

mod common;

use common::{diskfab, ok, tool};
use std::path::{Path, PathBuf};

/// Shared inputs: an ext4 image with a small Debian-like tree, a second one that differs, a
/// hostile qcow2 header, a host file and a delta from the first image to the second.
struct World {
    _t: tempfile::TempDir,
    dir: PathBuf,
}

fn ext4(dir: &Path, name: &str, hello: &str) -> PathBuf {
    let tree = dir.join(format!("{name}.tree"));
    for d in ["etc", "d"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(tree.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(tree.join("hello.txt"), hello).unwrap();
    let img = dir.join(name);
    let s = img.to_str().unwrap();
    tool("truncate", &["-s", "32M", s]);
    tool("mkfs.ext4", &["-q", "-F", "-d", tree.to_str().unwrap(), s]);
    img
}

impl World {
    fn new() -> World {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let a = ext4(&dir, "base.img", "hi\n");
        let b = ext4(&dir, "other.img", "changed\n");
        let mut bad = b"QFI\xfb\0\0\0\x03".to_vec();
        bad.resize(65536, 0);
        std::fs::write(dir.join("bad.qcow2"), bad).unwrap();
        std::fs::write(dir.join("host.txt"), "from the host\n").unwrap();
        let delta = dir.join("ab.delta");
        ok(&[
            "delta",
            "create",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "-o",
            delta.to_str().unwrap(),
        ]);
        World { _t: t, dir }
    }

    /// Runs one case in its own directory: placeholders become paths, `{img}` a fresh copy
    /// of the base image. Returns the exit code and stderr.
    fn run(&self, n: usize, args: &[&str]) -> (i32, String) {
        let case = self.dir.join(format!("case{n}"));
        std::fs::create_dir_all(&case).unwrap();
        let d = |p: &str| self.dir.join(p).to_str().unwrap().to_string();
        let c = |p: &str| case.join(p).to_str().unwrap().to_string();
        let img = c("img.raw");
        tool("cp", &["--sparse=always", &d("base.img"), &img]);
        std::fs::write(case.join("ok.csv"), "name\nvm1\nvm2\n").unwrap();
        std::fs::write(case.join("bad.csv"), "name\nvm1\nvm1\n").unwrap();
        std::fs::write(
            case.join("recipe.toml"),
            format!(
                "base = {:?}\noutput = \"built.qcow2\"\nops = [ {{ mkdir = \"/x\" }} ]\n",
                d("base.img")
            ),
        )
        .unwrap();
        std::fs::write(case.join("bad-recipe.toml"), "base = \n").unwrap();
        let subst = |a: &str| {
            a.replace("{img}", &img)
                .replace("{other}", &d("other.img"))
                .replace("{bad}", &d("bad.qcow2"))
                .replace("{missing}", &c("missing.qcow2"))
                .replace("{host}", &d("host.txt"))
                .replace("{delta}", &d("ab.delta"))
                .replace("{cat}", &c("catalog.db"))
                .replace("{case}", &c(""))
        };
        let args: Vec<String> = args.iter().map(|a| subst(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = diskfab(&args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

/// (what, arguments, exit code): reads like the table in docs/cli.md.
type Case = (&'static str, &'static [&'static str], i32);

const OK: i32 = 0;
const NO: i32 = 1;
const USAGE: i32 = 2;
const BAD_IMAGE: i32 = 3;
const HOST_IO: i32 = 4;
const FAILED: i32 = 5;
/// `check` only: the check could not complete.
const CHECK_FAILED: i32 = 1;

const CASES: &[Case] = &[
    // create
    ("create", &["create", "{case}new.qcow2", "1M"], OK),
    (
        "create",
        &["create", "{case}new.qcow2", "1M", "-o", "nosuch=1"],
        USAGE,
    ),
    (
        "create",
        &["create", "{case}new.qcow2", "-b", "{bad}"],
        BAD_IMAGE,
    ),
    (
        "create",
        &["create", "{case}new.qcow2", "-b", "{missing}"],
        HOST_IO,
    ),
    ("create", &["create", "{img}", "1M"], FAILED),
    // clone
    (
        "clone",
        &["clone", "{img}", "-n", "2", "-o", "{case}clones"],
        OK,
    ),
    (
        "clone",
        &["clone", "{img}", "-n", "0", "-o", "{case}clones"],
        USAGE,
    ),
    (
        "clone",
        &["clone", "{bad}", "-n", "1", "-o", "{case}clones"],
        BAD_IMAGE,
    ),
    (
        "clone",
        &["clone", "{missing}", "-n", "1", "-o", "{case}clones"],
        HOST_IO,
    ),
    // info
    ("info", &["info", "{img}"], OK),
    ("info", &["info"], USAGE),
    ("info", &["info", "{bad}"], BAD_IMAGE),
    ("info", &["info", "{missing}"], HOST_IO),
    // ls
    ("ls", &["ls", "{img}", "/etc"], OK),
    ("ls", &["ls", "{img}", "--nosuch"], USAGE),
    ("ls", &["ls", "{bad}"], BAD_IMAGE),
    ("ls", &["ls", "{missing}"], HOST_IO),
    ("ls", &["ls", "{img}", "/nosuch"], FAILED),
    ("ls", &["ls", "{img}", "-p", "7"], FAILED),
    // cat
    ("cat", &["cat", "{img}", "/hello.txt"], OK),
    ("cat", &["cat", "{img}"], USAGE),
    ("cat", &["cat", "{bad}", "/hello.txt"], BAD_IMAGE),
    ("cat", &["cat", "{missing}", "/hello.txt"], HOST_IO),
    ("cat", &["cat", "{img}", "/nosuch"], FAILED),
    // copy-in
    ("copy-in", &["copy-in", "{img}", "{host}", "/d"], OK),
    ("copy-in", &["copy-in", "{img}", "{host}"], USAGE),
    ("copy-in", &["copy-in", "{bad}", "{host}", "/d"], BAD_IMAGE),
    ("copy-in", &["copy-in", "{img}", "{missing}", "/d"], HOST_IO),
    (
        "copy-in",
        &["copy-in", "{img}", "{host}", "/nosuch"],
        FAILED,
    ),
    // copy-out
    (
        "copy-out",
        &["copy-out", "{img}", "/hello.txt", "{case}"],
        OK,
    ),
    ("copy-out", &["copy-out", "{img}", "/hello.txt"], USAGE),
    (
        "copy-out",
        &["copy-out", "{bad}", "/hello.txt", "{case}"],
        BAD_IMAGE,
    ),
    (
        "copy-out",
        &["copy-out", "{missing}", "/hello.txt", "{case}"],
        HOST_IO,
    ),
    (
        "copy-out",
        &["copy-out", "{img}", "/nosuch", "{case}"],
        FAILED,
    ),
    // mkdir
    ("mkdir", &["mkdir", "{img}", "/new"], OK),
    ("mkdir", &["mkdir", "{img}", "/new", "-m", "9z"], USAGE),
    ("mkdir", &["mkdir", "{bad}", "/new"], BAD_IMAGE),
    ("mkdir", &["mkdir", "{missing}", "/new"], HOST_IO),
    ("mkdir", &["mkdir", "{img}", "/d"], FAILED),
    // rm
    ("rm", &["rm", "{img}", "/hello.txt"], OK),
    ("rm", &["rm", "{img}"], USAGE),
    ("rm", &["rm", "{bad}", "/hello.txt"], BAD_IMAGE),
    ("rm", &["rm", "{missing}", "/hello.txt"], HOST_IO),
    ("rm", &["rm", "{img}", "/nosuch"], FAILED),
    // chmod
    ("chmod", &["chmod", "{img}", "0600", "/hello.txt"], OK),
    ("chmod", &["chmod", "{img}", "rwx", "/hello.txt"], USAGE),
    (
        "chmod",
        &["chmod", "{bad}", "0600", "/hello.txt"],
        BAD_IMAGE,
    ),
    (
        "chmod",
        &["chmod", "{missing}", "0600", "/hello.txt"],
        HOST_IO,
    ),
    ("chmod", &["chmod", "{img}", "0600", "/nosuch"], FAILED),
    // chown
    ("chown", &["chown", "{img}", "root:root", "/hello.txt"], OK),
    ("chown", &["chown", "{img}", "root"], USAGE),
    ("chown", &["chown", "{bad}", "0:0", "/hello.txt"], BAD_IMAGE),
    (
        "chown",
        &["chown", "{missing}", "0:0", "/hello.txt"],
        HOST_IO,
    ),
    (
        "chown",
        &["chown", "{img}", "nosuchuser", "/hello.txt"],
        FAILED,
    ),
    // ln
    ("ln", &["ln", "{img}", "-s", "/hello.txt", "/link"], OK),
    ("ln", &["ln", "{img}", "-s", "/hello.txt"], USAGE),
    (
        "ln",
        &["ln", "{bad}", "-s", "/hello.txt", "/link"],
        BAD_IMAGE,
    ),
    (
        "ln",
        &["ln", "{missing}", "-s", "/hello.txt", "/link"],
        HOST_IO,
    ),
    ("ln", &["ln", "{img}", "-s", "/x", "/nosuch/link"], FAILED),
    // mv
    ("mv", &["mv", "{img}", "/hello.txt", "/d/moved.txt"], OK),
    ("mv", &["mv", "{img}", "/hello.txt"], USAGE),
    ("mv", &["mv", "{bad}", "/hello.txt", "/x"], BAD_IMAGE),
    ("mv", &["mv", "{missing}", "/hello.txt", "/x"], HOST_IO),
    ("mv", &["mv", "{img}", "/nosuch", "/x"], FAILED),
    // mkfs
    ("mkfs", &["mkfs", "{img}", "-t", "vfat"], OK),
    ("mkfs", &["mkfs", "{img}", "-t", "nosuchfs"], USAGE),
    ("mkfs", &["mkfs", "{bad}", "-t", "vfat"], BAD_IMAGE),
    ("mkfs", &["mkfs", "{missing}", "-t", "vfat"], HOST_IO),
    ("mkfs", &["mkfs", "{img}", "-p", "3", "-t", "vfat"], FAILED),
    // part
    (
        "part",
        &["part", "{img}", "--gpt", "--add", "size=rest,type=linux"],
        OK,
    ),
    (
        "part",
        &["part", "{img}", "--add", "size=1M,type=nosuch"],
        USAGE,
    ),
    ("part", &["part", "{bad}", "--gpt"], BAD_IMAGE),
    ("part", &["part", "{missing}", "--gpt"], HOST_IO),
    // convert
    ("convert", &["convert", "{img}", "{case}out.qcow2"], OK),
    (
        "convert",
        &["convert", "{img}", "{case}out.qcow2", "-o", "nosuch=1"],
        USAGE,
    ),
    (
        "convert",
        &["convert", "{bad}", "{case}out.qcow2"],
        BAD_IMAGE,
    ),
    (
        "convert",
        &["convert", "{missing}", "{case}out.qcow2"],
        HOST_IO,
    ),
    ("convert", &["convert", "{img}", "{other}"], FAILED),
    // compare: a question
    ("compare", &["compare", "{img}", "{img}"], OK),
    ("compare", &["compare", "{img}", "{other}"], NO),
    ("compare", &["compare", "{img}"], USAGE),
    ("compare", &["compare", "{img}", "{bad}"], BAD_IMAGE),
    ("compare", &["compare", "{img}", "{missing}"], HOST_IO),
    // check: qemu-img's codes (corruptions and leaks are in the test below)
    ("check", &["check", "{img}"], OK),
    ("check", &["check"], CHECK_FAILED),
    ("check", &["check", "{bad}"], CHECK_FAILED),
    ("check", &["check", "{missing}"], CHECK_FAILED),
    // map
    ("map", &["map", "{img}"], OK),
    ("map", &["map"], USAGE),
    ("map", &["map", "{bad}"], BAD_IMAGE),
    ("map", &["map", "{missing}"], HOST_IO),
    // measure
    ("measure", &["measure", "{img}"], OK),
    (
        "measure",
        &["measure", "{img}", "--cluster-size", "lots"],
        USAGE,
    ),
    ("measure", &["measure", "{bad}"], BAD_IMAGE),
    ("measure", &["measure", "{missing}"], HOST_IO),
    // inspect
    ("inspect", &["inspect", "{img}"], OK),
    ("inspect", &["inspect", "{img}", "--xml", "--json"], USAGE),
    ("inspect", &["inspect", "{bad}"], BAD_IMAGE),
    ("inspect", &["inspect", "{missing}"], HOST_IO),
    // customize
    ("customize", &["customize", "{img}", "--mkdir", "/x"], OK),
    ("customize", &["customize", "{img}"], USAGE),
    (
        "customize",
        &["customize", "{bad}", "--mkdir", "/x"],
        BAD_IMAGE,
    ),
    (
        "customize",
        &["customize", "{missing}", "--mkdir", "/x"],
        HOST_IO,
    ),
    (
        "customize",
        &["customize", "{img}", "--upload", "{missing}:/x"],
        HOST_IO,
    ),
    (
        "customize",
        &[
            "customize",
            "{img}",
            "--delete",
            "/nosuch/x",
            "--chmod",
            "0600:/nosuch",
        ],
        FAILED,
    ),
    // stamp
    (
        "stamp",
        &[
            "stamp",
            "{img}",
            "--instances",
            "{case}ok.csv",
            "-o",
            "{case}st",
            "--write",
            "/etc/motd:{{name}}",
        ],
        OK,
    ),
    (
        "stamp",
        &[
            "stamp",
            "{img}",
            "--instances",
            "{case}bad.csv",
            "-o",
            "{case}st",
            "--write",
            "/etc/motd:{{name}}",
        ],
        USAGE,
    ),
    (
        "stamp",
        &[
            "stamp",
            "{bad}",
            "--instances",
            "{case}ok.csv",
            "-o",
            "{case}st",
            "--write",
            "/m:{{name}}",
        ],
        BAD_IMAGE,
    ),
    (
        "stamp",
        &[
            "stamp",
            "{img}",
            "--instances",
            "{missing}",
            "-o",
            "{case}st",
            "--write",
            "/m:{{name}}",
        ],
        HOST_IO,
    ),
    // diff: a question
    ("diff", &["diff", "{img}", "{img}"], OK),
    ("diff", &["diff", "{img}", "{other}"], NO),
    (
        "diff",
        &["diff", "{img}", "{other}", "--csv", "--json"],
        USAGE,
    ),
    ("diff", &["diff", "{img}", "{bad}"], BAD_IMAGE),
    ("diff", &["diff", "{img}", "{missing}"], HOST_IO),
    ("diff", &["diff", "{img}", "{other}", "-p", "4"], FAILED),
    // delta create / show / apply (apply --check is a question)
    (
        "delta create",
        &["delta", "create", "{img}", "{other}", "-o", "{case}d"],
        OK,
    ),
    (
        "delta create",
        &["delta", "create", "{img}", "{other}"],
        USAGE,
    ),
    (
        "delta create",
        &["delta", "create", "{img}", "{bad}", "-o", "{case}d"],
        BAD_IMAGE,
    ),
    (
        "delta create",
        &["delta", "create", "{img}", "{missing}", "-o", "{case}d"],
        HOST_IO,
    ),
    (
        "delta create",
        &["delta", "create", "{img}", "{other}", "-o", "{host}"],
        FAILED,
    ),
    ("delta show", &["delta", "show", "{delta}"], OK),
    ("delta show", &["delta", "show"], USAGE),
    ("delta show", &["delta", "show", "{bad}"], BAD_IMAGE),
    ("delta show", &["delta", "show", "{missing}"], HOST_IO),
    ("delta apply", &["delta", "apply", "{img}", "{delta}"], OK),
    (
        "delta apply",
        &["delta", "apply", "{img}", "{delta}", "--check"],
        OK,
    ),
    (
        "delta apply",
        &["delta", "apply", "{other}", "{delta}", "--check"],
        NO,
    ),
    ("delta apply", &["delta", "apply", "{img}"], USAGE),
    (
        "delta apply",
        &["delta", "apply", "{bad}", "{delta}"],
        BAD_IMAGE,
    ),
    (
        "delta apply",
        &["delta", "apply", "{img}", "{missing}"],
        HOST_IO,
    ),
    (
        "delta apply",
        &["delta", "apply", "{other}", "{delta}"],
        FAILED,
    ),
    // build
    ("build", &["build", "{case}recipe.toml"], OK),
    ("build", &["build", "{case}bad-recipe.toml"], USAGE),
    ("build", &["build", "{missing}"], HOST_IO),
    // catalog (search is a question)
    (
        "catalog add",
        &["catalog", "--catalog", "{cat}", "add", "{img}"],
        OK,
    ),
    (
        "catalog add",
        &[
            "catalog",
            "--catalog",
            "{cat}",
            "add",
            "{img}",
            "--tag",
            "notatag",
        ],
        USAGE,
    ),
    (
        "catalog add",
        &["catalog", "--catalog", "{cat}", "add", "{bad}"],
        BAD_IMAGE,
    ),
    (
        "catalog add",
        &["catalog", "--catalog", "{cat}", "add", "{missing}"],
        HOST_IO,
    ),
    (
        "catalog list",
        &["catalog", "--catalog", "{cat}", "list"],
        OK,
    ),
    (
        "catalog search",
        &["catalog", "--catalog", "{cat}", "search", "distro=nosuch"],
        NO,
    ),
    (
        "catalog search",
        &["catalog", "--catalog", "{cat}", "search"],
        USAGE,
    ),
    (
        "catalog show",
        &["catalog", "--catalog", "{cat}", "show", "7"],
        FAILED,
    ),
    (
        "catalog remove",
        &["catalog", "--catalog", "{cat}", "remove", "7"],
        FAILED,
    ),
    (
        "catalog untag",
        &["catalog", "--catalog", "{cat}", "untag", "7", "k"],
        FAILED,
    ),
    // docs
    ("docs", &["docs"], OK),
    ("docs", &["docs", "extra"], USAGE),
    // no verb, unknown verb
    ("(none)", &[], USAGE),
    ("(unknown)", &["nosuchverb"], USAGE),
];

#[test]
fn every_command_exits_with_the_code_of_the_documented_table() {
    let w = World::new();
    let mut wrong = Vec::new();
    for (n, (what, args, want)) in CASES.iter().enumerate() {
        let (got, err) = w.run(n, args);
        if got != *want {
            wrong.push(format!(
                "{what}: {args:?}: exit {got}, want {want}: {}",
                err.trim()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_verb_of_the_cli_has_cases_for_success_and_usage_errors() {
    let help = ok(&["--help"]);
    let verbs: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .collect();
    assert!(verbs.len() >= 25, "{verbs:?}");
    for v in verbs {
        let codes: Vec<i32> = CASES
            .iter()
            .filter(|(w, ..)| w.split(' ').next() == Some(v))
            .map(|c| c.2)
            .collect();
        let usage = if v == "check" { CHECK_FAILED } else { USAGE };
        assert!(
            codes.contains(&OK) && codes.contains(&usage),
            "{v}: {codes:?}"
        );
    }
}

#[test]
fn json_errors_carry_the_exit_code() {
    let w = World::new();
    for (args, want) in [
        (&["--json", "info", "{missing}"][..], HOST_IO),
        (&["--json", "info", "{bad}"][..], BAD_IMAGE),
        (&["--json", "ls", "{img}", "/nosuch"][..], FAILED),
        (&["--json", "info"][..], USAGE),
        (&["--json", "check", "{bad}"][..], 1),
        (&["--json", "check"][..], 1),
    ] {
        let case = w.dir.join("json");
        std::fs::create_dir_all(&case).unwrap();
        let a: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{missing}", case.join("missing").to_str().unwrap())
                    .replace("{bad}", w.dir.join("bad.qcow2").to_str().unwrap())
                    .replace("{img}", w.dir.join("base.img").to_str().unwrap())
            })
            .collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = diskfab(&a);
        assert_eq!(o.status.code(), Some(want), "{a:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{a:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)));
        assert_eq!(v["exit_code"], want, "{a:?}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
}

/// A qcow2 made by qemu with data at 0 and 1 MiB; returns (bytes, cluster size, refcount
/// block offset, offset of the first data cluster).
fn qcow2(dir: &Path) -> (Vec<u8>, usize, usize, usize) {
    let p = dir.join("q.qcow2");
    let s = p.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", s, "4M"]);
    tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x11 0 64k",
            "-c",
            "write -P 0x22 1M 64k",
            s,
        ],
    );
    let b = std::fs::read(&p).unwrap();
    let be = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let cs = 1usize << u32::from_be_bytes(b[20..24].try_into().unwrap());
    let mask = 0x00ff_ffff_ffff_fe00usize;
    let (l1, rt) = (be(40), be(48));
    let (rb, l2) = (be(rt), be(l1) & mask);
    let data0 = be(l2) & mask;
    (b, cs, rb, data0)
}

fn qemu_check(p: &Path) -> i32 {
    std::process::Command::new("qemu-img")
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

#[test]
fn check_keeps_qemu_img_meanings_0_clean_1_could_not_check_2_corrupt_3_leaks() {
    let t = tempfile::tempdir().unwrap();
    let (b, cs, rb, data0) = qcow2(t.path());
    let write = |name: &str, bytes: &[u8]| {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let clean = write("clean.qcow2", &b);
    // A cluster past the end whose refcount is 1: a leak.
    let mut leak = b.clone();
    let used = leak.len() / cs;
    leak.resize(leak.len() + cs, 0);
    leak[rb + 2 * used..rb + 2 * used + 2].copy_from_slice(&1u16.to_be_bytes());
    let leak = write("leak.qcow2", &leak);
    // The first data cluster's refcount zeroed: a corruption.
    let mut corrupt = b.clone();
    let at = rb + 2 * (data0 / cs);
    corrupt[at..at + 2].copy_from_slice(&[0, 0]);
    let corrupt = write("corrupt.qcow2", &corrupt);
    // The header cut short: the check cannot complete.
    let cut = write("cut.qcow2", &b[..40]);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let missing = t.path().join("missing.qcow2");
    for (what, args, want) in [
        ("clean", vec!["check".to_string(), s(&clean)], 0),
        ("leaks only", vec!["check".into(), s(&leak)], 3),
        ("corrupt", vec!["check".into(), s(&corrupt)], 2),
        ("unreadable header", vec!["check".into(), s(&cut)], 1),
        ("missing file", vec!["check".into(), s(&missing)], 1),
        ("no image", vec!["check".into()], 1),
        (
            "unknown option",
            vec!["check".into(), "--nosuch".into(), s(&clean)],
            1,
        ),
        (
            "global option first",
            vec!["--json".into(), "check".into()],
            1,
        ),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = diskfab(&a);
        assert_eq!(
            o.status.code(),
            Some(want),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The same images give qemu-img the same answers.
    for (p, want) in [(&clean, 0), (&leak, 3), (&corrupt, 2), (&cut, 1)] {
        assert_eq!(qemu_check(p), want, "qemu-img check {}", p.display());
    }
}

/// A qcow2 whose raw backing file is a "secret" in an unrelated directory: reading it needs
/// the user's explicit trust, so every reading command is refused with exit 6.
#[test]
fn untrusted_raw_backing_file_exits_6() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, vec![b's'; 1 << 20]).unwrap();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("x.qcow2");
    let i = img.to_str().unwrap();
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            secret.to_str().unwrap(),
            "-u",
            i,
            "1M",
        ],
    );
    let out = t.path().join("out.raw");
    for args in [
        vec!["convert", i, out.to_str().unwrap(), "-O", "raw"],
        vec!["info", i],
        vec!["map", i],
        vec!["compare", i, i],
    ] {
        let o = diskfab(&args);
        assert_eq!(
            o.status.code(),
            Some(6),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(!out.exists(), "nothing written");
}
