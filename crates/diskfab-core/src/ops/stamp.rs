//! `stamp`: thousands of customized clones of one base, per seed 000 — the customization is
//! analysed once, identical block writes go once into `DIR/_common.qcow2` (backing = BASE),
//! and each instance's overlay `DIR/<name>.qcow2` (backing = `_common.qcow2`) receives only its
//! own blocks, synthesized from a recorded template (see `diskfab_customize::replay`).
//!
//! Order of work: everything is checked before a clone exists (CSV, templates, every
//! instance's plan, free space); a clone appears under its final name only when complete; the
//! job's state lives in DIR, so a killed stamp re-run with the same arguments resumes.

use super::stamp_plan::{self, State};
use super::stamp_write::Writer;
use crate::open::{Disk, DiskOptions};
use crate::select::VolumeSel;
use diskfab_customize::instances::{self, Instance};
use diskfab_customize::ops::Op;
use diskfab_customize::record::{RecordingDev, Writes};
use diskfab_customize::replay::{self, Analysis, Mode};
use diskfab_customize::staged::Action;
use diskfab_customize::{Ctx, Settings};
use diskfab_fs::{FsDriver, Timespec};
use diskfab_image::{BackingGate, CreateOptions, Format, Image, OpenOptions};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One instance's plan: its actions and generated secrets.
pub(super) type PlanOut = (Vec<Action>, BTreeMap<String, String>);
pub(super) type Planned = Option<PlanOut>;

/// The shared layer's file name.
pub const COMMON: &str = "_common.qcow2";

/// What to stamp.
pub struct StampOptions {
    /// Base image (opened read-only, never written).
    pub base: PathBuf,
    /// The instances CSV.
    pub instances: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// Operations, in order; arguments may hold `{{column}}` templates.
    pub ops: Vec<Op>,
    /// Shared settings (crypto, network format, seed).
    pub settings: Settings,
    /// Clone name template (default `{{name}}`).
    pub name_template: String,
    /// Worker threads.
    pub jobs: usize,
    /// Replace an existing output directory of another job.
    pub force: bool,
    /// Partition holding the guest root (default: detected).
    pub partition: Option<VolumeSel>,
    /// Backing policy for opening BASE.
    pub gate: BackingGate,
    /// Also run every instance's full customization and check the replayed writes equal it
    /// (slow; for tests).
    pub verify_replay: bool,
}

/// One clone in the report.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceReport {
    /// Name.
    pub name: String,
    /// File.
    pub file: String,
    /// Blocks written into its overlay.
    pub blocks_written: usize,
    /// Bytes written into its overlay.
    pub bytes_written: u64,
    /// Size of the overlay file.
    pub file_bytes: u64,
    /// `replayed` (synthesized from its group's template), `recorded` (the template itself:
    /// customized for real during the analysis), `redone` (full customization in memory, where
    /// replay does not apply) or `existing` (completed by an earlier, interrupted run).
    pub mode: String,
    /// Operations whose writes were replayed.
    pub ops_replayed: usize,
    /// Operations redone for this instance.
    pub ops_redone: usize,
    /// Generated random passwords by user.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub random_passwords: BTreeMap<String, String>,
    /// Microseconds spent on this clone.
    pub us: u64,
}

/// A replay group in the report.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// Instances in the group.
    pub instances: usize,
    /// `replay` or `redo`.
    pub mode: Mode,
    /// Why it is redone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Files whose contents differ per instance.
    pub varying_files: usize,
    /// Blocks the template writes.
    pub template_blocks: usize,
}

/// The `stamp` report.
#[derive(Debug, Clone, Serialize)]
pub struct StampReport {
    /// Output directory.
    pub out: String,
    /// The shared layer.
    pub common: String,
    /// Operations applied straight to the shared layer (the non-templated ones before the
    /// first templated one).
    pub common_ops: usize,
    /// Blocks written once into the shared layer by the replay analysis.
    pub shared_blocks: usize,
    /// Replay groups.
    pub groups: Vec<GroupReport>,
    /// The clones.
    pub instances: Vec<InstanceReport>,
    /// True when this run continued an interrupted one.
    pub resumed: bool,
    /// Milliseconds: checking and planning, analysis, writing clones, total.
    pub plan_ms: u64,
    /// Analysis time.
    pub analyse_ms: u64,
    /// Clone writing time.
    pub write_ms: u64,
    /// Total.
    pub total_ms: u64,
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// The job's identity: its inputs and options.
fn fingerprint(o: &StampOptions, csv: &[u8]) -> Result<String> {
    let mut h = blake3::Hasher::new_derive_key("diskfab stamp job v1");
    let base =
        std::fs::canonicalize(&o.base).map_err(|e| Error::io(o.base.display().to_string(), e))?;
    let m = std::fs::metadata(&base).map_err(|e| Error::io(base.display().to_string(), e))?;
    let parts = [
        base.display().to_string(),
        format!("{}", m.len()),
        serde_json::to_string(&o.ops).unwrap_or_default(),
        format!(
            "{:?}/{:?}/{:?}",
            o.settings.crypto, o.settings.net_style, o.settings.seed
        ),
        o.name_template.clone(),
        fingerprint_sel(o.partition.as_ref()),
    ];
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.update(csv);
    Ok(h.finalize().to_hex().to_string())
}

fn gate_for(o: &StampOptions) -> Result<BackingGate> {
    let mut g = o.gate.clone();
    let base =
        std::fs::canonicalize(&o.base).map_err(|e| Error::io(o.base.display().to_string(), e))?;
    if let Some(d) = base.parent() {
        g.allow_dirs.push(d.to_path_buf());
    }
    Ok(g)
}

/// The guest root's volume: its device, byte offset in the disk, driver.
pub(super) struct Vol {
    pub dev: DevRef,
    pub offset: u64,
    pub driver: &'static dyn FsDriver,
}

fn volume(disk: &Disk, partition: Option<&VolumeSel>) -> Result<Vol> {
    let v = disk.select(partition)?;
    // Clones are written as disk blocks at the volume's offset: an LV must be one piece.
    let (offset, _) = v.disk_range().ok_or_else(|| {
        Error::Unsupported(format!(
            "stamp: {} is spread over several places on the disk (more than one segment or \
             stripe); stamp writes clones as disk blocks and needs a contiguous volume",
            v.describe()
        ))
    })?;
    let (driver, _) = v.fs.as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "{} holds no filesystem diskfab can read",
            v.describe()
        ))
    })?;
    Ok(Vol {
        dev: v.dev.clone(),
        offset,
        driver: *driver,
    })
}

/// The selection as jobs made before LV selections fingerprinted it (`Some(2)`), so they resume.
fn fingerprint_sel(s: Option<&VolumeSel>) -> String {
    match s {
        None => "None".into(),
        Some(s) => format!("Some({s})"),
    }
}

/// Runs a stamp job.
pub fn stamp(o: &StampOptions, progress: &(dyn Fn() + Sync)) -> Result<StampReport> {
    let t0 = Instant::now();
    let csv = read_bounded(&o.instances, 256 << 20)?;
    let text = String::from_utf8(csv.clone())
        .map_err(|_| Error::Invalid(format!("{}: not UTF-8 text", o.instances.display())))?;
    let split = o
        .ops
        .iter()
        .position(|op| op.is_templated() || op.is_random())
        .unwrap_or(o.ops.len());
    let (common_ops, per_ops) = o.ops.split_at(split);
    if let Some(op) = per_ops.iter().find(|op| diskfab_customize::is_runner(op)) {
        return Err(Error::Invalid(format!(
            "--{} {:?} comes after a templated operation: stamp runs commands and package \
             operations only in the shared layer (put them first), or use --firstboot-command",
            op.name, op.arg
        )));
    }
    // Every row is checked before anything is written, and every bad row is reported.
    let rendered: Vec<(Instance, Vec<Op>)> = instances::prepare(&text, &o.name_template, per_ops)?;
    let insts: Vec<Instance> = rendered.iter().map(|(i, _)| i.clone()).collect();
    let fp = fingerprint(o, &csv)?;
    let gate = gate_for(o)?;
    let existed = o.out.exists();
    let resumed = prepare_dir(o, &insts, &fp)?;
    let common = o.out.join(COMMON);
    let res = if resumed {
        resume(o, &fp, &rendered, &gate, t0, progress)
    } else {
        fresh(o, &fp, common_ops, &rendered, &gate, t0, progress)
    };
    let mut r = match res {
        Ok(r) => r,
        Err(e) if !resumed => {
            // Nothing half-done stays behind: a failed check or write removes what this run
            // made (re-running a job killed mid-way resumes instead).
            if existed {
                let _ = std::fs::remove_file(o.out.join(format!(".{COMMON}.tmp")));
                let _ = std::fs::remove_file(o.out.join(stamp_plan::STATE));
                let _ = std::fs::remove_file(o.out.join(stamp_plan::PLAN));
            } else {
                let _ = std::fs::remove_dir_all(&o.out);
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    stamp_plan::save_state(
        &o.out,
        &State {
            fingerprint: fp,
            phase: "done".into(),
        },
    )?;
    r.common = common.display().to_string();
    r.total_ms = ms(t0);
    r.resumed = resumed;
    Ok(r)
}

fn read_bounded(p: &Path, max: u64) -> Result<Vec<u8>> {
    let m = std::fs::metadata(p).map_err(|e| Error::io(p.display().to_string(), e))?;
    if m.len() > max {
        return Err(Error::Invalid(format!(
            "{} is larger than {max} bytes",
            p.display()
        )));
    }
    std::fs::read(p).map_err(|e| Error::io(p.display().to_string(), e))
}

/// Creates or checks the output directory; `Ok(true)` when an interrupted run of the same job
/// can be resumed.
fn prepare_dir(o: &StampOptions, insts: &[Instance], fp: &str) -> Result<bool> {
    let dir = &o.out;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        stamp_plan::save_state(
            dir,
            &State {
                fingerprint: fp.into(),
                phase: "started".into(),
            },
        )?;
        return Ok(false);
    }
    let state = stamp_plan::load_state(dir);
    let same_job = state.as_ref().is_some_and(|s| s.fingerprint == fp);
    let empty = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir.display().to_string(), e))?
        .next()
        .is_none();
    if !same_job && !empty && !o.force {
        return Err(Error::Exists(format!(
            "{} already exists and holds another job's output: choose a new directory, or \
             --force to replace its clones",
            dir.display()
        )));
    }
    let resumable = same_job
        && state.as_ref().is_some_and(|s| s.phase != "started")
        && dir.join(COMMON).exists()
        && stamp_plan::load_plan(dir, fp).is_some();
    if !resumable {
        // Start over: remove what this job (or the one being replaced) made.
        let mut ours: BTreeSet<String> =
            insts.iter().map(|i| format!("{}.qcow2", i.name)).collect();
        ours.insert(COMMON.into());
        for e in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir.display().to_string(), e))?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if ours.contains(&n)
                || n.starts_with(".diskfab-")
                || (n.starts_with('.') && n.ends_with(".tmp"))
            {
                std::fs::remove_file(e.path())
                    .map_err(|er| Error::io(e.path().display().to_string(), er))?;
            }
        }
        stamp_plan::save_state(
            dir,
            &State {
                fingerprint: fp.into(),
                phase: "started".into(),
            },
        )?;
    }
    Ok(resumable)
}

fn open_disk(path: &Path, writable: bool, gate: &BackingGate) -> Result<Disk> {
    Disk::open(
        path,
        &DiskOptions {
            writable,
            gate: gate.clone(),
        },
    )
}

/// Plans every instance against the shared layer (in parallel, read-only).
fn plan_all(
    vol: &Vol,
    rendered: &[(Instance, Vec<Op>)],
    settings: &Settings,
    jobs: usize,
) -> Result<Vec<PlanOut>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Planned>> = Mutex::new(vec![None; rendered.len()]);
    // Every instance's planning error is collected (up to MAX_LISTED), not just the first.
    let errs: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    let enough = || {
        errs.lock()
            .map(|e| e.len() >= instances::MAX_LISTED)
            .unwrap_or(true)
    };
    // Every instance reads the same few guest files: keep their blocks in memory.
    let cached: DevRef = Arc::new(diskfab_storage::CacheDev::new(vol.dev.clone(), 256 << 20));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                let mut fs = match vol.driver.open(cached.clone(), false) {
                    Ok(f) => f,
                    Err(e) => {
                        errs.lock().unwrap_or_else(|p| p.into_inner()).push((0, e));
                        return;
                    }
                };
                let guest = diskfab_customize::guest::detect(
                    &mut diskfab_customize::staged::Staged::new(fs.as_mut()),
                );
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= rendered.len() || enough() {
                        break;
                    }
                    let (inst, ops) = &rendered[k];
                    let mut ctx = Ctx::new(settings, &inst.name);
                    if let Ok(g) = &guest {
                        ctx.set_guest(g.clone());
                    }
                    match diskfab_customize::plan(fs.as_mut(), ops, &mut ctx) {
                        Ok(a) => {
                            if let Ok(mut o) = out.lock() {
                                o[k] = Some((replay::compact(a), ctx.secrets));
                            }
                        }
                        Err(e) => {
                            errs.lock().unwrap_or_else(|p| p.into_inner()).push((k, e));
                        }
                    }
                }
            });
        }
    });
    let errs = errs.into_inner().unwrap_or_else(|p| p.into_inner());
    if !errs.is_empty() {
        return Err(planning_error(rendered, errs));
    }
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|x| x.ok_or_else(|| Error::Failed("an instance was not planned".into())))
        .collect()
}

/// One error for every instance that could not be planned: a usage error listing the rows,
/// unless one of them is not about the row (the image or the host failed: that error, as is).
fn planning_error(rendered: &[(Instance, Vec<Op>)], mut errs: Vec<(usize, Error)>) -> Error {
    errs.sort_by_key(|(k, _)| *k);
    if let Some(i) = errs.iter().position(|(_, e)| {
        matches!(
            e,
            Error::Io { .. } | Error::BadImage(_) | Error::Unsupported(_) | Error::Denied(_)
        )
    }) {
        return errs.swap_remove(i).1;
    }
    let problems = errs
        .into_iter()
        .map(|(k, e)| match rendered.get(k) {
            Some((inst, _)) => instances::Problem {
                row: inst.line,
                columns: vec![],
                reason: format!("{} cannot be customized: {e}", inst.name),
            },
            None => instances::Problem {
                row: 1,
                columns: vec![],
                reason: e.to_string(),
            },
        })
        .collect();
    instances::problems_error(problems)
}

fn fresh(
    o: &StampOptions,
    fp: &str,
    common_ops: &[Op],
    rendered: &[(Instance, Vec<Op>)],
    gate: &BackingGate,
    t0: Instant,
    progress: &(dyn Fn() + Sync),
) -> Result<StampReport> {
    let mut settings = o.settings.clone();
    let clock = settings
        .clock
        .unwrap_or_else(diskfab_customize::staged::real_now);
    settings.clock = Some(clock);
    let common = o.out.join(COMMON);
    let tmp = o.out.join(format!(".{COMMON}.tmp"));
    build_common(o, &tmp, common_ops, &settings, gate)?;
    let disk = open_disk(&tmp, false, gate)?;
    let vol = volume(&disk, o.partition.as_ref())?;
    let plans = plan_all(&vol, rendered, &settings, o.jobs)?;
    let chunk = u64::from(vol.driver.open(vol.dev.clone(), false)?.info()?.block_size);
    check_space(&vol, &plans, &o.out, chunk)?;
    let plan_ms = ms(t0);
    let t1 = Instant::now();
    let actions: Vec<Vec<Action>> = plans.iter().map(|(a, _)| a.clone()).collect();
    let analysis = replay::analyse(&vol.dev, vol.driver, &actions, clock, chunk)?;
    if o.verify_replay {
        verify(&vol, &analysis, &actions, clock)?;
    }
    drop(disk);
    // Move the identical chunks into the shared layer, keeping their previous contents so a
    // resumed run can still see the layer as it was analysed.
    let undo = commit_common(&tmp, &analysis, gate, o.partition.as_ref())?;
    stamp_plan::save_plan(&o.out, fp, &analysis, &undo, clock)?;
    std::fs::rename(&tmp, &common).map_err(|e| Error::io(common.display().to_string(), e))?;
    stamp_plan::save_state(
        &o.out,
        &State {
            fingerprint: fp.into(),
            phase: "analysed".into(),
        },
    )?;
    let analyse_ms = ms(t1);
    let mut analysis = analysis;
    analysis.common = undo;
    let t2 = Instant::now();
    let disk = open_disk(&common, false, gate)?;
    let vol = volume(&disk, o.partition.as_ref())?;
    let view: DevRef = Arc::new(prefilled(&vol.dev, &analysis.common, chunk)?);
    let w = Writer {
        o,
        vol: &vol,
        view: &view,
        a: &analysis,
        gate,
        progress,
        clock,
        disk_size: disk.image.dev().size(),
    };
    let instances = w.all(rendered, plans.into_iter().map(Some).collect())?;
    Ok(report(
        o,
        common_ops.len(),
        &analysis,
        instances,
        plan_ms,
        analyse_ms,
        ms(t2),
    ))
}

/// A view of the shared layer as it was analysed: the committed chunks' previous contents
/// laid over it.
fn prefilled(dev: &DevRef, undo: &Writes, chunk: u64) -> Result<RecordingDev> {
    let r = RecordingDev::new(dev.clone(), chunk)?;
    for (off, data) in undo {
        diskfab_storage::BlockDev::write_at(&r, data, *off)?;
    }
    Ok(r)
}

fn resume(
    o: &StampOptions,
    fp: &str,
    rendered: &[(Instance, Vec<Op>)],
    gate: &BackingGate,
    t0: Instant,
    progress: &(dyn Fn() + Sync),
) -> Result<StampReport> {
    let plan = stamp_plan::load_plan(&o.out, fp)
        .ok_or_else(|| Error::Failed("stamp plan vanished".into()))?;
    let mut settings = o.settings.clone();
    settings.clock = Some(plan.clock);
    let common = o.out.join(COMMON);
    let disk = open_disk(&common, false, gate)?;
    let vol = volume(&disk, o.partition.as_ref())?;
    let mut analysis = plan.analysis;
    let view: DevRef = Arc::new(prefilled(&vol.dev, &analysis.common, analysis.chunk)?);
    // Plan the instances still missing against the layer as analysed, and find their groups.
    let todo: Vec<usize> = (0..rendered.len())
        .filter(|k| {
            !o.out
                .join(format!("{}.qcow2", rendered[*k].0.name))
                .exists()
        })
        .collect();
    let sub: Vec<(Instance, Vec<Op>)> = todo.iter().map(|k| rendered[*k].clone()).collect();
    let vview = Vol {
        dev: view.clone(),
        offset: vol.offset,
        driver: vol.driver,
    };
    let sub_plans = plan_all(&vview, &sub, &settings, o.jobs)?;
    let mut plans: Vec<Planned> = vec![None; rendered.len()];
    for (k, p) in todo.iter().zip(sub_plans) {
        plans[*k] = Some(p);
    }
    analysis.group_of = plans
        .iter()
        .map(|p| match p {
            Some((a, _)) => {
                let s = replay::shape(a, analysis.chunk);
                analysis
                    .groups
                    .iter()
                    .position(|g| g.shape == s)
                    .unwrap_or(usize::MAX)
            }
            None => 0,
        })
        .collect();
    if analysis.group_of.contains(&usize::MAX) {
        return Err(Error::Failed(format!(
            "cannot resume {}: an instance no longer matches the analysed plan; re-run with --force",
            o.out.display()
        )));
    }
    let plan_ms = ms(t0);
    let t2 = Instant::now();
    let w = Writer {
        o,
        vol: &vol,
        view: &view,
        a: &analysis,
        gate,
        progress,
        clock: plan.clock,
        disk_size: disk.image.dev().size(),
    };
    let instances = w.all(rendered, plans)?;
    Ok(report(o, 0, &analysis, instances, plan_ms, 0, ms(t2)))
}

fn report(
    o: &StampOptions,
    common_ops: usize,
    a: &Analysis,
    instances: Vec<InstanceReport>,
    plan_ms: u64,
    analyse_ms: u64,
    write_ms: u64,
) -> StampReport {
    StampReport {
        out: o.out.display().to_string(),
        common: String::new(),
        common_ops,
        shared_blocks: a.common.len(),
        groups: a
            .groups
            .iter()
            .map(|g| GroupReport {
                instances: g.members.len().max(
                    a.group_of
                        .iter()
                        .filter(|x| a.groups.get(**x).is_some_and(|y| y.shape == g.shape))
                        .count(),
                ),
                mode: g.mode,
                reason: g.reason.clone(),
                varying_files: g.varying.len(),
                template_blocks: g.writes.len(),
            })
            .collect(),
        instances,
        resumed: false,
        plan_ms,
        analyse_ms,
        write_ms,
        total_ms: 0,
    }
}

fn build_common(
    o: &StampOptions,
    tmp: &Path,
    ops: &[Op],
    settings: &Settings,
    gate: &BackingGate,
) -> Result<()> {
    let base_abs =
        std::fs::canonicalize(&o.base).map_err(|e| Error::io(o.base.display().to_string(), e))?;
    let out_abs =
        std::fs::canonicalize(&o.out).map_err(|e| Error::io(o.out.display().to_string(), e))?;
    let base_img = Image::open(
        &base_abs,
        &OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let rel = diskfab_image::relative(&out_abs, &base_abs);
    let _ = std::fs::remove_file(tmp);
    diskfab_image::create(
        tmp,
        &CreateOptions {
            format: Format::Qcow2,
            backing: Some(rel),
            backing_format: Some(base_img.format()),
            ..Default::default()
        },
    )?;
    drop(base_img);
    if ops.is_empty() {
        return Ok(());
    }
    let disk = open_disk(tmp, true, gate)?;
    {
        let mut fs = disk.open_fs(o.partition.as_ref(), true)?;
        diskfab_customize::customize(fs.as_mut(), ops, settings, false)?;
    }
    disk.image.flush()
}

/// Checks the guest filesystem has room for the largest instance and the host for every
/// overlay (estimated from the blocks each instance writes).
fn check_space(
    vol: &Vol,
    plans: &[(Vec<Action>, BTreeMap<String, String>)],
    out: &Path,
    chunk: u64,
) -> Result<()> {
    let info = vol.driver.open(vol.dev.clone(), false)?.info()?;
    let free = info.total_bytes.saturating_sub(info.used_bytes);
    let need = |a: &Vec<Action>| -> u64 {
        a.iter()
            .map(|x| match x {
                Action::Write { data, .. } => (data.len() as u64).div_ceil(chunk) * chunk + chunk,
                _ => chunk,
            })
            .sum()
    };
    let max = plans.iter().map(|(a, _)| need(a)).max().unwrap_or(0);
    if max > free {
        return Err(Error::NoSpace(format!(
            "the guest filesystem has {free} bytes free; an instance needs up to {max}"
        )));
    }
    let host_need = plans
        .iter()
        .map(|(a, _)| need(a) * 2 + (256 << 10))
        .sum::<u64>();
    let c = std::ffi::CString::new(out.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Invalid("NUL in path".into()))?;
    // SAFETY: statvfs fills a zeroed struct for a valid C path.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut sv) } == 0 {
        let avail = sv.f_bavail as u64 * sv.f_frsize as u64;
        if host_need > avail {
            return Err(Error::NoSpace(format!(
                "{} has {avail} bytes free; the clones need about {host_need}",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Writes the shared chunks into the (still temporary) shared layer; returns their previous
/// contents.
fn commit_common(
    tmp: &Path,
    a: &Analysis,
    gate: &BackingGate,
    partition: Option<&VolumeSel>,
) -> Result<Writes> {
    let disk = open_disk(tmp, true, gate)?;
    let vol = volume(&disk, partition)?;
    let mut undo = Writes::new();
    for (off, data) in &a.common {
        let mut old = vec![0u8; data.len()];
        vol.dev.read_at(&mut old, *off)?;
        undo.insert(*off, old);
        vol.dev.write_at(data, *off)?;
    }
    disk.image.flush()?;
    Ok(undo)
}

/// Replay-vs-full check for every instance (test hook).
fn verify(vol: &Vol, a: &Analysis, plans: &[Vec<Action>], clock: Timespec) -> Result<()> {
    for (k, p) in plans.iter().enumerate() {
        let g = &a.groups[a.group_of[k]];
        if g.mode != Mode::Replay {
            continue;
        }
        let (real, rec) = replay::record(&vol.dev, vol.driver, p, clock, a.chunk)?;
        let (_, trec) = replay::record(&vol.dev, vol.driver, &plans[g.members[0]], clock, a.chunk)?;
        let _ = rec;
        let mut fs = vol.driver.open(trec, false)?;
        let synth = replay::synthesize(g, p, fs.as_mut(), a.chunk, &BTreeSet::new())?;
        if synth != real {
            return Err(Error::Failed(format!(
                "replay verification failed for instance {k}"
            )));
        }
    }
    Ok(())
}
