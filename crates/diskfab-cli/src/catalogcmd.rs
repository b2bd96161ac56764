//! The `catalog` verbs.

use crate::args::{CatalogCmd, Cli};
use crate::print::{emit_json, set_exit};
use diskfab_core::catalog::{query, Entry, Store};
use diskfab_core::image::BackingGate;
use diskfab_core::ops::catalog as cat;
use diskfab_core::storage::{Error, Result};
use std::path::Path;

fn table(entries: &[Entry]) {
    for e in entries {
        let a = |k: &str| e.attrs.get(k).map(String::as_str).unwrap_or("-");
        let tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:>5}  {:<8} {:<6} {:<7} {:<8} {:>5} pkgs  {}{}",
            e.id,
            a("distro"),
            a("version"),
            a("arch"),
            a("hostname"),
            e.packages,
            e.path,
            if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join(" "))
            }
        );
    }
}

/// Runs a catalog subcommand.
pub fn run(cli: &Cli, catalog: Option<&Path>, cmd: &CatalogCmd, gate: BackingGate) -> Result<()> {
    let mut store = cat::open(catalog)?;
    let json = cli.json;
    match cmd {
        CatalogCmd::Add { images, tag } => {
            let tags = cat::parse_tags(tag)?;
            let r = cat::add(&mut store, images, &tags, &gate)?;
            if json {
                return emit_json(&r);
            }
            table(&r);
        }
        CatalogCmd::List => {
            let r = store.list()?;
            if json {
                return emit_json(&r);
            }
            table(&r);
        }
        CatalogCmd::Search { query: q } => {
            let t0 = std::time::Instant::now();
            let terms = query::parse(&q.join(" "))?;
            let r = store.search(&terms)?;
            if r.is_empty() {
                set_exit(1);
            }
            if json {
                return emit_json(&r);
            }
            table(&r);
            eprintln!("{} images ({} ms)", r.len(), t0.elapsed().as_millis());
        }
        CatalogCmd::Show { id } => {
            let e = store
                .get(id)?
                .ok_or_else(|| Error::NotFound(format!("no catalog entry {id}")))?;
            if json {
                return emit_json(&e);
            }
            table(std::slice::from_ref(&e));
            for (k, v) in &e.attrs {
                println!("  {k}: {v}");
            }
            if !e.drivers.is_empty() {
                println!("  drivers: {}", e.drivers.join(", "));
            }
        }
        CatalogCmd::Tag { id, tag } => {
            let t = cat::parse_tags(std::slice::from_ref(tag))?;
            for (k, v) in t {
                store.tag(*id, &k, &v)?;
            }
            crate::print::done(
                json,
                &format!("tagged {id}"),
                serde_json::json!({"tagged": id}),
            )?;
        }
        CatalogCmd::Untag { id, key } => {
            if !store.untag(*id, key)? {
                return Err(Error::NotFound(format!("entry {id} has no tag {key}")));
            }
            crate::print::done(
                json,
                &format!("untagged {id}"),
                serde_json::json!({"untagged": id}),
            )?;
        }
        CatalogCmd::Rescan { ids } => {
            let r = cat::rescan(&mut store, ids, &gate)?;
            if json {
                return emit_json(&r);
            }
            for x in &r {
                println!("{:>5}  {:<9} {}", x.id, x.status, x.path);
            }
        }
        CatalogCmd::Remove { id } => {
            if !store.remove(*id)? {
                return Err(Error::NotFound(format!("no catalog entry {id}")));
            }
            crate::print::done(
                json,
                &format!("removed {id}"),
                serde_json::json!({"removed": id}),
            )?;
        }
    }
    Ok(())
}
