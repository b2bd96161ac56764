//! The `diff` and `delta` verbs.

use crate::args::{Cli, DeltaCmd};
use crate::print::{emit_json, set_exit};
use diskfab_core::delta::apply::ApplyOptions;
use diskfab_core::delta::diff::DiffOptions;
use diskfab_core::image::BackingGate;
use diskfab_core::ops::delta::{self, Side};
use diskfab_core::select::VolumeSel;
use diskfab_core::storage::{Error, Result};
use std::path::PathBuf;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `diskfab diff`: exit 0 when identical, 1 when different (like diff(1)), 2 and above on errors.
pub fn diff(
    cli: &Cli,
    a: (&PathBuf, Option<VolumeSel>),
    b: (&PathBuf, Option<VolumeSel>),
    opts: DiffOptions,
    fast: bool,
    csv: bool,
    gate: BackingGate,
) -> Result<()> {
    let r = delta::diff(
        &Side {
            image: a.0.clone(),
            partition: a.1,
        },
        &Side {
            image: b.0.clone(),
            partition: b.1,
        },
        opts,
        fast,
        &gate,
    )?;
    if !r.changes.is_empty() {
        set_exit(1);
    }
    if cli.json {
        return emit_json(&r);
    }
    if csv {
        println!("status,type,path,details");
        for c in &r.changes {
            println!(
                "{},{},{},{}",
                c.status,
                c.kind,
                csv_field(&c.path),
                csv_field(&c.details.join("; "))
            );
        }
        return Ok(());
    }
    for c in &r.changes {
        let mark = match c.status {
            "added" => "+",
            "removed" => "-",
            "type-changed" => "!",
            _ => "~",
        };
        let d = if c.details.is_empty() {
            String::new()
        } else {
            format!("  ({})", c.details.join(", "))
        };
        println!("{mark} {:<7} {}{d}", c.kind, c.path);
        if let Some(t) = &c.text_diff {
            print!("{t}");
        }
    }
    eprintln!(
        "{} differences ({} ms{})",
        r.changes.len(),
        r.elapsed_ms,
        if r.fast_path {
            format!(", clone fast path: {} files compared", r.files_hashed)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `diskfab delta ...`.
pub fn delta(cli: &Cli, cmd: &DeltaCmd, gate: BackingGate) -> Result<()> {
    match cmd {
        DeltaCmd::Create {
            a,
            b,
            out,
            exclude,
            partition,
            partition_b,
        } => {
            let r = delta::delta_create(
                &Side {
                    image: a.clone(),
                    partition: partition.clone(),
                },
                &Side {
                    image: b.clone(),
                    partition: partition_b.clone().or(partition.clone()),
                },
                out,
                exclude,
                &gate,
            )?;
            if cli.json {
                return emit_json(&r);
            }
            println!(
                "wrote {}: {} records ({} removed, {} put, {} metadata-only), {} bytes of contents{}",
                out.display(),
                r.records,
                r.removed,
                r.put,
                r.meta,
                r.data_bytes,
                if r.excluded > 0 { format!(", {} excluded", r.excluded) } else { String::new() }
            );
            Ok(())
        }
        DeltaCmd::Show { delta: d } => {
            let r = delta::delta_show(d)?;
            if cli.json {
                return emit_json(&r);
            }
            println!(
                "delta {} ({} records, {} bytes of contents)",
                r.source.as_deref().unwrap_or("?"),
                r.entries.len(),
                r.data_bytes
            );
            for e in &r.entries {
                let what = e.kind.clone().unwrap_or_default();
                let pre = if e.pre.is_some() { "" } else { " (new)" };
                let link = e
                    .link
                    .as_ref()
                    .map(|l| format!(" => {l}"))
                    .unwrap_or_default();
                println!("  {:<6} {:<7} {}{link}{pre}", e.op, what, e.path);
            }
            Ok(())
        }
        DeltaCmd::Apply {
            sel,
            delta: d,
            check,
            force,
            allow_devices,
        } => {
            let r = delta::delta_apply(
                &Side {
                    image: sel.image.clone(),
                    partition: sel.partition.clone(),
                },
                d,
                ApplyOptions {
                    check: *check,
                    force: *force,
                    allow_devices: *allow_devices,
                },
                None,
                &gate,
            )?;
            // With --check, conflicts are the question's negative answer (1); without, the
            // refused apply is a failed operation (5).
            let refused = !r.conflicts.is_empty() && !r.applied;
            let failure = || {
                Error::Failed(format!(
                    "{} conflicts; nothing written (use --force to apply anyway)",
                    r.conflicts.len()
                ))
            };
            if refused && *check {
                set_exit(1);
            }
            if cli.json {
                emit_json(&r)?;
                return if refused && !*check {
                    Err(failure())
                } else {
                    Ok(())
                };
            }
            for c in &r.conflicts {
                println!("conflict: {}: {}", c.path, c.reason);
            }
            if r.applied {
                println!(
                    "applied {} records ({} bytes) to {}",
                    r.records,
                    r.bytes,
                    sel.image.display()
                );
            } else if *check {
                println!(
                    "{} records, {} conflicts; nothing written (--check)",
                    r.records,
                    r.conflicts.len()
                );
            } else {
                return Err(failure());
            }
            Ok(())
        }
    }
}

/// `diskfab build`.
pub fn build(
    cli: &Cli,
    recipe: &std::path::Path,
    out: Option<&std::path::Path>,
    format: Option<diskfab_core::image::Format>,
    gate: BackingGate,
) -> Result<()> {
    let r = diskfab_core::ops::build::build(recipe, out, format, &gate)?;
    if cli.json {
        return emit_json(&r);
    }
    println!(
        "built {} ({}): {} deltas, {} changes, {} bytes, {} ms",
        r.output, r.format, r.deltas, r.changes, r.output_bytes, r.elapsed_ms
    );
    Ok(())
}
