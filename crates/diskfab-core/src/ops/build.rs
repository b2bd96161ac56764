//! `build`: the image factory (seed 001). A TOML recipe names a base image, deltas to apply in
//! order, customization operations (same names and syntax as `customize`) and the output.
//! Inputs are never modified; the output appears only when complete. Builds are reproducible:
//! timestamps, salts and generated secrets derive from the recipe, so the same recipe and inputs
//! give a byte-identical raw or qcow2 image (`fresh = true` asks for fresh ones instead).
//!
//! ```toml
//! base = "debian.qcow2"          # paths are relative to the recipe's directory
//! deltas = ["app.delta"]
//! output = "web.qcow2"
//! format = "qcow2"               # raw, qcow2, vdi, vpc (vhd), vmdk
//! compression = "zstd"           # qcow2 only: zlib, zstd or none
//! size = "8G"                    # optional: a larger virtual disk (the extra space is unpartitioned)
//! time = 1704067200              # timestamp for every change (default: 2024-01-01)
//! ops = [ { hostname = "web" }, { write = "/etc/motd:built by diskfab" } ]
//! ```

use crate::open::DiskOptions;
use crate::ops::customize::customize;
use crate::ops::delta::{delta_apply, Side};
use crate::ops::images::{convert, ConvertOptions};
use diskfab_customize::{spec, Settings};
use diskfab_delta::apply::ApplyOptions;
use diskfab_fs::Timespec;
use diskfab_image::{BackingGate, CreateOptions, Format};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Default build timestamp: 2024-01-01T00:00:00Z.
pub const DEFAULT_TIME: i64 = 1_704_067_200;

/// A parsed recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Base image.
    pub base: PathBuf,
    /// Deltas, in order.
    pub deltas: Vec<PathBuf>,
    /// Output path.
    pub output: Option<PathBuf>,
    /// Output format.
    pub format: Format,
    /// qcow2 compression: None, or Some(zstd?).
    pub compression: Option<bool>,
    /// Virtual size of the output (at least the base's).
    pub size: Option<u64>,
    /// Timestamp of every change.
    pub time: i64,
    /// Fresh salts and secrets (not reproducible).
    pub fresh: bool,
    /// Operations and settings.
    pub spec: spec::Spec,
    /// BLAKE3 of the recipe text (seeds salts).
    pub id: String,
}

/// Parses a recipe; relative paths are taken from `dir`.
pub fn parse_recipe(text: &str, dir: &Path) -> Result<Recipe> {
    let mut t: toml::Table = text
        .parse()
        .map_err(|e| Error::Invalid(format!("recipe: {e}")))?;
    let s = |t: &mut toml::Table, k: &str| -> Result<Option<String>> {
        match t.remove(k) {
            None => Ok(None),
            Some(toml::Value::String(v)) => Ok(Some(v)),
            Some(_) => Err(Error::Invalid(format!("recipe: {k} must be a string"))),
        }
    };
    let base =
        s(&mut t, "base")?.ok_or_else(|| Error::Invalid("recipe: `base` is required".into()))?;
    let deltas = match t.remove("deltas") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .map(|v| {
                v.as_str()
                    .map(|x| dir.join(x))
                    .ok_or_else(|| Error::Invalid("recipe: deltas must be strings".into()))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::Invalid("recipe: deltas must be an array".into())),
    };
    let output = s(&mut t, "output")?.map(|o| dir.join(o));
    let format = s(&mut t, "format")?
        .unwrap_or_else(|| "qcow2".into())
        .parse::<Format>()?;
    let compression = match s(&mut t, "compression")?.as_deref() {
        None | Some("none") => None,
        Some("zlib") => Some(false),
        Some("zstd") => Some(true),
        Some(o) => {
            return Err(Error::Invalid(format!(
                "recipe: compression {o:?}: use none, zlib or zstd"
            )))
        }
    };
    let size = s(&mut t, "size")?
        .map(|v| diskfab_part::parse_size(&v))
        .transpose()?;
    let time = match t.remove("time") {
        None => DEFAULT_TIME,
        Some(toml::Value::Integer(i)) => i,
        Some(_) => {
            return Err(Error::Invalid(
                "recipe: time must be seconds since 1970".into(),
            ))
        }
    };
    let fresh = match t.remove("fresh") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => return Err(Error::Invalid("recipe: fresh must be true or false".into())),
    };
    let spec = spec::parse(&toml::to_string(&t).map_err(|e| Error::Invalid(e.to_string()))?)
        .map_err(|e| Error::Invalid(e.to_string().replace("spec file", "recipe")))?;
    Ok(Recipe {
        base: dir.join(base),
        deltas,
        output,
        format,
        compression,
        size,
        time,
        fresh,
        spec,
        id: blake3::hash(text.as_bytes()).to_hex().to_string(),
    })
}

/// What `build` did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The image written.
    pub output: String,
    /// Format.
    pub format: String,
    /// Deltas applied.
    pub deltas: usize,
    /// Customization changes made.
    pub changes: usize,
    /// Output size on the host.
    pub output_bytes: u64,
    /// Milliseconds.
    pub elapsed_ms: u64,
}

/// Builds the image a recipe describes. `out`/`format` override the recipe's.
pub fn build(
    recipe_path: &Path,
    out: Option<&Path>,
    format: Option<Format>,
    gate: &BackingGate,
) -> Result<BuildReport> {
    let t0 = Instant::now();
    let text = std::fs::read_to_string(recipe_path)
        .map_err(|e| Error::io(recipe_path.display().to_string(), e))?;
    let dir = recipe_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let r = parse_recipe(&text, dir)?;
    let output = out
        .map(Path::to_path_buf)
        .or(r.output.clone())
        .ok_or_else(|| Error::Invalid("no output: give --out or `output` in the recipe".into()))?;
    if output.exists() {
        return Err(Error::Exists(format!("{} exists", output.display())));
    }
    let format = format.unwrap_or(r.format);
    let base =
        std::fs::canonicalize(&r.base).map_err(|e| Error::io(r.base.display().to_string(), e))?;
    let mut gate = gate.clone();
    if let Some(d) = base.parent() {
        gate.allow_dirs.push(d.to_path_buf());
    }
    let out_dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".diskfab-build-")
        .tempdir_in(out_dir)
        .map_err(|e| Error::io(out_dir.display().to_string(), e))?;
    let overlay = work.path().join("work.qcow2");
    let base_size = diskfab_image::Image::open(
        &base,
        &diskfab_image::OpenOptions {
            writable: false,
            gate: gate.clone(),
        },
    )?
    .dev()
    .size();
    if r.size.is_some_and(|s| s < base_size) {
        return Err(Error::Invalid(format!(
            "recipe size is smaller than the base ({base_size} bytes); images only grow"
        )));
    }
    diskfab_image::create(
        &overlay,
        &CreateOptions {
            format: Format::Qcow2,
            backing: Some(base.clone()),
            size: r.size,
            ..Default::default()
        },
    )?;
    let clock = Timespec {
        sec: r.time,
        nsec: 0,
    };
    let side = Side {
        image: overlay.clone(),
        partition: None,
    };
    for d in &r.deltas {
        let rep = delta_apply(&side, d, ApplyOptions::default(), Some(clock), &gate)
            .map_err(|e| e.context(d.display()))?;
        if !rep.applied {
            let list: Vec<String> = rep
                .conflicts
                .iter()
                .map(|c| format!("{}: {}", c.path, c.reason))
                .collect();
            return Err(Error::Failed(format!(
                "{} does not apply to the base: {}",
                d.display(),
                list.join("; ")
            )));
        }
    }
    let mut changes = 0;
    if !r.spec.ops.is_empty() {
        let settings = Settings {
            crypto: r
                .spec
                .password_crypto
                .as_deref()
                .map(str::parse)
                .transpose()?,
            net_style: r
                .spec
                .network_format
                .as_deref()
                .map(str::parse)
                .transpose()?,
            seed: if r.fresh {
                None
            } else {
                Some(r.spec.seed.clone().unwrap_or_else(|| r.id.clone()))
            },
            clock: Some(clock),
            network: Default::default(),
        };
        let rep = customize(
            &overlay,
            None,
            &r.spec.ops,
            &settings,
            false,
            &DiskOptions {
                writable: true,
                gate: gate.clone(),
            },
        )?;
        changes = rep.actions.len();
    }
    let tmp_out = work.path().join("output");
    convert(
        &overlay,
        &tmp_out,
        &ConvertOptions {
            format,
            cluster_size: None,
            backing: None,
            gate: gate.clone(),
            fixed: false,
            stream_optimized: false,
            compress: r.compression.is_some(),
            zstd: r.compression == Some(true),
            ..Default::default()
        },
        &|_| {},
    )?;
    if output.exists() {
        return Err(Error::Exists(format!("{} exists", output.display())));
    }
    std::fs::rename(&tmp_out, &output).map_err(|e| Error::io(output.display().to_string(), e))?;
    Ok(BuildReport {
        output: output.display().to_string(),
        format: format.to_string(),
        deltas: r.deltas.len(),
        changes,
        output_bytes: std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0),
        elapsed_ms: t0.elapsed().as_millis() as u64,
    })
}
