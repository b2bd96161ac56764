//! Dispatch: one small function per verb, each calling exactly one core operation.

use crate::args::{Cli, Cmd, Fmt, Sel};
use crate::print;
use crate::progress::{bytes_bar, count_bar};
use diskfab_core::fs::{MkfsOptions, NewNode};
use diskfab_core::image::{self, BackingGate, CreateOptions, Format};
use diskfab_core::open::{Disk, DiskOptions, FsSession};
use diskfab_core::ops::images::{self, ConvertOptions};
use diskfab_core::ops::{files, hostcopy, info, manage};
use diskfab_core::part::{parse_size, TableKind};
use diskfab_core::storage::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

fn gate(cli: &Cli) -> BackingGate {
    let mut g = BackingGate::default();
    g.allow_dirs.extend(cli.backing_dirs.iter().cloned());
    if let Ok(v) = std::env::var("DISKFAB_BACKING_DIRS") {
        g.allow_dirs
            .extend(v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    g.allow_any = cli.allow_any_backing;
    g
}

fn open_fs(cli: &Cli, sel: &Sel, writable: bool) -> Result<FsSession> {
    FsSession::open(
        &sel.image,
        sel.partition,
        &DiskOptions {
            writable,
            gate: gate(cli),
        },
    )
}

fn fmt(f: Fmt) -> Format {
    match f {
        Fmt::Raw => Format::Raw,
        Fmt::Qcow2 => Format::Qcow2,
        Fmt::Vdi => Format::Vdi,
        Fmt::Vpc => Format::Vhd,
        Fmt::Vmdk => Format::Vmdk,
        Fmt::Vhdx => Format::Vhdx,
    }
}

/// Layout options shared by `create` and `convert` (`-o`).
#[derive(Default)]
struct Layout {
    fixed: bool,
    stream_optimized: bool,
    zstd: bool,
    extended_l2: bool,
    /// VHDX block size as given.
    block_size: Option<String>,
    /// VHD: size forced (no CHS rounding).
    force_size: bool,
    /// VHD for Azure (fixed, whole MiB, forced size).
    azure: bool,
    /// `subformat=dynamic` or `static=off` was given.
    dynamic_asked: bool,
}

impl Layout {
    /// The VHDX block size, if given.
    fn block_size(&self) -> Result<Option<u32>> {
        cluster(&self.block_size)
    }

    /// Whether the output is fully allocated (`azure=on` implies it).
    fn fixed(&self) -> bool {
        self.fixed || (self.azure && !self.dynamic_asked)
    }

    /// Applies one `KEY=VALUE`; returns false if the key is not a layout option.
    fn apply(&mut self, kv: &str) -> bool {
        match kv.split_once('=') {
            Some(("static", "on")) | Some(("subformat", "fixed")) => self.fixed = true,
            Some(("static", "off")) | Some(("subformat", "dynamic")) => {
                self.fixed = false;
                self.dynamic_asked = true;
            }
            Some(("force_size", "on")) => self.force_size = true,
            Some(("force_size", "off")) => self.force_size = false,
            Some(("azure", "on")) => self.azure = true,
            Some(("azure", "off")) => self.azure = false,
            Some(("subformat", "streamOptimized")) => self.stream_optimized = true,
            Some(("subformat", "monolithicSparse")) => self.stream_optimized = false,
            Some(("compression_type", "zstd")) | Some(("compression", "zstd")) => self.zstd = true,
            Some(("compression_type", "zlib")) | Some(("compression", "zlib")) => self.zstd = false,
            Some(("block_size", v)) => self.block_size = Some(v.to_string()),
            Some(("extended_l2", "on")) => self.extended_l2 = true,
            Some(("extended_l2", "off")) => self.extended_l2 = false,
            _ => return false,
        }
        true
    }
}

const LAYOUT_HELP: &str = "static=on|off, subformat=fixed|dynamic|monolithicSparse|streamOptimized, compression_type=zlib|zstd, extended_l2=on|off, block_size=SIZE, force_size=on|off, azure=on|off";

fn options(s: &Option<String>) -> impl Iterator<Item = &str> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
}

fn cluster(s: &Option<String>) -> Result<Option<u32>> {
    s.as_deref()
        .map(|s| {
            let v = parse_size(s)?;
            u32::try_from(v).map_err(|_| Error::Invalid(format!("cluster size {s} is too large")))
        })
        .transpose()
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match &cli.cmd {
        Cmd::Create {
            image,
            size,
            format,
            backing,
            cluster_size,
            options: o,
        } => {
            let size = size.as_deref().map(parse_size).transpose()?;
            let mut layout = Layout::default();
            for kv in options(o) {
                if !layout.apply(kv) {
                    return Err(Error::Invalid(format!(
                        "unknown option {kv:?}: use {LAYOUT_HELP}"
                    )));
                }
            }
            let opts = CreateOptions {
                format: fmt(*format),
                size,
                backing: backing.clone(),
                backing_format: None,
                cluster_size: cluster(cluster_size)?.or(layout.block_size()?),
                fixed: layout.fixed(),
                stream_optimized: layout.stream_optimized,
                zstd: layout.zstd,
                extended_l2: layout.extended_l2,
                force_size: layout.force_size,
                azure: layout.azure,
            };
            image::create(image, &opts)?;
            match size.filter(|&s| opts.azure && image::vhd::azure_size(s) != s) {
                Some(s) => {
                    let to = image::vhd::azure_size(s);
                    print::done(
                        json,
                        &format!(
                            "created {} ({to} bytes: {s} rounded up to a whole MiB for Azure)",
                            image.display()
                        ),
                        serde_json::json!({"created": image, "virtual_size": to, "rounded_up_from": s}),
                    )
                }
                None => print::done(
                    json,
                    &format!("created {}", image.display()),
                    serde_json::json!({"created": image}),
                ),
            }
        }
        Cmd::Clone {
            base,
            count,
            out,
            cluster_size,
        } => clone(base, *count, out, cluster(cluster_size)?, json),
        Cmd::Info { image } => {
            let disk = Disk::open(
                image,
                &DiskOptions {
                    writable: false,
                    gate: gate(&cli),
                },
            )?;
            let report = info::info(&disk)?;
            print::info(json, &report)?;
            // Everything readable was printed; an unreadable filesystem still fails the command.
            match report.volumes.iter().find_map(|v| v.error.as_ref()) {
                Some(e) => Err(Error::BadImage(format!("{}: {e}", image.display()))),
                None => Ok(()),
            }
        }
        Cmd::Ls {
            sel,
            path,
            long,
            recursive,
        } => {
            let mut s = open_fs(&cli, sel, false)?;
            let entries = files::ls(s.fs.as_mut(), path, *recursive)?;
            print::ls(json, *long, *recursive, &entries)
        }
        Cmd::Cat { sel, paths } => {
            let mut s = open_fs(&cli, sel, false)?;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            for p in paths {
                files::cat(s.fs.as_mut(), p, &mut w)?;
            }
            w.flush().map_err(|e| Error::io("writing output", e))
        }
        Cmd::CopyIn { sel, paths } => {
            let (dest, srcs) = split_last(paths)?;
            let srcs: Vec<&Path> = srcs.iter().map(Path::new).collect();
            let total = srcs.iter().map(|p| tree_size(p)).sum();
            let pb = bytes_bar(Some(total), json);
            let mut s = open_fs(&cli, sel, true)?;
            let r = hostcopy::copy_in(s.fs.as_mut(), &srcs, dest, &|n| pb.inc(n))?;
            s.commit()?;
            pb.finish_and_clear();
            print::copy(json, &r)
        }
        Cmd::CopyOut { sel, paths } => {
            let (dest, srcs) = split_last(paths)?;
            let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
            let pb = bytes_bar(None, json);
            let mut s = open_fs(&cli, sel, false)?;
            let r = hostcopy::copy_out(s.fs.as_mut(), &srcs, Path::new(dest), &|n| pb.inc(n))?;
            pb.finish_and_clear();
            print::copy(json, &r)
        }
        Cmd::Mkdir {
            sel,
            paths,
            parents,
            mode,
        } => {
            let attr = NewNode::root(files::parse_mode(mode)?);
            edit(&cli, sel, paths, |fs, p| {
                files::mkdir(fs, p, *parents, &attr)
            })
        }
        Cmd::Rm {
            sel,
            paths,
            recursive,
            force,
        } => edit(&cli, sel, paths, |fs, p| {
            files::rm(fs, p, *recursive, *force)
        }),
        Cmd::Chmod { sel, mode, paths } => {
            let m = files::parse_mode(mode)?;
            edit(&cli, sel, paths, |fs, p| files::chmod(fs, p, m))
        }
        Cmd::Chown { sel, owner, paths } => {
            edit(&cli, sel, paths, |fs, p| files::chown(fs, p, owner))
        }
        Cmd::Ln {
            sel,
            symbolic,
            target,
            link,
        } => edit(&cli, sel, std::slice::from_ref(link), |fs, l| {
            files::ln(fs, target, l, *symbolic, &NewNode::root(0o777))
        }),
        Cmd::Mv { sel, src, dst } => edit(&cli, sel, std::slice::from_ref(src), |fs, s| {
            files::mv(fs, s, dst)
        }),
        Cmd::Mkfs {
            sel,
            fs_type,
            label,
        } => {
            let opts = MkfsOptions {
                label: label.clone(),
                fs_type: fs_type.clone(),
                uuid: None,
                time: None,
            };
            manage::mkfs(
                &sel.image,
                sel.partition,
                &opts,
                &DiskOptions {
                    writable: true,
                    gate: gate(&cli),
                },
            )?;
            print::done(
                json,
                &format!("created {fs_type} on {}", sel.image.display()),
                serde_json::json!({"mkfs": fs_type}),
            )
        }
        Cmd::Part {
            image,
            gpt,
            mbr,
            add,
        } => {
            let kind = if *gpt {
                Some(TableKind::Gpt)
            } else if *mbr {
                Some(TableKind::Mbr)
            } else {
                None
            };
            let specs = add
                .iter()
                .map(|s| manage::parse_part_spec(s))
                .collect::<Result<Vec<_>>>()?;
            let parts = manage::part(
                image,
                kind,
                &specs,
                &DiskOptions {
                    writable: true,
                    gate: gate(&cli),
                },
            )?;
            print::parts(json, &parts)
        }
        Cmd::Convert {
            src,
            dst,
            format,
            options,
            progress,
            compress,
            no_sync,
        } => {
            let mut opts = ConvertOptions {
                format: fmt(*format),
                gate: gate(&cli),
                compress: *compress,
                no_sync: *no_sync,
                ..Default::default()
            };
            let mut layout = Layout::default();
            for kv in self::options(options) {
                match kv.split_once('=') {
                    Some(("cluster_size", v)) => opts.cluster_size = cluster(&Some(v.to_string()))?,
                    Some(("backing", v)) => opts.backing = Some(PathBuf::from(v)),
                    _ if layout.apply(kv) => {}
                    _ => {
                        return Err(Error::Invalid(format!(
                        "unknown option {kv:?}: use cluster_size=SIZE, backing=BASE, {LAYOUT_HELP}"
                    )))
                    }
                }
            }
            if let Some(b) = layout.block_size()? {
                opts.cluster_size = Some(b);
            }
            opts.fixed = layout.fixed();
            opts.force_size = layout.force_size;
            opts.azure = layout.azure;
            opts.stream_optimized = layout.stream_optimized;
            opts.zstd = layout.zstd;
            opts.extended_l2 = layout.extended_l2;
            let pb = if *progress {
                // The bar's total is the source's guest size (a failed open is reported by
                // `convert` itself).
                let total = image::Image::open(
                    src,
                    &image::OpenOptions {
                        writable: false,
                        gate: gate(&cli),
                    },
                )
                .ok()
                .map(|i| i.dev().size());
                bytes_bar(total, json)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let r = images::convert(src, dst, &opts, &|n| pb.inc(n))?;
            pb.finish_and_clear();
            print::converted(json, &r)
        }
        Cmd::Compare { a, b } => {
            let r = images::compare(a, b, &gate(&cli))?;
            print::compared(json, &r)?;
            if r.identical {
                Ok(())
            } else {
                print::set_exit(1);
                Ok(())
            }
        }
        Cmd::Check { image } => {
            let r = image::check(image)?;
            print::checked(json, &r)?;
            print::set_exit(r.exit_code() as u8);
            Ok(())
        }
        Cmd::Map { image } => {
            let img = image::Image::open(
                image,
                &image::OpenOptions {
                    writable: false,
                    gate: gate(&cli),
                },
            )?;
            print::mapped(json, &image::map(&img)?)
        }
        Cmd::Measure {
            src,
            format,
            cluster_size,
        } => {
            let r = images::measure(src, fmt(*format), cluster(cluster_size)?, &gate(&cli))?;
            print::measured(json, &r)
        }
        Cmd::Diff {
            a,
            b,
            csv,
            content,
            xattrs,
            times,
            partition,
            partition_b,
            no_fast_path,
        } => crate::deltacmd::diff(
            &cli,
            (a, *partition),
            (b, partition_b.or(*partition)),
            diskfab_core::delta::diff::DiffOptions {
                xattrs: *xattrs,
                times: *times,
                content: *content,
            },
            !*no_fast_path,
            *csv,
            gate(&cli),
        ),
        Cmd::Build {
            recipe,
            out,
            format,
        } => crate::deltacmd::build(&cli, recipe, out.as_deref(), format.map(fmt), gate(&cli)),
        Cmd::Catalog { catalog, cmd } => {
            crate::catalogcmd::run(&cli, catalog.as_deref(), cmd, gate(&cli))
        }
        Cmd::Delta { cmd } => crate::deltacmd::delta(&cli, cmd, gate(&cli)),
        Cmd::Customize {
            sel,
            ops,
            settings,
            dry_run,
        } => crate::custom::customize(&cli, sel, ops, settings, *dry_run, gate(&cli)),
        Cmd::Stamp {
            base,
            instances,
            out,
            ops,
            settings,
            name_template,
            jobs,
            force,
            partition,
            verify_replay,
        } => crate::custom::stamp(
            &cli,
            crate::custom::StampArgs {
                base,
                instances,
                out,
                ops,
                settings,
                name_template,
                jobs: *jobs,
                force: *force,
                partition: *partition,
                verify_replay: *verify_replay,
            },
            gate(&cli),
        ),
        Cmd::Inspect {
            image,
            no_applications,
            xml,
        } => {
            let disk = Disk::open(
                image,
                &DiskOptions {
                    writable: false,
                    gate: gate(&cli),
                },
            )?;
            let opts = diskfab_core::ops::inspect::Options {
                no_applications: *no_applications,
            };
            let r = diskfab_core::ops::inspect::inspect(&disk, opts)?;
            if *xml {
                print!("{}", diskfab_core::ops::inspect_xml::to_xml(&r));
                return Ok(());
            }
            print::inspected(json, &r)
        }
        Cmd::Docs => {
            print!("{}", crate::docs::markdown());
            Ok(())
        }
    }
}

/// Opens the filesystem writable, applies `f` to every path, commits once.
fn edit(
    cli: &Cli,
    sel: &Sel,
    paths: &[String],
    mut f: impl FnMut(&mut dyn diskfab_core::fs::Filesystem, &str) -> Result<()>,
) -> Result<()> {
    let mut s = open_fs(cli, sel, true)?;
    for p in paths {
        f(s.fs.as_mut(), p)?;
    }
    s.commit()?;
    print::done(
        cli.json,
        "",
        serde_json::json!({"ok": true, "paths": paths}),
    )
}

fn split_last(paths: &[String]) -> Result<(&str, &[String])> {
    match paths.split_last() {
        Some((last, rest)) if !rest.is_empty() => Ok((last.as_str(), rest)),
        _ => Err(Error::Invalid(
            "need at least one source and a destination".into(),
        )),
    }
}

/// Bytes of regular files under a host path (for the progress bar total).
fn tree_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0)
    } else if m.is_file() {
        m.len()
    } else {
        0
    }
}

fn clone(
    base: &Path,
    count: usize,
    out: &Path,
    cluster_size: Option<u32>,
    json: bool,
) -> Result<()> {
    if count == 0 {
        return Err(Error::Invalid("--count must be at least 1".into()));
    }
    let stem = base.file_stem().and_then(|s| s.to_str()).ok_or_else(|| {
        Error::Invalid(format!("{}: base has no usable file name", base.display()))
    })?;
    let width = count.to_string().len().max(4);
    let names: Vec<String> = (1..=count)
        .map(|i| format!("{stem}-{i:0width$}.qcow2"))
        .collect();
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("{}", out.display()), e))?;
    let pb = count_bar(count as u64, json);
    let paths = image::clone_many(base, out, &names, cluster_size)?;
    pb.finish_and_clear();
    print::clones(json, &paths)
}
