//! Text and JSON output of each command's result.

use diskfab_core::ops::files::Entry;
use diskfab_core::ops::format_time;
use diskfab_core::ops::hostcopy::CopyReport;
use diskfab_core::ops::info::InfoReport;
use diskfab_core::part::Partition;
use diskfab_core::storage::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

/// Set once a command has printed its JSON result, so a later error is reported on stderr only
/// (stdout stays one JSON document).
pub static PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn emit_json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    let s =
        serde_json::to_string_pretty(v).map_err(|e| Error::Failed(format!("JSON output: {e}")))?;
    println!("{s}");
    PRINTED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// A command with no data result: a short message, or `{...}` with --json.
pub fn done(json: bool, msg: &str, v: serde_json::Value) -> Result<()> {
    if json {
        return emit_json(&v);
    }
    if !msg.is_empty() {
        println!("{msg}");
    }
    Ok(())
}

fn human(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Exit code a command asks for after a successful run (compare: 1 = different; check: 2/3).
pub static EXIT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the exit code for a command that still printed its result.
pub fn set_exit(code: u8) {
    EXIT.store(code, std::sync::atomic::Ordering::Relaxed);
}

/// `convert`.
pub fn converted(json: bool, r: &diskfab_core::ops::images::ConvertReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    println!(
        "converted {} virtual: wrote {}, skipped {} (zero, unallocated or equal to the base); output uses {}",
        human(r.virtual_size),
        human(r.written),
        human(r.skipped),
        human(r.output_allocated)
    );
    if let Some(n) = r.output_size {
        println!(
            "output size is {n} bytes (source {}; rounded up, the tail reads as zeroes)",
            r.virtual_size
        );
    }
    Ok(())
}

/// `inspect`.
pub fn inspected(json: bool, r: &diskfab_core::ops::inspect::InspectReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    if r.operating_systems.is_empty() {
        println!("{}: no operating system found", r.image);
    }
    for e in &r.operating_systems {
        let o = &e.os;
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let root = match &e.root_volume {
            Some(lv) => format!("LV {lv}"),
            None => format!("partition {}", e.root_partition),
        };
        println!(
            "root:           {root} ({} {})",
            e.root_filesystem.fs_type,
            opt(&e.root_filesystem.uuid)
        );
        println!(
            "product:        {}",
            opt(&o.pretty_name.clone().or_else(|| o.product_name.clone()))
        );
        println!(
            "distro:         {} {}.{} ({})",
            opt(&o.distro),
            o.major_version.unwrap_or(0),
            o.minor_version.unwrap_or(0),
            opt(&o.osinfo)
        );
        println!("arch:           {}", opt(&o.arch));
        println!("hostname:       {}", opt(&o.hostname));
        println!(
            "packages:       {} {} ({} installed)",
            opt(&o.package_format),
            opt(&o.package_management),
            o.applications.len()
        );
        println!(
            "users:          {}",
            o.users
                .iter()
                .filter(|u| u.uid == 0 || u.uid >= 1000)
                .map(|u| format!("{}({})", u.name, u.password))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for k in &o.kernels {
            println!(
                "kernel:         {} drivers: {}",
                k.version,
                k.drivers.join(",")
            );
        }
        for n in &o.network {
            println!(
                "network:        {} {} {} {}",
                n.source,
                n.name.as_deref().unwrap_or("*"),
                n.method,
                n.addresses.join(",")
            );
        }
        for m in &e.mountpoints {
            let to = match (&m.volume, m.partition) {
                (Some(lv), _) => format!("LV {lv}"),
                (None, Some(p)) => format!("partition {p}"),
                (None, None) => "partition ?".into(),
            };
            println!("mount:          {} {} -> {to}", m.mountpoint, m.spec);
        }
        println!("timezone:       {}", opt(&o.timezone));
        println!("services:       {}", o.services.len());
        for w in &o.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(())
}

/// `measure`.
pub fn measured(json: bool, r: &diskfab_core::ops::images::MeasureReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    println!("required size: {}", r.required);
    println!("fully allocated size: {}", r.fully_allocated);
    Ok(())
}

/// `compare`.
pub fn compared(json: bool, r: &diskfab_core::ops::images::CompareReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    match r.first_difference {
        None => println!("Images are identical."),
        Some(o) => println!(
            "Content mismatch at offset {o}! (first different byte: {})",
            r.first_different_byte.unwrap_or(o)
        ),
    }
    Ok(())
}

/// `check`.
pub fn checked(json: bool, r: &diskfab_core::image::CheckReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    for m in &r.messages {
        println!("{m}");
    }
    if r.corruptions == 0 && r.leaks == 0 {
        println!("No errors were found on the image.");
    } else {
        println!(
            "{} errors were found on the image; {} leaked clusters.",
            r.corruptions, r.leaks
        );
    }
    if r.total_clusters > 0 {
        println!(
            "{}/{} = {:.2}% allocated, {:.2}% compressed clusters",
            r.allocated_clusters,
            r.total_clusters,
            100.0 * r.allocated_clusters as f64 / r.total_clusters as f64,
            if r.allocated_clusters == 0 {
                0.0
            } else {
                100.0 * r.compressed_clusters as f64 / r.allocated_clusters as f64
            }
        );
        println!("Image end offset: {}", r.image_end_offset);
    }
    Ok(())
}

/// `map`.
pub fn mapped(json: bool, extents: &[diskfab_core::image::Extent]) -> Result<()> {
    if json {
        return emit_json(extents);
    }
    println!(
        "{:>18} {:>18} {:<12} {:>5} layer",
        "start", "length", "kind", "depth"
    );
    for e in extents {
        println!(
            "{:>#18x} {:>#18x} {:<12} {:>5} {}",
            e.start,
            e.length,
            e.kind,
            e.depth,
            e.layer.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `info`.
pub fn info(json: bool, r: &InfoReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    let i = &r.image;
    println!("image:          {}", i.path.display());
    println!("format:         {}", i.format);
    println!(
        "virtual size:   {} ({} bytes)",
        human(i.virtual_size),
        i.virtual_size
    );
    println!("disk size:      {}", human(i.actual_size));
    if let Some(c) = i.cluster_size {
        println!("cluster size:   {c}");
    }
    if let Some(b) = &i.backing_file {
        println!("backing file:   {b}");
    }
    for (n, l) in i.chain.iter().enumerate() {
        println!(
            "backing[{}]:     {} ({}, {})",
            n + 1,
            l.path.display(),
            l.format,
            human(l.virtual_size)
        );
    }
    if i.dirty || i.corrupt {
        println!(
            "state:          {}{}",
            if i.dirty { "dirty " } else { "" },
            if i.corrupt { "corrupt" } else { "" }
        );
    }
    match (&r.partition_table, &r.disk_id) {
        (Some(k), id) => println!(
            "partitions:     {} {}",
            serde_json::to_string(k)
                .unwrap_or_default()
                .trim_matches('"'),
            id.as_deref().unwrap_or("")
        ),
        (None, _) => println!("partitions:     none"),
    }
    for v in &r.volumes {
        let place = match (&v.partition, &v.logical_volume) {
            (None, Some(lv)) => format!("{:>3} {:<32}", "lv", lv),
            (Some(p), _) => format!(
                "{:>3} {:>10} {:>10} {:<10}",
                p.number,
                human(p.start),
                human(p.size),
                p.type_name
            ),
            (None, None) => format!(
                "{:>3} {:>10} {:>10} {:<10}",
                "-",
                "0",
                human(i.virtual_size),
                "whole-disk"
            ),
        };
        let fs = match (&v.filesystem, &v.error) {
            (Some(f), _) => format!(
                "{} label={} uuid={} used={}/{}{}",
                f.fs_type,
                f.label.as_deref().unwrap_or("-"),
                f.uuid.as_deref().unwrap_or("-"),
                human(f.used_bytes),
                human(f.total_bytes),
                if f.needs_recovery {
                    " NEEDS-RECOVERY"
                } else {
                    ""
                }
            ),
            (None, Some(e)) => format!("unreadable: {e}"),
            (None, None) => match &v.luks {
                Some(l) => format!(
                    "LUKS{} uuid={} cipher={} key={} bits, {} key slot(s) in use",
                    l.version,
                    l.uuid,
                    l.cipher,
                    l.key_bits,
                    l.keyslots.iter().filter(|k| k.enabled).count()
                ),
                None => match &v.swap {
                    Some(s) => format!(
                        "swap label={} uuid={}",
                        s.label.as_deref().unwrap_or("-"),
                        s.uuid.as_deref().unwrap_or("-")
                    ),
                    None => "-".into(),
                },
            },
        };
        println!("  {place} {fs}");
    }
    info_lvm(r);
    Ok(())
}

/// The volume groups of `info`.
fn info_lvm(r: &InfoReport) {
    for g in &r.volume_groups {
        let pvs: Vec<String> = g
            .pvs
            .iter()
            .map(|p| match p.partition {
                Some(n) => format!("partition {n}"),
                None => format!("MISSING {}", p.id),
            })
            .collect();
        println!(
            "volume group:   {} (seqno {}, extent {}, PVs: {})",
            g.name,
            g.seqno,
            human(g.extent_size),
            pvs.join(", ")
        );
        for l in &g.lvs {
            let fs = l.fs_type.clone().unwrap_or_else(|| "-".into());
            let state = match &l.error {
                Some(e) => format!("unreadable: {e}"),
                None => fs,
            };
            println!(
                "  {:<24} {:>10} {:<10} {state}",
                format!("{}/{}", g.name, l.name),
                human(l.size),
                l.segment_type
            );
        }
        for w in &g.warnings {
            println!("  warning: {w}");
        }
    }
    for w in &r.lvm_warnings {
        println!("lvm warning:    {w}");
    }
}

/// `ls`.
pub fn ls(json: bool, long: bool, recursive: bool, entries: &[Entry]) -> Result<()> {
    if json {
        return emit_json(entries);
    }
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::new(out.lock());
    for e in entries {
        let name = if recursive {
            e.path.as_str()
        } else {
            e.path.rsplit('/').next().unwrap_or(&e.path)
        };
        let r = if long {
            let m = &e.meta;
            let size = match m.file_type {
                diskfab_core::fs::FileType::CharDevice
                | diskfab_core::fs::FileType::BlockDevice => {
                    format!("{}, {}", m.rdev.0, m.rdev.1)
                }
                _ => m.size.to_string(),
            };
            let target = e
                .target
                .as_deref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            writeln!(
                w,
                "{}{} {:>3} {:>5} {:>5} {:>10} {} {}{}",
                m.file_type.ls_char(),
                perm_string(m.perm),
                m.nlink,
                m.uid,
                m.gid,
                size,
                format_time(m.mtime.sec),
                name,
                target
            )
        } else {
            writeln!(w, "{name}")
        };
        r.map_err(|e| Error::io("writing output", e))?;
    }
    w.flush().map_err(|e| Error::io("writing output", e))
}

fn perm_string(p: u32) -> String {
    let mut s = String::with_capacity(9);
    for (i, c) in ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x']
        .iter()
        .enumerate()
    {
        let bit = 1 << (8 - i);
        let special = match i {
            2 if p & 0o4000 != 0 => Some(if p & bit != 0 { 's' } else { 'S' }),
            5 if p & 0o2000 != 0 => Some(if p & bit != 0 { 's' } else { 'S' }),
            8 if p & 0o1000 != 0 => Some(if p & bit != 0 { 't' } else { 'T' }),
            _ => None,
        };
        s.push(special.unwrap_or(if p & bit != 0 { *c } else { '-' }));
    }
    s
}

/// copy-in / copy-out.
pub fn copy(json: bool, r: &CopyReport) -> Result<()> {
    if json {
        return emit_json(r);
    }
    println!(
        "{} files ({}), {} dirs, {} symlinks, {} hard links, {} special",
        r.files,
        human(r.bytes),
        r.dirs,
        r.symlinks,
        r.hardlinks,
        r.special
    );
    for s in &r.skipped {
        eprintln!("skipped: {s}");
    }
    Ok(())
}

/// part.
pub fn parts(json: bool, p: &[Partition]) -> Result<()> {
    if json {
        return emit_json(p);
    }
    for p in p {
        println!(
            "partition {}: start {} size {} type {}",
            p.number, p.start, p.size, p.type_name
        );
    }
    Ok(())
}

/// clone.
pub fn clones(json: bool, paths: &[PathBuf]) -> Result<()> {
    if json {
        return emit_json(paths);
    }
    match (paths.first(), paths.last()) {
        (Some(a), Some(b)) => println!(
            "created {} clones: {} .. {}",
            paths.len(),
            a.display(),
            b.display()
        ),
        _ => println!("created no clones"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::perm_string;

    #[test]
    fn perm_string_matches_ls_for_special_bits() {
        assert_eq!(perm_string(0o755), "rwxr-xr-x");
        assert_eq!(perm_string(0o4755), "rwsr-xr-x");
        assert_eq!(perm_string(0o1777), "rwxrwxrwt");
        assert_eq!(perm_string(0o2644), "rw-r-Sr--");
    }
}
