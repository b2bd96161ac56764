//! `diff`, `delta create|show|apply`: file-level comparison of two images (any formats,
//! filesystems, block sizes), with a fast path for clones of one base, and deltas.

use crate::open::{Disk, DiskOptions};
use crate::select::VolumeSel;
use diskfab_customize::record::RecordingDev;
use diskfab_delta::apply::{ApplyOptions, ApplyReport};
use diskfab_delta::create::CreateReport;
use diskfab_delta::diff::{Change, DiffOptions};
use diskfab_delta::format::Entry;
use diskfab_delta::tree::{scan, Tree};
use diskfab_fs::{FileType, Filesystem};
use diskfab_image::BackingGate;
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One side of a comparison.
pub struct Side {
    /// Image.
    pub image: PathBuf,
    /// Partition (default: the OS root / only filesystem).
    pub partition: Option<VolumeSel>,
}

/// The `diff` report.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Image A.
    pub a: String,
    /// Image B.
    pub b: String,
    /// The differences, sorted by path.
    pub changes: Vec<Change>,
    /// True when the clone fast path was used (only files touched above the shared base had
    /// their contents compared).
    pub fast_path: bool,
    /// Files whose contents were compared.
    pub files_hashed: usize,
    /// Milliseconds.
    pub elapsed_ms: u64,
}

struct Opened {
    disk: Disk,
    fs: Box<dyn Filesystem>,
    /// The volume's byte range in the disk; `None` (no fast path) for a scattered LV.
    range: Option<(u64, u64)>,
}

fn open(side: &Side, gate: &BackingGate) -> Result<Opened> {
    let disk = Disk::open(
        &side.image,
        &DiskOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let v = disk.select(side.partition.as_ref())?;
    let range = v.disk_range();
    let fs = disk.open_fs(side.partition.as_ref(), false)?;
    Ok(Opened { disk, fs, range })
}

/// Sorted (offset, length) byte ranges.
type Ranges = Vec<(u64, u64)>;

/// Volume-relative byte ranges written in layers above the layer both images share.
fn changed_above_common(a: &Opened, b: &Opened) -> Result<Option<(Ranges, Ranges)>> {
    let (la, lb) = (a.disk.image.layer_paths(), b.disk.image.layer_paths());
    let Some((da, db)) = la
        .iter()
        .enumerate()
        .find_map(|(i, p)| lb.iter().position(|q| q == p).map(|j| (i, j)))
    else {
        return Ok(None);
    };
    let (Some(ra), Some(rb)) = (a.range, b.range) else {
        return Ok(None);
    };
    let ranges = |o: &Opened, (vol_start, vol_len): (u64, u64), depth: usize| -> Result<Ranges> {
        let mut v = Vec::new();
        for e in diskfab_image::map(&o.disk.image)? {
            if e.kind == "unallocated" || e.depth >= depth {
                continue;
            }
            let (s, t) = (
                e.start.max(vol_start),
                (e.start + e.length).min(vol_start + vol_len),
            );
            if s < t {
                v.push((s - vol_start, t - s));
            }
        }
        Ok(v)
    };
    Ok(Some((ranges(a, ra, da)?, ranges(b, rb, db)?)))
}

fn intersects(r: &[(u64, u64)], owned: &[(u64, u64)]) -> bool {
    owned.iter().any(|&(o, l)| {
        let i = r.partition_point(|&(s, n)| s + n <= o);
        r.get(i).is_some_and(|&(s, _)| s < o + l)
    })
}

/// Which same-sized regular files need their contents compared; `None` = all of them.
fn suspects(
    a: &mut Opened,
    ta: &Tree,
    b: &mut Opened,
    tb: &Tree,
) -> Result<Option<HashSet<String>>> {
    let Some((ca, cb)) = changed_above_common(a, b)? else {
        return Ok(None);
    };
    let mut out = HashSet::new();
    for (p, na) in ta {
        let Some(nb) = tb.get(p) else { continue };
        if na.kind != FileType::Regular || nb.kind != FileType::Regular || na.size != nb.size {
            continue;
        }
        let touched = |o: &mut Opened, ino, ch: &[(u64, u64)]| -> Result<bool> {
            Ok(match o.fs.content_ranges(ino)? {
                Some(owned) => intersects(ch, &owned),
                None => true,
            })
        };
        if touched(a, na.ino, &ca)? || touched(b, nb.ino, &cb)? {
            out.insert(p.clone());
        }
    }
    Ok(Some(out))
}

/// Compares the filesystems of two images. `fast` allows the clone fast path.
pub fn diff(
    a: &Side,
    b: &Side,
    opts: DiffOptions,
    fast: bool,
    gate: &BackingGate,
) -> Result<DiffReport> {
    let t0 = Instant::now();
    let (mut oa, mut ob) = (open(a, gate)?, open(b, gate)?);
    let ta = scan(oa.fs.as_mut(), opts.xattrs)?;
    let tb = scan(ob.fs.as_mut(), opts.xattrs)?;
    let sus = if fast {
        suspects(&mut oa, &ta, &mut ob, &tb)?
    } else {
        None
    };
    let hashed = std::cell::Cell::new(0usize);
    let filter = |p: &str, _: &diskfab_delta::tree::Node, _: &diskfab_delta::tree::Node| {
        let need = sus.as_ref().is_none_or(|s| s.contains(p));
        hashed.set(hashed.get() + usize::from(need));
        need
    };
    let changes = diskfab_delta::diff::diff(
        oa.fs.as_mut(),
        &ta,
        ob.fs.as_mut(),
        &tb,
        opts,
        Some(&filter),
    )?;
    Ok(DiffReport {
        a: a.image.display().to_string(),
        b: b.image.display().to_string(),
        changes,
        fast_path: sus.is_some(),
        files_hashed: hashed.get(),
        elapsed_ms: t0.elapsed().as_millis() as u64,
    })
}

/// Writes the delta from A to B into `out` (refused if it exists). `exclude`: glob patterns.
pub fn delta_create(
    a: &Side,
    b: &Side,
    out: &Path,
    exclude: &[String],
    gate: &BackingGate,
) -> Result<CreateReport> {
    let mut gs = globset::GlobSetBuilder::new();
    for g in exclude {
        gs.add(globset::Glob::new(g).map_err(|e| Error::Invalid(format!("--exclude {g:?}: {e}")))?);
    }
    let gs = gs.build().map_err(|e| Error::Invalid(e.to_string()))?;
    let (mut oa, mut ob) = (open(a, gate)?, open(b, gate)?);
    let opts = DiffOptions {
        xattrs: true,
        times: false,
        content: false,
    };
    let ta = scan(oa.fs.as_mut(), true)?;
    let tb = scan(ob.fs.as_mut(), true)?;
    let sus = suspects(&mut oa, &ta, &mut ob, &tb)?;
    let filter = |p: &str, _: &diskfab_delta::tree::Node, _: &diskfab_delta::tree::Node| {
        sus.as_ref().is_none_or(|s| s.contains(p))
    };
    let changes = diskfab_delta::diff::diff(
        oa.fs.as_mut(),
        &ta,
        ob.fs.as_mut(),
        &tb,
        opts,
        Some(&filter),
    )?;
    let tmp = out.with_extension("delta-tmp");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(tmp.display().to_string(), e))?;
    let source = format!("{} → {}", a.image.display(), b.image.display());
    let skip = |p: &str| gs.is_match(p.trim_start_matches('/')) || gs.is_match(p);
    let r = diskfab_delta::create::create(
        oa.fs.as_mut(),
        &ta,
        ob.fs.as_mut(),
        &tb,
        &changes,
        std::io::BufWriter::new(f),
        &source,
        &skip,
    );
    let rep = match r {
        Ok((w, rep)) => {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("writing the delta", e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io("writing the delta", e))?;
            rep
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Exists(format!("{} exists", out.display())));
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out.display().to_string(), e))?;
    Ok(rep)
}

/// A delta's records (verified), for `delta show`.
#[derive(Debug, Clone, Serialize)]
pub struct ShowReport {
    /// What it was made from.
    pub source: Option<String>,
    /// Records: op, path, type, details.
    pub entries: Vec<Entry>,
    /// Content bytes carried.
    pub data_bytes: u64,
}

/// Reads and verifies a delta file.
pub fn delta_show(path: &Path) -> Result<ShowReport> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mut entries = Vec::new();
    let mut bytes = 0;
    let begin = diskfab_delta::format::read(std::io::BufReader::new(f), |e, d| {
        bytes += d.remaining();
        entries.push(e.clone());
        Ok(())
    })?;
    Ok(ShowReport {
        source: begin.source,
        entries,
        data_bytes: bytes,
    })
}

/// Applies a delta to an image (usually a fresh overlay). Everything is applied to an
/// in-memory copy-on-write view first and written to the image only when all of it worked.
pub fn delta_apply(
    image: &Side,
    delta: &Path,
    opts: ApplyOptions,
    clock: Option<diskfab_fs::Timespec>,
    gate: &BackingGate,
) -> Result<ApplyReport> {
    let f = std::fs::File::open(delta).map_err(|e| Error::io(delta.display().to_string(), e))?;
    let disk = Disk::open(
        &image.image,
        &DiskOptions {
            writable: !opts.check,
            gate: gate.clone(),
        },
    )?;
    let v = disk.select(image.partition.as_ref())?;
    let (driver, _) =
        v.fs.as_ref()
            .ok_or_else(|| Error::Failed(format!("{} holds no filesystem", v.describe())))?;
    let block = driver
        .open(v.dev.clone(), false)?
        .info()?
        .block_size
        .clamp(512, 65536);
    let rec = Arc::new(RecordingDev::new(
        v.dev.clone(),
        u64::from(block).next_power_of_two(),
    )?);
    let report = {
        let mut fs = driver.open(rec.clone() as DevRef, true)?;
        fs.set_clock(clock);
        let r = diskfab_delta::apply::apply(fs.as_mut(), std::io::BufReader::new(f), opts)?;
        if r.applied {
            fs.sync()?;
        }
        r
    };
    if report.applied {
        for (off, data) in rec.writes()? {
            v.dev.write_at(&data, off)?;
        }
        disk.image.flush()?;
    }
    Ok(report)
}
