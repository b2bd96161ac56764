//! Writing the clones of a stamp job: each instance's blocks (replayed from its group's
//! template, or recorded from a full in-memory customization), into an overlay that appears
//! under its final name only when complete.

use super::stamp::{InstanceReport, Planned, Vol, COMMON};
use diskfab_customize::instances::Instance;
use diskfab_customize::ops::Op;
use diskfab_customize::record::Writes;
use diskfab_customize::replay::{self, Analysis, Mode};
use diskfab_customize::staged::Action;
use diskfab_fs::Timespec;
use diskfab_image::{BackingGate, CreateOptions, Format, Image, OpenOptions};
use diskfab_storage::{DevRef, Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Writes the clones.
pub(super) struct Writer<'a> {
    pub o: &'a super::stamp::StampOptions,
    pub vol: &'a Vol,
    pub view: &'a DevRef,
    pub a: &'a Analysis,
    pub gate: &'a BackingGate,
    pub progress: &'a (dyn Fn() + Sync),
    pub clock: Timespec,
    pub disk_size: u64,
}

impl Writer<'_> {
    pub fn all(
        &self,
        rendered: &[(Instance, Vec<Op>)],
        plans: Vec<Planned>,
    ) -> Result<Vec<InstanceReport>> {
        let skip: BTreeSet<u64> = self.a.common.keys().copied().collect();
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<InstanceReport>>>> =
            Mutex::new((0..rendered.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..self.o.jobs.max(1) {
                s.spawn(|| {
                    let mut patcher = self.vol.driver.open(self.view.clone(), false);
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= rendered.len() {
                            break;
                        }
                        let r = match (&mut patcher, &plans[k]) {
                            (_, None) => Ok(existing(self.o, &rendered[k].0)),
                            (Err(e), _) => Err(Error::Failed(e.to_string())),
                            (Ok(p), Some((actions, secrets))) => {
                                self.one(&skip, k, &rendered[k], actions, secrets, p.as_mut())
                            }
                        };
                        let failed = r.is_err();
                        if let Ok(mut v) = results.lock() {
                            v[k] = Some(r);
                        }
                        (self.progress)();
                        if failed {
                            next.store(rendered.len(), Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let mut out = Vec::new();
        for r in results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
        {
            out.push(r?);
        }
        if out.len() != rendered.len() {
            return Err(Error::Failed("not every clone was written".into()));
        }
        Ok(out)
    }
}

fn existing(o: &super::stamp::StampOptions, inst: &Instance) -> InstanceReport {
    let f = o.out.join(format!("{}.qcow2", inst.name));
    InstanceReport {
        name: inst.name.clone(),
        file_bytes: std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
        file: f.display().to_string(),
        blocks_written: 0,
        bytes_written: 0,
        mode: "existing".into(),
        ops_replayed: 0,
        ops_redone: 0,
        random_passwords: BTreeMap::new(),
        us: 0,
    }
}

impl Writer<'_> {
    /// Any alignment: create the overlay, then write through the qcow2 engine (COW reads
    /// from the backing chain where a chunk covers part of a cluster).
    fn write_slow(&self, tmp: &Path, writes: &Writes, cluster: u32) -> Result<u64> {
        diskfab_image::create(
            tmp,
            &CreateOptions {
                format: Format::Qcow2,
                backing: Some(PathBuf::from(COMMON)),
                backing_format: Some(Format::Qcow2),
                cluster_size: Some(cluster),
                ..Default::default()
            },
        )?;
        let img = Image::open(
            tmp,
            &OpenOptions {
                writable: true,
                gate: self.gate.clone(),
            },
        )?;
        let dev = img.dev();
        let mut bytes = 0;
        for (off, data) in writes {
            dev.write_at(data, self.vol.offset + off)?;
            bytes += data.len() as u64;
        }
        img.flush()?;
        Ok(bytes)
    }

    fn one(
        &self,
        skip: &BTreeSet<u64>,
        k: usize,
        (inst, ops): &(Instance, Vec<Op>),
        actions: &[Action],
        secrets: &BTreeMap<String, String>,
        patcher: &mut dyn diskfab_fs::Filesystem,
    ) -> Result<InstanceReport> {
        let (o, vol, view, a, clock) = (self.o, self.vol, self.view, self.a, self.clock);
        let t = Instant::now();
        let g = &a.groups[a.group_of[k]];
        let (writes, mode) = match g.mode {
            Mode::Replay => (
                replay::synthesize(g, actions, patcher, a.chunk, skip)?,
                // The group's template was customized for real during the analysis.
                if g.members.first() == Some(&k) {
                    "recorded"
                } else {
                    "replayed"
                },
            ),
            Mode::Redo => (
                replay::record(view, vol.driver, actions, clock, a.chunk)?.0,
                "redone",
            ),
        };
        let name = format!("{}.qcow2", inst.name);
        let tmp = o.out.join(format!(".{name}.tmp"));
        let fin = o.out.join(&name);
        let _ = std::fs::remove_file(&tmp);
        let cluster = a.chunk.clamp(4096, 65536);
        let bytes_in: u64 = writes.values().map(|d| d.len() as u64).sum();
        let r = if a.chunk == cluster && vol.offset % cluster == 0 {
            // Fast path: whole clusters, built in memory and written in one call.
            diskfab_image::overlay::write_overlay(
                &tmp,
                &diskfab_image::overlay::OverlaySpec {
                    size: self.disk_size,
                    cluster_bits: cluster.trailing_zeros(),
                    backing: COMMON,
                    backing_format: Format::Qcow2,
                },
                writes
                    .iter()
                    .map(|(off, d)| (vol.offset + off, d.as_slice())),
            )
            .map(|_| bytes_in)
        } else {
            self.write_slow(&tmp, &writes, cluster as u32)
        };
        let bytes = match r {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.context(&name));
            }
        };
        std::fs::rename(&tmp, &fin).map_err(|e| Error::io(fin.display().to_string(), e))?;
        let (rep, red) = if mode == "replayed" {
            (ops.len(), 0)
        } else {
            (0, ops.len())
        };
        Ok(InstanceReport {
            name: inst.name.clone(),
            file: fin.display().to_string(),
            blocks_written: writes.len(),
            bytes_written: bytes,
            file_bytes: std::fs::metadata(&fin).map(|m| m.len()).unwrap_or(0),
            mode: mode.into(),
            ops_replayed: rep,
            ops_redone: red,
            random_passwords: secrets.clone(),
            us: t.elapsed().as_micros() as u64,
        })
    }
}
