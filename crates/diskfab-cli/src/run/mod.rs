//! Dispatch: one small function per verb, each calling exactly one core operation. The verbs
//! live in one file per family: images (create, clone, info, map, measure), convert, check
//! (compare, check), files (ls, cat, copy-in, copy-out), edit (mkdir, rm, chmod, chown, ln, mv),
//! manage (mkfs, part, inspect); customize/stamp, diff/delta/build and catalog in
//! `custom.rs`, `deltacmd.rs` and `catalogcmd.rs`.

mod check;
mod convert;
mod edit;
mod files;
mod images;
mod layout;
mod manage;

use crate::args::{Cli, Cmd, Fmt, Sel};
use diskfab_core::image::{BackingGate, Format};
use diskfab_core::open::{DiskOptions, FsSession};
use diskfab_core::storage::Result;
use std::path::PathBuf;

/// The backing-file gate from `--backing-dir`, `DISKFAB_BACKING_DIRS` and `--allow-any-backing`.
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

/// Options to open a disk, with the gate.
fn disk_opts(cli: &Cli, writable: bool) -> DiskOptions {
    DiskOptions {
        writable,
        gate: gate(cli),
    }
}

/// Opens the selected filesystem.
fn open_fs(cli: &Cli, sel: &Sel, writable: bool) -> Result<FsSession> {
    FsSession::open(
        &sel.image,
        sel.partition.as_ref(),
        &disk_opts(cli, writable),
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

/// Runs one command.
pub fn run(cli: &Cli) -> Result<()> {
    let json = cli.json;
    match &cli.cmd {
        Cmd::Create {
            image,
            size,
            format,
            backing,
            cluster_size,
            options,
        } => images::create(json, image, size, *format, backing, cluster_size, options),
        Cmd::Clone {
            base,
            count,
            out,
            cluster_size,
        } => images::clone(base, *count, out, cluster_size, json),
        Cmd::Info { image } => images::info(cli, image),
        Cmd::Ls {
            sel,
            path,
            long,
            recursive,
        } => files::ls(cli, sel, path, *long, *recursive),
        Cmd::Cat { sel, paths } => files::cat(cli, sel, paths),
        Cmd::CopyIn { sel, paths } => files::copy_in(cli, sel, paths),
        Cmd::CopyOut { sel, paths } => files::copy_out(cli, sel, paths),
        Cmd::Mkdir {
            sel,
            paths,
            parents,
            mode,
        } => edit::mkdir(cli, sel, paths, *parents, mode),
        Cmd::Rm {
            sel,
            paths,
            recursive,
            force,
        } => edit::rm(cli, sel, paths, *recursive, *force),
        Cmd::Chmod { sel, mode, paths } => edit::chmod(cli, sel, mode, paths),
        Cmd::Chown { sel, owner, paths } => edit::chown(cli, sel, owner, paths),
        Cmd::Ln {
            sel,
            symbolic,
            target,
            link,
        } => edit::ln(cli, sel, *symbolic, target, std::slice::from_ref(link)),
        Cmd::Mv { sel, src, dst } => edit::mv(cli, sel, std::slice::from_ref(src), dst),
        Cmd::Mkfs {
            sel,
            fs_type,
            label,
        } => manage::mkfs(cli, sel, fs_type, label),
        Cmd::Part {
            image,
            gpt,
            mbr,
            add,
        } => manage::part(cli, image, *gpt, *mbr, add),
        Cmd::Convert {
            src,
            dst,
            format,
            options,
            progress,
            compress,
            no_sync,
        } => convert::convert(
            cli,
            src,
            dst,
            *format,
            options,
            convert::Switches {
                progress: *progress,
                compress: *compress,
                no_sync: *no_sync,
            },
        ),
        Cmd::Compare { a, b } => check::compare(cli, a, b),
        Cmd::Check { image } => check::check(cli, image),
        Cmd::Map { image } => images::map(cli, image),
        Cmd::Measure {
            src,
            format,
            cluster_size,
        } => images::measure(cli, src, *format, cluster_size),
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
            cli,
            (a, partition.clone()),
            (b, partition_b.clone().or(partition.clone())),
            diskfab_core::delta::diff::DiffOptions {
                xattrs: *xattrs,
                times: *times,
                content: *content,
            },
            !*no_fast_path,
            *csv,
            gate(cli),
        ),
        Cmd::Build {
            recipe,
            out,
            format,
        } => crate::deltacmd::build(cli, recipe, out.as_deref(), format.map(fmt), gate(cli)),
        Cmd::Catalog { catalog, cmd } => {
            crate::catalogcmd::run(cli, catalog.as_deref(), cmd, gate(cli))
        }
        Cmd::Delta { cmd } => crate::deltacmd::delta(cli, cmd, gate(cli)),
        Cmd::Customize {
            sel,
            ops,
            settings,
            dry_run,
        } => crate::custom::customize(cli, sel, ops, settings, *dry_run, gate(cli)),
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
            cli,
            crate::custom::StampArgs {
                base,
                instances,
                out,
                ops,
                settings,
                name_template,
                jobs: *jobs,
                force: *force,
                partition: partition.clone(),
                verify_replay: *verify_replay,
            },
            gate(cli),
        ),
        Cmd::Inspect {
            image,
            no_applications,
            xml,
        } => manage::inspect(cli, image, *no_applications, *xml),
        Cmd::Docs => {
            print!("{}", crate::docs::markdown());
            Ok(())
        }
    }
}
