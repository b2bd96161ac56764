//! Every README example that starts with `cd "$(mktemp -d)"` runs, as pasted, with the built
//! diskfab first on PATH.

use std::path::Path;

#[test]
fn readme_examples_run_when_pasted() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_diskfab"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for block in readme.split("```").skip(1).step_by(2) {
        let block = block
            .trim_start_matches(|c: char| c.is_alphanumeric())
            .trim_start();
        if !block.starts_with("cd \"$(mktemp -d)\"") {
            continue;
        }
        let o = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", block])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "README example failed:\n{block}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ran += 1;
    }
    assert!(
        ran >= 2,
        "expected the README's pasteable examples, found {ran}"
    );
}
