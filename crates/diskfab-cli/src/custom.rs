//! The `customize` and `stamp` verbs: operations from `--spec` and the command line, shared
//! settings, and their reports.

use crate::args::{Cli, CustomizeSettings, Sel};
use crate::opargs::OpArgs;
use crate::print::emit_json;
use crate::progress::count_bar;
use diskfab_core::customize::ops::Op;
use diskfab_core::customize::{spec, CustomizeReport, NetPolicy, Settings};
use diskfab_core::open::DiskOptions;
use diskfab_core::ops::stamp::{StampOptions, StampReport};
use diskfab_core::storage::{Error, Result};
use std::path::PathBuf;

/// Operations (spec file first, then the command line) and settings.
fn collect(ops: &OpArgs, s: &CustomizeSettings) -> Result<(Vec<Op>, Settings, Option<String>)> {
    let sp = match &s.spec {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::io(format!("spec file {}", p.display()), e))?;
            spec::parse(&text)?
        }
        None => spec::Spec::default(),
    };
    let mut all = sp.ops.clone();
    for (n, a) in &ops.ops {
        all.push(Op::new(n, a)?);
    }
    if all.is_empty() {
        return Err(Error::Invalid(
            "no operations given (e.g. --hostname NAME; see --help)".into(),
        ));
    }
    let crypto = s.password_crypto.clone().or(sp.password_crypto);
    let net = s.network_format.clone().or(sp.network_format);
    let settings = Settings {
        crypto: crypto.map(|c| c.parse()).transpose()?,
        net_style: net.map(|n| n.parse()).transpose()?,
        seed: s.seed.clone().or(sp.seed),
        clock: None,
        network: if s.network {
            NetPolicy::Always
        } else if s.no_network {
            NetPolicy::Never
        } else {
            NetPolicy::PackagesOnly
        },
    };
    Ok((all, settings, sp.name_template))
}

/// `diskfab customize`.
pub fn customize(
    cli: &Cli,
    sel: &Sel,
    ops: &OpArgs,
    s: &CustomizeSettings,
    dry_run: bool,
    gate: diskfab_core::image::BackingGate,
) -> Result<()> {
    let (ops, settings, _) = collect(ops, s)?;
    let r = diskfab_core::ops::customize::customize(
        &sel.image,
        sel.partition.as_ref(),
        &ops,
        &settings,
        dry_run,
        &DiskOptions {
            writable: !dry_run,
            gate,
        },
    )?;
    print_customized(cli.json, &r)
}

fn print_customized(json: bool, r: &CustomizeReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    let verb = if r.dry_run { "would change" } else { "changed" };
    let mut paths: Vec<&str> = r.actions.iter().map(|a| a.path()).collect();
    paths.dedup();
    println!("{verb} {} paths:", paths.len());
    for a in &r.actions {
        let j = serde_json::to_value(a).unwrap_or_default();
        let kind = j.get("action").and_then(|v| v.as_str()).unwrap_or("?");
        println!("  {kind:<8} {}", a.path());
    }
    for (u, p) in &r.random_passwords {
        println!("random password for {u}: {p}");
    }
    for o in &r.command_output {
        if !o.trim().is_empty() {
            println!("--- command output ---\n{}", o.trim_end());
        }
    }
    Ok(())
}

/// Arguments of `diskfab stamp`.
pub struct StampArgs<'a> {
    /// Base.
    pub base: &'a PathBuf,
    /// CSV.
    pub instances: &'a PathBuf,
    /// Out dir.
    pub out: &'a PathBuf,
    /// Ops.
    pub ops: &'a OpArgs,
    /// Settings.
    pub settings: &'a CustomizeSettings,
    /// Name template.
    pub name_template: &'a str,
    /// Jobs.
    pub jobs: Option<usize>,
    /// Force.
    pub force: bool,
    /// Partition.
    pub partition: Option<diskfab_core::select::VolumeSel>,
    /// Verify.
    pub verify_replay: bool,
}

/// `diskfab stamp`.
pub fn stamp(cli: &Cli, a: StampArgs, gate: diskfab_core::image::BackingGate) -> Result<()> {
    let (ops, settings, tmpl) = collect(a.ops, a.settings)?;
    let jobs = a.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let name_template = if a.name_template == "{{name}}" {
        tmpl.unwrap_or_else(|| a.name_template.to_string())
    } else {
        a.name_template.to_string()
    };
    let o = StampOptions {
        base: a.base.clone(),
        instances: a.instances.clone(),
        out: a.out.clone(),
        ops,
        settings,
        name_template,
        jobs: jobs.clamp(1, 256),
        force: a.force,
        partition: a.partition,
        gate,
        verify_replay: a.verify_replay,
    };
    let pb = count_bar(0, cli.json);
    pb.set_length(count_rows(a.instances));
    let r = diskfab_core::ops::stamp::stamp(&o, &|| pb.inc(1))?;
    pb.finish_and_clear();
    print_stamped(cli.json, &r)
}

fn count_rows(p: &PathBuf) -> u64 {
    std::fs::read(p)
        .map(|d| d.iter().filter(|b| **b == b'\n').count().saturating_sub(1) as u64)
        .unwrap_or(0)
}

fn print_stamped(json: bool, r: &StampReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    let replayed = r.instances.iter().filter(|i| i.mode == "replayed").count();
    let redone = r.instances.iter().filter(|i| i.mode == "redone").count();
    let recorded = r.instances.iter().filter(|i| i.mode == "recorded").count();
    let existing = r.instances.iter().filter(|i| i.mode == "existing").count();
    let bytes: u64 = r.instances.iter().map(|i| i.file_bytes).sum();
    println!(
        "stamped {} clones into {} in {} ms ({} replayed, {} recorded, {} redone{}); shared layer {} (+{} shared blocks)",
        r.instances.len(),
        r.out,
        r.total_ms,
        replayed,
        recorded,
        redone,
        if existing > 0 { format!(", {existing} from the interrupted run") } else { String::new() },
        r.common,
        r.shared_blocks
    );
    println!(
        "  planning {} ms, analysis {} ms, writing {} ms; overlays {} KiB in all",
        r.plan_ms,
        r.analyse_ms,
        r.write_ms,
        bytes / 1024
    );
    for g in &r.groups {
        if let Some(why) = &g.reason {
            println!("  {} instances redone in full: {why}", g.instances);
        }
    }
    for i in &r.instances {
        for (u, p) in &i.random_passwords {
            println!("  {}: random password for {u}: {p}", i.name);
        }
    }
    Ok(())
}
