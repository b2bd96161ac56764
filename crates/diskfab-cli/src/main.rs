//! The `diskfab` command: parses arguments, calls diskfab-core, prints results.

mod args;
mod catalogcmd;
mod custom;
mod deltacmd;
mod docs;
mod exitcode;
mod opargs;
mod print;
mod progress;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools: a closed pipe (`diskfab ls -R img | head`) ends us quietly
    // instead of a panic on the next write.
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match exitcode::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let json = cli.json;
    match set_memory_budget(&cli).and_then(|()| run::run(&cli)) {
        Ok(()) => ExitCode::from(print::EXIT.load(std::sync::atomic::Ordering::Relaxed)),
        Err(e) => {
            let code = exitcode::for_error(&cli.cmd, &e);
            if json && !print::PRINTED.load(std::sync::atomic::Ordering::Relaxed) {
                let v = serde_json::json!({"error": e.to_string(), "exit_code": code});
                println!("{v}");
            }
            eprintln!("diskfab: {e}");
            ExitCode::from(code)
        }
    }
}

/// The memory budget for tables sized from images: `--max-memory`, else a valid
/// `DISKFAB_MAX_MEMORY` (an invalid one is a usage error), else the default.
fn set_memory_budget(cli: &args::Cli) -> diskfab_core::storage::Result<()> {
    use diskfab_core::storage::limits;
    match cli.max_memory {
        Some(n) => limits::set_max_table_bytes(n),
        None => {
            limits::env_max_memory()?;
        }
    }
    Ok(())
}
