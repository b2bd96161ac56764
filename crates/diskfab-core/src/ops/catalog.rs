//! `catalog`: inspect images once, record what they hold, find them again by content.

use crate::open::{Disk, DiskOptions};
use crate::ops::inspect::{inspect, InspectReport, Options};
use diskfab_catalog::sqlite::SqliteStore;
use diskfab_catalog::version::Scheme;
use diskfab_catalog::{Entry, Record, Store};
use diskfab_image::{BackingGate, Image, OpenOptions};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The default catalog: `$XDG_DATA_HOME/diskfab/catalog.db` (else `~/.local/share/...`).
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("diskfab/catalog.db")
}

/// Opens the catalog at `path` (default when `None`).
pub fn open(path: Option<&Path>) -> Result<SqliteStore> {
    SqliteStore::open(&path.map(Path::to_path_buf).unwrap_or_else(default_path))
}

/// A content fingerprint of an image: every layer's canonical path, size and modification
/// time (any write to any layer changes it).
pub fn fingerprint(image: &Path, gate: &BackingGate) -> Result<String> {
    let img = Image::open(
        image,
        &OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let mut h = blake3::Hasher::new();
    for p in img.layer_paths() {
        let m = std::fs::metadata(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
        let c = std::fs::canonicalize(&p).unwrap_or(p);
        h.update(c.display().to_string().as_bytes());
        h.update(&m.len().to_le_bytes());
        h.update(&m.mtime().to_le_bytes());
        h.update(&m.mtime_nsec().to_le_bytes());
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

/// The catalog record of an inspection.
pub fn record(path: &str, fp: &str, r: &InspectReport) -> Result<Record> {
    let mut attrs = Vec::new();
    let mut packages = Vec::new();
    let mut drivers = Vec::new();
    let mut scheme = Scheme::Dpkg;
    match r.operating_systems.first() {
        None => attrs.push(("os".into(), "none".into())),
        Some(e) => {
            let o = &e.os;
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    attrs.push((k.to_string(), v));
                }
            };
            put("os", Some(o.os_type.clone()));
            put("distro", o.distro.clone());
            put("product", o.product_name.clone());
            put(
                "version",
                o.major_version.map(|m| match o.minor_version {
                    Some(n) => format!("{m}.{n}"),
                    None => m.to_string(),
                }),
            );
            put("major", o.major_version.map(|m| m.to_string()));
            put("codename", o.codename.clone());
            put("osinfo", o.osinfo.clone());
            put("arch", o.arch.clone());
            put("hostname", o.hostname.clone());
            put("package_format", o.package_format.clone());
            put("cloud_init", Some(o.cloud_init.to_string()));
            put("root_fs", Some(e.root_filesystem.fs_type.clone()));
            if o.package_format.as_deref() == Some("rpm") {
                scheme = Scheme::Rpm;
            }
        }
    }
    for e in &r.operating_systems {
        for a in &e.os.applications {
            let mut v = String::new();
            if a.epoch > 0 {
                v.push_str(&format!("{}:", a.epoch));
            }
            v.push_str(&a.version);
            if !a.release.is_empty() {
                v.push_str(&format!("-{}", a.release));
            }
            packages.push((a.name.clone(), v));
        }
        for k in &e.os.kernels {
            drivers.extend(k.drivers.iter().cloned());
        }
    }
    drivers.sort();
    drivers.dedup();
    Ok(Record {
        path: path.to_string(),
        fingerprint: fp.to_string(),
        attrs,
        packages,
        drivers,
        scheme,
        report: serde_json::to_value(r).map_err(|e| Error::Failed(e.to_string()))?,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn canonical(p: &Path) -> Result<String> {
    Ok(std::fs::canonicalize(p)
        .map_err(|e| Error::io(p.display().to_string(), e))?
        .display()
        .to_string())
}

fn inspect_record(path: &Path, gate: &BackingGate) -> Result<Record> {
    let key = canonical(path)?;
    let fp = fingerprint(path, gate)?;
    let disk = Disk::open(
        path,
        &DiskOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?;
    let rep = inspect(&disk, Options::default())?;
    record(&key, &fp, &rep)
}

/// Inspects and records images; `tags` are set on each. Returns their entries.
pub fn add(
    store: &mut dyn Store,
    images: &[PathBuf],
    tags: &[(String, String)],
    gate: &BackingGate,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for p in images {
        let r = inspect_record(p, gate).map_err(|e| e.context(p.display()))?;
        let id = store.upsert(&r, now())?;
        for (k, v) in tags {
            store.tag(id, k, v)?;
        }
        out.extend(store.get(&id.to_string())?.map(|mut e| {
            e.report = None;
            e
        }));
    }
    Ok(out)
}

/// One entry of a rescan.
#[derive(Debug, Clone, Serialize)]
pub struct Rescanned {
    /// Id.
    pub id: i64,
    /// Path.
    pub path: String,
    /// `unchanged`, `updated` or `missing`.
    pub status: String,
}

/// Re-inspects the given entries (all when empty) whose content changed.
pub fn rescan(store: &mut dyn Store, ids: &[i64], gate: &BackingGate) -> Result<Vec<Rescanned>> {
    let mut out = Vec::new();
    for e in store.list()? {
        if !ids.is_empty() && !ids.contains(&e.id) {
            continue;
        }
        let p = PathBuf::from(&e.path);
        let status = match fingerprint(&p, gate) {
            Err(_) if !p.exists() => "missing",
            Err(err) => return Err(err.context(&e.path)),
            Ok(fp) if fp == e.fingerprint => "unchanged",
            Ok(_) => {
                let r = inspect_record(&p, gate)?;
                store.upsert(&r, now())?;
                "updated"
            }
        };
        out.push(Rescanned {
            id: e.id,
            path: e.path,
            status: status.into(),
        });
    }
    Ok(out)
}

/// Parses `KEY=VALUE` tags.
pub fn parse_tags(tags: &[String]) -> Result<Vec<(String, String)>> {
    tags.iter()
        .map(|t| {
            let (k, v) = t
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| Error::Invalid(format!("tag {t:?}: expected KEY=VALUE")))?;
            if matches!(k, "package" | "pkg" | "driver") || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)) {
                return Err(Error::Invalid(format!("tag key {k:?} is reserved or has characters other than letters, digits, _ - . :")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}
