//! Oracle: our `file_contexts` lookup against libselinux's own `selabel_lookup_raw` (through
//! ctypes, tests/selabel_oracle.py) on Debian's reference policy (`selinux-policy-default`,
//! fixture from scripts/fixture_selinux.sh): every path of the Debian minbase tree with its
//! real file type, plus paths instantiated from every spec of the policy and from its aliases,
//! under several file types.

use diskfab_customize::selinux::{mode, Policy};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
    let o = Command::new("bash")
        .arg(script)
        .output()
        .expect("run fixtures.sh");
    assert!(
        o.status.success(),
        "fixtures.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

fn load(dir: &Path) -> Policy {
    let fc = dir.join("file_contexts");
    let base = std::fs::read(&fc).expect("fixture file_contexts (scripts/fixture_selinux.sh)");
    let side = |s: &str| read(&dir.join(format!("file_contexts.{s}")));
    let (home, local) = (side("homedirs"), side("local"));
    let mut files: Vec<(&str, &[u8])> = vec![("file_contexts", &base)];
    if let Some(h) = &home {
        files.push(("homedirs", h));
    }
    if let Some(l) = &local {
        files.push(("local", l));
    }
    Policy::parse(
        &files,
        side("subs").as_deref(),
        side("subs_dist").as_deref(),
    )
    .unwrap()
}

fn tree_paths(root: &Path, out: &mut BTreeSet<(u32, Vec<u8>)>) {
    use std::os::unix::ffi::OsStrExt;
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let m = if ft.is_dir() {
                todo.push(p.clone());
                mode::DIR
            } else if ft.is_symlink() {
                mode::LNK
            } else if ft.is_char_device() {
                mode::CHR
            } else if ft.is_block_device() {
                mode::BLK
            } else if ft.is_fifo() {
                mode::FIFO
            } else if ft.is_socket() {
                mode::SOCK
            } else {
                mode::REG
            };
            let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes();
            let mut key = b"/".to_vec();
            key.extend_from_slice(rel);
            out.insert((m, key));
        }
    }
}

/// A path that spec regex `re` (probably) matches; `k` picks among a few shapes.
fn instantiate(re: &str, k: usize) -> String {
    let mut s = re.to_string();
    let reps: [(&str, [&str; 3]); 9] = [
        ("(/.*)?", ["", "/sub", "/sub/f.conf"]),
        ("(/.+)?", ["", "/sub", "/s/t"]),
        (".*", ["", "x", "ab.c"]),
        (".+", ["x", "ab", "a.b"]),
        ("[^/]*", ["", "n", "name"]),
        ("[^/]+", ["n", "nm", "name1"]),
        ("[0-9]+", ["1", "12", "123"]),
        ("[0-9]*", ["", "1", "12"]),
        ("[^/]", ["q", "r", "s"]),
    ];
    for (pat, alts) in reps {
        s = s.replace(pat, alts[k]);
    }
    // Innermost groups: pick one alternative.
    while let Some(close) = s.find(')') {
        let Some(open) = s[..close].rfind('(') else {
            break;
        };
        let alts: Vec<&str> = s[open + 1..close].split('|').collect();
        let mut pick = alts[k % alts.len()].to_string();
        let mut end = close + 1;
        if s[end..].starts_with('?') {
            end += 1;
            if k == 1 {
                pick.clear();
            }
        }
        s = format!("{}{}{}", &s[..open], pick, &s[end..]);
    }
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '?' | '*' | '+' | '^' | '$' => {}
            _ => out.push(c),
        }
    }
    out
}

fn synthetic(dir: &Path, tree: &BTreeSet<(u32, Vec<u8>)>, out: &mut BTreeSet<(u32, Vec<u8>)>) {
    let modes = [0, mode::REG, mode::DIR, mode::LNK, mode::CHR, mode::SOCK];
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for f in ["file_contexts", "file_contexts.homedirs"] {
        let text = String::from_utf8(std::fs::read(dir.join(f)).unwrap()).unwrap();
        for line in text.lines().filter(|l| l.starts_with('/')) {
            let re = line.split_whitespace().next().unwrap();
            for k in 0..3 {
                keys.insert(instantiate(re, k));
            }
        }
    }
    // Aliases: each Debian path under an alias target, spelt through the alias.
    let subs =
        String::from_utf8(std::fs::read(dir.join("file_contexts.subs_dist")).unwrap()).unwrap();
    for line in subs.lines().filter(|l| l.starts_with('/')) {
        let mut w = line.split_whitespace();
        let (Some(src), Some(dst)) = (w.next(), w.next()) else {
            continue;
        };
        keys.insert(src.to_string());
        keys.insert(format!("{src}x"));
        for (_, p) in tree
            .iter()
            .filter(|(_, p)| p.starts_with(dst.as_bytes()))
            .take(200)
        {
            let rest = String::from_utf8_lossy(&p[dst.len()..]).into_owned();
            keys.insert(format!("{src}{rest}"));
        }
    }
    for extra in [
        "/",
        "//etc//passwd",
        "/etc/",
        "/home/alice/.ssh/authorized_keys",
        "/root/.bashrc",
        "/var/www/html/index.html",
        "/var/www/x",
        "/etc/foo",
        "/srv/web/a",
        "/tmp/x",
        "/proc/1/status",
        "/sys/kernel",
        "/dev/null",
        "/.autorelabel",
        "/etc/selinux/config",
    ] {
        keys.insert(extra.to_string());
    }
    for k in keys
        .into_iter()
        .filter(|k| k.starts_with('/') && !k.contains(['\n', '\t']))
    {
        for m in modes {
            out.insert((m, k.clone().into_bytes()));
        }
    }
}

fn oracle(fc: &Path, queries: &[(u32, Vec<u8>)]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/selabel_oracle.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(fc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is required for the libselinux oracle");
    let mut input = Vec::new();
    for (m, k) in queries {
        input.extend_from_slice(format!("{m:o}\t").as_bytes());
        input.extend_from_slice(k);
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(o.status.success(), "libselinux oracle failed");
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn lookup_agrees_with_libselinux_on_every_debian_path_and_synthetic_paths() {
    let fix = fixtures();
    let dir = fix.join("selinux-default");
    assert!(
        fix.join("debian-minbase.complete").exists(),
        "fixture tree missing"
    );
    let policy = load(&dir);
    let mut tree = BTreeSet::new();
    tree_paths(&fix.join("debian-minbase"), &mut tree);
    tree.retain(|(_, k)| !k.contains(&b'\n') && !k.contains(&b'\t'));
    let mut syn = BTreeSet::new();
    synthetic(&dir, &tree, &mut syn);
    let n_tree = tree.len();
    let queries: Vec<(u32, Vec<u8>)> = tree.into_iter().chain(syn).collect();
    let want = oracle(&dir.join("file_contexts"), &queries);
    assert_eq!(want.len(), queries.len());
    let mut bad = Vec::new();
    let mut labelled = 0;
    for ((m, k), w) in queries.iter().zip(&want) {
        let got = match policy.lookup(k, *m) {
            Ok(Some(c)) => c.to_string(),
            Ok(None) => "<<nolabel>>".to_string(),
            Err(e) => format!("<<error {e}>>"),
        };
        labelled += usize::from(w != "<<nolabel>>");
        if &got != w {
            bad.push(format!(
                "{m:o} {}: ours {got}, libselinux {w}",
                String::from_utf8_lossy(k)
            ));
        }
    }
    eprintln!(
        "selinux oracle: {} lookups ({n_tree} Debian tree paths, {} synthetic), {labelled} labelled, {} disagreements",
        queries.len(),
        queries.len() - n_tree,
        bad.len()
    );
    assert!(n_tree > 5000 && queries.len() > 20000, "too few paths");
    assert!(
        bad.is_empty(),
        "{} disagreements:\n{}",
        bad.len(),
        bad[..bad.len().min(30)].join("\n")
    );
}
