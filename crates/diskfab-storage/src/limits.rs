//! The memory budget: how large one table, bitmap or buffer sized from an image may be.
//!
//! Images come from strangers, so no allocation may be sized by what a header claims or by the
//! length of a (possibly sparse) file alone. Parsers first check that a table is consistent
//! with its file (a table past the end of the file is a bad image), then ask this module for
//! the memory: a table larger than the budget is refused with [`Error::Failed`] naming what
//! needed how much and how to raise the limit, instead of aborting the process.
//!
//! The budget is set by configuration, never by the image: [`DEFAULT_MAX_TABLE_BYTES`]
//! (512 MiB), the environment variable `DISKFAB_MAX_MEMORY` (`512M`, `2G`, ...) or the
//! command-line flag `--max-memory SIZE` (which calls [`set_max_table_bytes`]).

use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The default budget for any single table, bitmap or buffer sized from an image: 512 MiB.
pub const DEFAULT_MAX_TABLE_BYTES: u64 = 512 << 20;
/// The environment variable that sets the budget (`512M`, `2G`, `1048576`, ...).
pub const ENV_MAX_MEMORY: &str = "DISKFAB_MAX_MEMORY";

/// 0 = not set explicitly (environment or default apply).
static EXPLICIT: AtomicU64 = AtomicU64::new(0);
static FROM_ENV: OnceLock<u64> = OnceLock::new();

/// Sets the budget for this process (the `--max-memory` flag). 0 restores the environment's
/// or the default budget.
pub fn set_max_table_bytes(bytes: u64) {
    EXPLICIT.store(bytes, Ordering::Relaxed);
}

/// The budget in bytes for one table, bitmap or buffer: `--max-memory`, else
/// `DISKFAB_MAX_MEMORY`, else [`DEFAULT_MAX_TABLE_BYTES`]. An unparsable environment value
/// falls back to the default (the CLI validates it up front with [`env_max_memory`]).
pub fn max_table_bytes() -> u64 {
    match EXPLICIT.load(Ordering::Relaxed) {
        0 => *FROM_ENV.get_or_init(|| {
            env_max_memory()
                .ok()
                .flatten()
                .unwrap_or(DEFAULT_MAX_TABLE_BYTES)
        }),
        n => n,
    }
}

/// The budget `DISKFAB_MAX_MEMORY` sets, if any; an error names the bad value.
pub fn env_max_memory() -> Result<Option<u64>> {
    match std::env::var(ENV_MAX_MEMORY) {
        Ok(v) if !v.trim().is_empty() => parse_size(&v)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{ENV_MAX_MEMORY}: {e}"))),
        _ => Ok(None),
    }
}

/// Parses a size: a number of bytes with an optional binary suffix `K`, `M`, `G`, `T`
/// (also `KiB`, `MB`, ...; all powers of 1024). Zero is refused.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(Error::Invalid(format!(
                "invalid size {s:?} (e.g. 512M, 2G)"
            )))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::Invalid(format!("invalid size {s:?} (e.g. 512M, 2G)")))
}

/// Formats a byte count for messages (`34359738368 bytes (32 GiB)`).
fn human(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (name, shift) in UNITS {
        if bytes >= 1 << shift {
            let v = bytes as f64 / (1u64 << shift) as f64;
            return format!("{bytes} bytes ({v:.1} {name})");
        }
    }
    format!("{bytes} bytes")
}

fn over_budget(what: &str, bytes: u64, max: u64) -> Error {
    Error::Failed(format!(
        "{what} needs {} of memory, more than the limit of {}; raise it with --max-memory SIZE \
         or {ENV_MAX_MEMORY}=SIZE (e.g. 4G) if you trust this image",
        human(bytes),
        human(max)
    ))
}

/// Checks that `bytes` (one table, bitmap or buffer for `what`) fits the budget.
pub fn check_budget(bytes: u64, what: &str) -> Result<()> {
    let max = max_table_bytes();
    if bytes > max {
        return Err(over_budget(what, bytes, max));
    }
    Ok(())
}

/// Checks that `n` elements of `T` (for `what`) fit the budget; returns their size in bytes.
pub fn check_elems<T>(n: u64, what: &str) -> Result<usize> {
    let bytes = n.saturating_mul(std::mem::size_of::<T>().max(1) as u64);
    check_budget(bytes, what)?;
    usize::try_from(bytes).map_err(|_| over_budget(what, bytes, max_table_bytes()))
}

/// A vector of `n` default values of `T` for `what`, refused with [`Error::Failed`] when it
/// would exceed the budget or when the host cannot provide the memory (never an abort).
pub fn alloc_vec<T: Clone + Default>(n: u64, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    grow_vec(&mut v, n, what)?;
    Ok(v)
}

/// Zero-filled bytes for `what` (see [`alloc_vec`]).
pub fn alloc_bytes(n: u64, what: &str) -> Result<Vec<u8>> {
    alloc_vec(n, what)
}

/// Grows `v` to `n` elements (new ones default), within the budget; never shrinks.
pub fn grow_vec<T: Clone + Default>(v: &mut Vec<T>, n: u64, what: &str) -> Result<()> {
    check_elems::<T>(n, what)?;
    let n = n as usize; // fits: check_elems bounded n * size_of::<T>() by a usize
    if n > v.len() {
        v.try_reserve_exact(n - v.len()).map_err(|_| {
            Error::Failed(format!(
                "{what} needs {} of memory and the host could not provide it; lower \
                 --max-memory or free memory",
                human((n * std::mem::size_of::<T>()) as u64)
            ))
        })?;
        v.resize(n, T::default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes_and_refuse_garbage() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        for bad in ["", "0", "G", "12X", "-1M", "99999999999999999999T", "1.5G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allocations_over_the_budget_fail_with_a_message_naming_the_flag() {
        // The explicit budget is process-global: this is the only test that sets it.
        set_max_table_bytes(1 << 20);
        let e = alloc_vec::<u32>(1 << 20, "the refcount array").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Error::Failed(_)), "{e:?}");
        assert!(m.contains("the refcount array needs 4194304 bytes"), "{m}");
        assert!(
            m.contains("--max-memory") && m.contains(ENV_MAX_MEMORY),
            "{m}"
        );
        assert_eq!(alloc_bytes(1 << 20, "x").unwrap().len(), 1 << 20);
        assert!(alloc_vec::<u64>(u64::MAX, "x").is_err());
        let mut v = vec![1u32; 3];
        grow_vec(&mut v, 5, "x").unwrap();
        assert_eq!(v, [1, 1, 1, 0, 0]);
        set_max_table_bytes(0);
        assert_eq!(max_table_bytes(), DEFAULT_MAX_TABLE_BYTES);
    }
}
