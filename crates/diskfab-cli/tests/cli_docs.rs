//! The CLI reference (docs/cli.md) is generated from the clap definitions; this proves the
//! committed copy is current. Regenerate with: cargo run -q -p diskfab-cli -- docs > docs/cli.md

mod common;

#[test]
fn committed_cli_reference_matches_the_clap_definitions() {
    let generated = common::ok(&["docs"]);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/cli.md is stale: run `cargo run -q -p diskfab-cli -- docs > docs/cli.md`"
    );
}

#[test]
fn every_verb_of_the_foundation_has_help() {
    let help = common::ok(&["--help"]);
    for verb in [
        "create", "clone", "info", "ls", "cat", "copy-in", "copy-out", "mkdir", "rm", "chmod",
        "chown", "ln", "mv", "mkfs", "part",
    ] {
        assert!(help.contains(verb), "--help lacks {verb}");
    }
}
