//! Opening an image down to one filesystem: image → partition table → volume → driver.

use crate::drivers::probe_fs;
use crate::select::VolumeSel;
use crate::volumes::{self, LvVolume, VgReport};
use diskfab_fs::{path, FileType, Filesystem, FsDriver};
use diskfab_image::{BackingGate, Image, OpenOptions};
use diskfab_lvm::luks::LuksInfo;
use diskfab_part::{Partition, PartitionTable};
use diskfab_storage::{DevRef, Error, Result, Slice};
use std::path::Path;
use std::sync::Arc;

/// One place a filesystem can live: a partition or the whole disk.
pub struct Volume {
    /// The partition, or `None` for the whole disk.
    pub partition: Option<Partition>,
    /// The device of the volume (a slice of the disk for partitions).
    pub dev: DevRef,
    /// The driver that recognised it and the type it reported.
    pub fs: Option<(&'static dyn FsDriver, String)>,
    /// Set when the volume is an LVM logical volume (then `partition` is `None`).
    pub lv: Option<LvVolume>,
    /// The LUKS header found on the volume, if any (reported, never decrypted).
    pub luks: Option<LuksInfo>,
    /// The Linux swap area found on the volume, if any.
    pub swap: Option<crate::swap::SwapInfo>,
}

impl Volume {
    /// "partition N", "LV vg/lv" or "whole disk", for messages.
    pub fn describe(&self) -> String {
        match (&self.partition, &self.lv) {
            (Some(p), _) => format!("partition {}", p.number),
            (None, Some(l)) => format!("LV {}/{}", l.vg, l.name),
            (None, None) => "whole disk".into(),
        }
    }

    /// The volume's byte range in the disk when it is one contiguous piece: a partition, the
    /// whole disk, or an LV of one linear segment. `None` for LVs spread over several places.
    pub fn disk_range(&self) -> Option<(u64, u64)> {
        match (&self.partition, &self.lv) {
            (Some(p), _) => Some((p.start, p.size)),
            (None, Some(l)) => l.disk_range,
            (None, None) => Some((0, self.dev.size())),
        }
    }

    /// Whether `sel` names this volume.
    fn is(&self, sel: &VolumeSel) -> bool {
        match (sel, &self.partition, &self.lv) {
            (VolumeSel::Number(n), Some(p), _) => p.number == *n,
            (VolumeSel::Lv { vg, lv }, None, Some(l)) => &l.vg == vg && &l.name == lv,
            _ => false,
        }
    }
}

/// An open image with its partition table and the volumes found on it.
pub struct Disk {
    /// The image.
    pub image: Image,
    /// Its partition table, if any.
    pub table: Option<PartitionTable>,
    /// Volumes: one per partition, or the whole disk when there is no table; then one per
    /// readable LVM logical volume.
    pub volumes: Vec<Volume>,
    /// LVM volume groups found on the disk.
    pub volume_groups: Vec<VgReport>,
    /// LVM labels that could not be read.
    pub lvm_warnings: Vec<String>,
}

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct DiskOptions {
    /// Open the top image writable.
    pub writable: bool,
    /// Policy for backing files.
    pub gate: BackingGate,
}

impl Disk {
    /// Opens `path`, reads its partition table and probes each volume.
    pub fn open(path: &Path, opts: &DiskOptions) -> Result<Disk> {
        let image = Image::open(
            path,
            &OpenOptions {
                writable: opts.writable,
                gate: opts.gate.clone(),
            },
        )?;
        let dev = image.dev();
        let table = diskfab_part::read_table(&dev).map_err(|e| e.context("partition table"))?;
        let mut volumes = Vec::new();
        match &table {
            Some(t) => {
                for p in &t.partitions {
                    if p.type_name == "extended" {
                        continue;
                    }
                    let slice: DevRef = Arc::new(Slice::new(dev.clone(), p.start, p.size)?);
                    let fs = probe_fs(&slice)?;
                    volumes.push(Volume {
                        partition: Some(p.clone()),
                        dev: slice,
                        fs,
                        lv: None,
                        luks: None,
                        swap: None,
                    });
                }
            }
            None => {
                let fs = probe_fs(&dev)?;
                volumes.push(Volume {
                    partition: None,
                    dev: dev.clone(),
                    fs,
                    lv: None,
                    luks: None,
                    swap: None,
                });
            }
        }
        let (volume_groups, lvm_warnings) = volumes::expand(&mut volumes)?;
        Ok(Disk {
            image,
            table,
            volumes,
            volume_groups,
            lvm_warnings,
        })
    }

    /// Picks the volume to work on: the one `sel` names when given; else the only filesystem,
    /// else the one holding an OS root (has /etc and /usr); else an error listing the choices.
    pub fn select(&self, sel: Option<&VolumeSel>) -> Result<&Volume> {
        match sel {
            Some(VolumeSel::Number(n)) => return self.select_number(*n),
            Some(s @ VolumeSel::Lv { .. }) => return self.select_lv(s),
            None => {}
        }
        let with_fs: Vec<&Volume> = self.volumes.iter().filter(|v| v.fs.is_some()).collect();
        match with_fs.len() {
            0 => Err(Error::Failed(format!(
                "{}: no filesystem diskfab can read was found (looked at {})",
                self.image.path().display(),
                self.list_choices()
            ))),
            1 => Ok(with_fs[0]),
            _ => {
                let roots: Vec<&Volume> = with_fs
                    .iter()
                    .copied()
                    .filter(|v| looks_like_os_root(v))
                    .collect();
                if roots.len() == 1 {
                    return Ok(roots[0]);
                }
                Err(Error::Invalid(format!(
                    "{}: several filesystems, choose one with -p N or -p VG/LV: {}",
                    self.image.path().display(),
                    self.list_choices()
                )))
            }
        }
    }

    fn select_lv(&self, sel: &VolumeSel) -> Result<&Volume> {
        if let Some(v) = self.volumes.iter().find(|v| v.is(sel)) {
            return Ok(v);
        }
        let VolumeSel::Lv { vg, lv } = sel else {
            return Err(Error::Invalid(format!("{sel} is not a logical volume")));
        };
        let known = self.volume_groups.iter().find(|g| &g.name == vg);
        if let Some(l) = known.and_then(|g| g.lvs.iter().find(|l| &l.name == lv)) {
            let msg = format!(
                "{}: {}",
                self.image.path().display(),
                l.error.as_deref().unwrap_or("no filesystem")
            );
            return Err(if l.unsupported {
                Error::Unsupported(msg)
            } else {
                Error::Failed(msg)
            });
        }
        let msg = format!(
            "{}: no logical volume {vg}/{lv} (have: {})",
            self.image.path().display(),
            self.list_choices()
        );
        if self.lvm_warnings.is_empty() {
            return Err(Error::NotFound(msg));
        }
        // LVM metadata that could not be read: a damaged or hostile image, exit 3.
        Err(Error::BadImage(format!(
            "{msg}; LVM metadata unreadable: {}",
            self.lvm_warnings.join("; ")
        )))
    }

    fn select_number(&self, n: u32) -> Result<&Volume> {
        if n == 0 && self.table.is_none() {
            return self
                .volumes
                .first()
                .ok_or_else(|| Error::Failed("empty disk".into()));
        }
        self.volumes
            .iter()
            .find(|v| v.is(&VolumeSel::Number(n)))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}: no partition {n} (have: {})",
                    self.image.path().display(),
                    self.list_choices()
                ))
            })
    }

    fn list_choices(&self) -> String {
        let v: Vec<String> = self
            .volumes
            .iter()
            .map(|v| match &v.fs {
                Some((_, t)) => format!("{} ({t})", v.describe()),
                None => format!("{} (no known filesystem)", v.describe()),
            })
            .collect();
        if v.is_empty() {
            "no partitions".into()
        } else {
            v.join(", ")
        }
    }

    /// Opens the selected volume's filesystem.
    pub fn open_fs(&self, sel: Option<&VolumeSel>, writable: bool) -> Result<Box<dyn Filesystem>> {
        let v = self.select(sel)?;
        let (driver, _) = v.fs.as_ref().ok_or_else(|| {
            Error::Failed(format!(
                "{}: {} holds no filesystem diskfab can read",
                self.image.path().display(),
                v.describe()
            ))
        })?;
        driver
            .open(v.dev.clone(), writable)
            .map_err(|e| e.context(format!("{} {}", self.image.path().display(), v.describe())))
    }
}

/// True when the volume's filesystem has /etc and /usr directories.
fn looks_like_os_root(v: &Volume) -> bool {
    let Some((driver, _)) = &v.fs else {
        return false;
    };
    let Ok(mut fs) = driver.open(v.dev.clone(), false) else {
        return false;
    };
    ["/etc", "/usr"].iter().all(|p| {
        path::resolve(fs.as_mut(), p.as_bytes(), true)
            .and_then(|ino| fs.getattr(ino))
            .map(|m| m.file_type == FileType::Directory)
            .unwrap_or(false)
    })
}

/// An open filesystem inside an open image; syncs both on [`FsSession::commit`].
pub struct FsSession {
    /// The disk (kept open for the life of the filesystem).
    pub disk: Disk,
    /// The filesystem.
    pub fs: Box<dyn Filesystem>,
}

impl FsSession {
    /// Opens image `path` and the filesystem selected by `partition`.
    pub fn open(
        path: &Path,
        partition: Option<&VolumeSel>,
        opts: &DiskOptions,
    ) -> Result<FsSession> {
        let disk = Disk::open(path, opts)?;
        let fs = disk.open_fs(partition, opts.writable)?;
        Ok(FsSession { disk, fs })
    }

    /// Writes all changes through the filesystem and the image to the host.
    pub fn commit(mut self) -> Result<()> {
        self.fs.sync()?;
        drop(self.fs);
        self.disk.image.flush()
    }
}
