//! Shared helpers for the CLI end-to-end tests: run diskfab, find fixtures, loop mounts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the diskfab binary with `args`.
pub fn diskfab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diskfab"))
        .args(args)
        .output()
        .expect("run diskfab")
}

/// Runs diskfab and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = diskfab(args);
    assert!(
        o.status.success(),
        "diskfab {args:?} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a host tool and asserts success; returns stdout. Fails naming the package if missing.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is required for this oracle test ({e}); run scripts/deps.sh")
    });
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The fixture directory (built by scripts/fixtures.sh with reference tools).
pub fn fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures.sh");
    let out = tool("bash", &[script.to_str().unwrap()]);
    PathBuf::from(out.trim())
}

/// SHA-256 of a file (via sha256sum).
pub fn sha(p: &Path) -> String {
    tool("sha256sum", &[p.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A loop device (optionally a window of the file), detached on drop.
pub struct Loop(pub String);

impl Loop {
    pub fn new(file: &Path, offset: u64, size: Option<u64>, read_only: bool) -> Loop {
        let off = offset.to_string();
        let mut args = vec!["-f", "--show", "-o", &off];
        let sz;
        if let Some(s) = size {
            sz = s.to_string();
            args.extend(["--sizelimit", &sz]);
        }
        if read_only {
            args.push("-r");
        }
        args.push(file.to_str().unwrap());
        Loop(tool("losetup", &args).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A read-only kernel mount, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    _lo: Loop,
}

impl Mount {
    /// Mounts the ext filesystem at `offset` of raw file `file` read-only.
    pub fn ext(file: &Path, offset: u64, size: u64) -> Mount {
        let lo = Loop::new(file, offset, Some(size), true);
        let dir = tempfile::tempdir().unwrap();
        tool(
            "mount",
            &["-o", "ro,noload", &lo.0, dir.path().to_str().unwrap()],
        );
        Mount { dir, _lo: lo }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Converts any image to raw with qemu-img (the independent reader).
pub fn to_raw(img: &Path, raw: &Path) {
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            img.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
}

/// `e2fsck -fn` on a window of a raw file must be clean.
pub fn e2fsck_clean(raw: &Path, offset: u64, size: u64) {
    let lo = Loop::new(raw, offset, Some(size), true);
    let o = Command::new("e2fsck")
        .args(["-fn", &lo.0])
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        o.status.success(),
        "e2fsck -fn found problems:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The (start, size) in bytes of partition `n` per `sfdisk --json` (independent of diskfab).
pub fn sfdisk_part(raw: &Path, n: usize) -> (u64, u64) {
    let j: serde_json::Value =
        serde_json::from_str(&tool("sfdisk", &["--json", raw.to_str().unwrap()])).unwrap();
    let p = &j["partitiontable"]["partitions"][n - 1];
    (
        p["start"].as_u64().unwrap() * 512,
        p["size"].as_u64().unwrap() * 512,
    )
}

/// Writes text file `p` (guest path) under the guest tree `root`, creating directories.
pub fn write(root: &Path, p: &str, s: &str) {
    let f = root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, s).unwrap();
}

/// Builds an ext4 image from guest tree `g` with mke2fs -d (in `t`) and returns the first OS of
/// `diskfab inspect --json` on it.
pub fn inspect_tree(t: &Path, g: &Path) -> serde_json::Value {
    let raw = t.join(format!("{}.img", g.file_name().unwrap().to_str().unwrap()));
    tool(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-d",
            g.to_str().unwrap(),
            raw.to_str().unwrap(),
            "16M",
        ],
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", raw.to_str().unwrap()])).unwrap();
    v["operating_systems"][0].clone()
}

/// Asserts every object key in `v` (recursively) is documented as `` `key` `` in
/// docs/inspect-schema.md.
pub fn assert_documented(v: &serde_json::Value) {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/inspect-schema.md"),
    )
    .unwrap();
    fn walk(v: &serde_json::Value, doc: &str, missing: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if !doc.contains(&format!("`{k}`")) {
                        missing.push(k.clone());
                    }
                    walk(x, doc, missing);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, doc, missing)),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(v, &doc, &mut missing);
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "undocumented inspect keys: {missing:?}");
}
