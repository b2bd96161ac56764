//! The exit codes: one table, rendered into `diskfab --help`, the help of the commands that
//! answer a question, and docs/cli.md. Library errors carry their class
//! ([`Error::exit_code`]); this module names the codes, applies `check`'s qemu-img meanings and
//! turns argument errors into exit codes.

use crate::args::{Cli, Cmd};
use clap::{CommandFactory, FromArgMatches};
use diskfab_core::storage::Error;
use std::ffi::OsString;

/// Success; for a question: same, found, would apply.
pub const OK: u8 = 0;
/// A negative answer to a question (different, no match, would not apply).
pub const NO: u8 = 1;
/// Usage error.
pub const USAGE: u8 = 2;
/// `check` could not complete (qemu-img's meaning of 1).
pub const CHECK_FAILED: u8 = 1;

/// Every command's exit codes, `check` excepted.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success; for a question: same, found"),
    (
        NO,
        "a negative answer to a question: compare, diff, catalog search, delta apply --check",
    ),
    (USAGE, "usage error: a bad argument, option or value"),
    (
        3,
        "bad or unsupported image: corrupt, hostile, or a feature diskfab does not read",
    ),
    (
        4,
        "host I/O error: a host file missing or unreadable, a full host disk",
    ),
    (
        5,
        "the operation failed: a path missing or existing in the image, no space in it, a conflict",
    ),
    (
        6,
        "refused by the trust policy: untrusted backing/data file (--backing-dir), no sandbox",
    ),
];

/// `check`'s exit codes (qemu-img check's).
pub const CHECK_TABLE: &[(u8, &str)] = &[
    (OK, "the image is clean"),
    (
        CHECK_FAILED,
        "the check could not complete: any error (usage, unreadable file or header)",
    ),
    (2, "corruptions found"),
    (3, "leaks only (no corruptions)"),
];

/// The verbs that answer a question (exit 1 is their negative answer), as `verb [sub]`.
pub const QUESTIONS: &[(&str, Option<&str>, &str)] = &[
    ("compare", None, "0 identical, 1 different"),
    ("diff", None, "0 identical, 1 different"),
    ("catalog", Some("search"), "0 found, 1 no match"),
    (
        "delta",
        Some("apply"),
        "0 applied (with --check: would apply), 1 with --check: conflicts",
    ),
];

fn lines(table: &[(u8, &str)]) -> String {
    table
        .iter()
        .map(|(c, m)| format!("  {c}  {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The "Exit codes" section of `diskfab --help`.
pub fn help() -> String {
    format!(
        "Exit codes (check has its own, see `diskfab check --help`):\n{}",
        lines(TABLE)
    )
}

/// The exit codes of `check`, for its help.
pub fn check_help() -> String {
    format!("Exit codes (as qemu-img check):\n{}", lines(CHECK_TABLE))
}

/// The Markdown tables for docs/cli.md.
pub fn markdown() -> String {
    let table = |t: &[(u8, &str)]| {
        let mut s = String::from("| Code | Meaning |\n|---:|---|\n");
        for (c, m) in t {
            s.push_str(&format!("| {c} | {m} |\n"));
        }
        s
    };
    let mut out = String::from("## Exit codes\n\nEvery command except `check`:\n\n");
    out.push_str(&table(TABLE));
    out.push_str("\nThe commands that ask a question:\n\n");
    for (verb, sub, codes) in QUESTIONS {
        let name = sub.map_or(verb.to_string(), |s| format!("{verb} {s}"));
        out.push_str(&format!(
            "- `diskfab {name}`: {codes}; 2 and above: an error\n"
        ));
    }
    out.push_str("\n`diskfab check` keeps qemu-img check's meanings:\n\n");
    out.push_str(&table(CHECK_TABLE));
    out.push_str(
        "\nWith `--json`, an error is printed on standard output as \
         `{\"error\": \"...\", \"exit_code\": N}`.\n",
    );
    out
}

/// The command tree with the exit codes in its help.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().after_help(help());
    for (verb, sub, codes) in QUESTIONS {
        let text = format!("Exit codes: {codes}; 2 and above: an error (see `diskfab --help`).");
        cmd = cmd.mut_subcommand(verb, |c| match sub {
            Some(s) => c.mut_subcommand(s, |c| c.after_help(text.clone())),
            None => c.after_help(text.clone()),
        });
    }
    cmd.mut_subcommand("check", |c| c.after_help(check_help()))
}

/// The exit code of a failed command: `check` reports every failure as 1, like qemu-img.
pub fn for_error(cmd: &Cmd, e: &Error) -> u8 {
    match cmd {
        Cmd::Check { .. } => CHECK_FAILED,
        _ => u8::try_from(e.exit_code()).unwrap_or(USAGE),
    }
}

/// Whether the command line names `check` (for argument errors, before clap has parsed it):
/// the first word that is not a global option or its value.
fn names_check(argv: &[OsString]) -> bool {
    let words: Vec<&str> = argv.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let mut i = 0;
    while let Some(&w) = words.get(i) {
        match w {
            "--backing-dir" => i += 2,
            "--json" | "--allow-any-backing" => i += 1,
            w if w.starts_with("--backing-dir=") => i += 1,
            w => return w == "check",
        }
    }
    false
}

/// Parses the command line; on an argument error prints it (and with `--json` the error
/// object) and returns the exit code: 0 for --help and --version, 1 for `check`, else 2.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, u8> {
    let mut cmd = command();
    let parsed = cmd
        .try_get_matches_from_mut(argv.iter())
        .and_then(|m| Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd)));
    let e = match parsed {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    if !e.use_stderr() {
        let _ = e.print();
        return Err(OK);
    }
    let code = if names_check(&argv) {
        CHECK_FAILED
    } else {
        USAGE
    };
    if argv.iter().any(|a| a == "--json") {
        let msg = e.to_string();
        println!(
            "{}",
            serde_json::json!({"error": msg.trim_end(), "exit_code": code})
        );
    }
    let _ = e.print();
    Err(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> Error {
        Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    /// Every error class exits with the code the table gives it.
    #[test]
    fn every_error_class_maps_to_its_row_of_the_table() {
        let cases: Vec<(Error, u8)> = vec![
            (Error::Invalid("x".into()), 2),
            (Error::BadImage("x".into()), 3),
            (Error::Unsupported("x".into()), 3),
            (io(), 4),
            (Error::NotFound("x".into()), 5),
            (Error::Exists("x".into()), 5),
            (Error::ReadOnly("x".into()), 5),
            (Error::NoSpace("x".into()), 5),
            (Error::Failed("x".into()), 5),
            (Error::Denied("x".into()), 6),
        ];
        let cmd = Cmd::Docs;
        for (e, code) in cases {
            assert_eq!(for_error(&cmd, &e), code, "{e:?}");
            assert!(
                TABLE.iter().any(|(c, _)| *c == code),
                "{code} not documented"
            );
        }
        let check = Cmd::Check { image: "x".into() };
        assert_eq!(for_error(&check, &Error::BadImage("x".into())), 1);
        assert_eq!(for_error(&check, &Error::Invalid("x".into())), 1);
    }

    #[test]
    fn the_check_verb_is_found_after_global_options() {
        let v = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(names_check(&v(&["diskfab", "check"])));
        assert!(names_check(&v(&[
            "diskfab",
            "--json",
            "--backing-dir",
            "check",
            "check"
        ])));
        assert!(!names_check(&v(&[
            "diskfab",
            "--backing-dir",
            "check",
            "info"
        ])));
        assert!(!names_check(&v(&["diskfab", "info", "check"])));
    }
}
