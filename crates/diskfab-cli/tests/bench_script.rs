//! The benchmark scripts fail loudly: a measured command that fails, or whose output check
//! fails, stops `bench/run.sh` with the command named and a non-zero exit, and no document is
//! written. Tiny sizes (`--quick` plus `BENCH_*` sizes), the debug binary via `DISKFAB`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `bash bench/SCRIPT --quick` with the test binary, tiny sizes and `env`.
fn bench(script: &str, env: &[(&str, &str)]) -> Output {
    bench_with(script, env, false)
}

/// Like [`bench`]; `prepared` skips the scripts' one-time setup (scripts/deps.sh, fixtures,
/// build) by handing them what it would produce, as bench/run.sh does for its sections.
fn bench_with(script: &str, env: &[(&str, &str)], prepared: bool) -> Output {
    let mut c = Command::new("bash");
    if prepared {
        let fix = String::from_utf8(
            Command::new("bash")
                .arg(root().join("scripts/fixtures.sh"))
                .output()
                .expect("run scripts/fixtures.sh")
                .stdout,
        )
        .unwrap();
        c.env("BENCH_READY", "1")
            .env("FIX", fix.trim())
            .env("DF_REAL", env!("CARGO_BIN_EXE_diskfab"));
    } else {
        c.env_remove("BENCH_READY");
    }
    c.arg(root().join("bench").join(script))
        .arg("--quick")
        .env("DISKFAB", env!("CARGO_BIN_EXE_diskfab"))
        .env("BENCH_CLONES", "2")
        .env("BENCH_RANDOM_MB", "1")
        .env_remove("BENCH_SELFTEST_FAIL")
        .env_remove("BENCH_FRAG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bash")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn bench_run_fails_when_a_measured_command_fails_and_writes_no_doc() {
    let t = tempfile::tempdir().unwrap();
    let doc = t.path().join("bench.md");
    let o = bench(
        "run.sh",
        &[
            ("BENCH_SELFTEST_FAIL", "clone"),
            ("BENCH_DOC", doc.to_str().unwrap()),
        ],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bench: FAILED: command exited 1 (expected 0)") && err.contains(" clone "),
        "the failing command is not named: {all}"
    );
    assert!(
        err.contains("self-test: diskfab clone made to fail"),
        "its stderr is not shown: {all}"
    );
    assert!(!doc.exists(), "a failed run wrote {}", doc.display());
}

#[test]
fn bench_convert_fails_when_an_output_differs_from_its_source() {
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("convert.md");
    let o = bench_with(
        "convert.sh",
        &[
            ("BENCH_SELFTEST_FAIL", "convert-corrupt"),
            ("BENCH_FRAG", frag.to_str().unwrap()),
        ],
        true,
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("differs from") && err.contains("bench: FAILED: output check failed"),
        "the damaged output was not caught: {all}"
    );
    assert!(!frag.exists(), "a failed section wrote {}", frag.display());
}

#[test]
fn bench_clone_section_passes_and_labels_what_each_method_includes() {
    // The control for the two failures above: the same scripts, nothing injected, succeed.
    let t = tempfile::tempdir().unwrap();
    let frag = t.path().join("clone.md");
    let o = bench_with("clone.sh", &[("BENCH_FRAG", frag.to_str().unwrap())], true);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&frag).unwrap();
    for want in [
        "## Clones: 2 thin qcow2 overlays",
        "`diskfab clone base.qcow2 --count 2` | no process start (one for all 2); no fsync",
        "loop: `diskfab create -b ../base.qcow2 base-$i.qcow2` | a process start",
        "loop: `qemu-img create -f qcow2 -b ../base.qcow2 -F qcow2 base-$i.qcow2` | a process start",
        "> 1 means diskfab is faster",
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
}
