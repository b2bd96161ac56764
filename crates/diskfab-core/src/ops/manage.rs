//! Image management: create, clone, mkfs, partition.

use crate::drivers::mkfs_driver;
use crate::open::{Disk, DiskOptions};
use diskfab_fs::MkfsOptions;
use diskfab_image::{Image, OpenOptions};
use diskfab_part::{PartSpec, Partition, TableKind};
use diskfab_storage::{DevRef, Error, Result, Slice};
use std::path::Path;
use std::sync::Arc;

/// Formats partition `partition` (or the whole disk when `None` and there is no table).
pub fn mkfs(
    image: &Path,
    partition: Option<u32>,
    opts: &MkfsOptions,
    dopts: &DiskOptions,
) -> Result<()> {
    let driver = mkfs_driver(&opts.fs_type)?;
    let img = Image::open(
        image,
        &OpenOptions {
            writable: true,
            gate: dopts.gate.clone(),
        },
    )?;
    let dev = img.dev();
    let table = diskfab_part::read_table(&dev)?;
    let target: DevRef = match (&table, partition) {
        (None, None | Some(0)) => dev.clone(),
        (None, Some(n)) => {
            return Err(Error::NotFound(format!(
                "{}: has no partition table, so no partition {n}",
                image.display()
            )))
        }
        (Some(t), Some(n)) => {
            let p =
                t.partitions.iter().find(|p| p.number == n).ok_or_else(|| {
                    Error::NotFound(format!("{}: no partition {n}", image.display()))
                })?;
            Arc::new(Slice::new(dev.clone(), p.start, p.size)?)
        }
        (Some(t), None) => {
            let p = match t.partitions.as_slice() {
                [p] => p,
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: has {} partitions, choose one with -p N",
                        image.display(),
                        t.partitions.len()
                    )))
                }
            };
            Arc::new(Slice::new(dev.clone(), p.start, p.size)?)
        }
    };
    driver.mkfs(target, opts)?;
    img.flush()
}

/// Creates a partition table (when `kind` is given) and adds partitions.
pub fn part(
    image: &Path,
    kind: Option<TableKind>,
    specs: &[PartSpec],
    dopts: &DiskOptions,
) -> Result<Vec<Partition>> {
    let img = Image::open(
        image,
        &OpenOptions {
            writable: true,
            gate: dopts.gate.clone(),
        },
    )?;
    let dev = img.dev();
    if let Some(k) = kind {
        diskfab_part::create_table(&dev, k)?;
    } else if diskfab_part::read_table(&dev)?.is_none() {
        return Err(Error::Invalid(format!(
            "{}: has no partition table: pass --gpt or --mbr to create one",
            image.display()
        )));
    }
    let mut out = Vec::new();
    for s in specs {
        out.push(diskfab_part::add_partition(&dev, s)?);
    }
    img.flush()?;
    Ok(out)
}

/// Parses `size=...,type=...,name=...,start=...,bootable` into a [`PartSpec`].
pub fn parse_part_spec(s: &str) -> Result<PartSpec> {
    let mut spec = PartSpec {
        size: None,
        start: None,
        type_alias: "linux".into(),
        name: None,
        bootable: false,
        logical: false,
    };
    for kv in s.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "size" if v == "rest" || v.is_empty() => spec.size = None,
            "size" => spec.size = Some(diskfab_part::parse_size(v)?),
            "start" => spec.start = Some(diskfab_part::parse_size(v)?),
            "type" => spec.type_alias = v.to_string(),
            "name" => spec.name = Some(v.to_string()),
            "bootable" => spec.bootable = true,
            "logical" => spec.logical = true,
            _ => {
                return Err(Error::Invalid(format!(
                "unknown partition field {k:?}: use size=, start=, type=, name=, bootable, logical"
            )))
            }
        }
    }
    Ok(spec)
}

/// Opens a disk read-only (used by `info`).
pub fn open_read_only(image: &Path, dopts: &DiskOptions) -> Result<Disk> {
    Disk::open(
        image,
        &DiskOptions {
            writable: false,
            gate: dopts.gate.clone(),
        },
    )
}
