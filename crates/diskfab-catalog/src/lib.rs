//! diskfab catalog (seed 001): images recorded with what inspection found — OS facts, packages,
//! hypervisor drivers, user tags — and found again by content with a small search language
//! ([`query`]). Storage sits behind the [`Store`] trait; [`sqlite::SqliteStore`] is the default
//! (PostgreSQL can implement the same trait).
#![deny(missing_docs)]

pub mod query;
pub mod sqlite;
pub mod version;

use diskfab_storage::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// What is recorded for one image.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Canonical image path (the key).
    pub path: String,
    /// Content fingerprint (changes when any layer of the image changes).
    pub fingerprint: String,
    /// Automatic facts from inspection: os, distro, version, arch, hostname, ...
    pub attrs: Vec<(String, String)>,
    /// Installed packages: (name, full version).
    pub packages: Vec<(String, String)>,
    /// Hypervisor drivers available in some kernel.
    pub drivers: Vec<String>,
    /// `rpm` to order versions as rpm does, else dpkg's ordering.
    pub scheme: version::Scheme,
    /// The full inspection report.
    pub report: serde_json::Value,
}

/// A catalogued image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Id.
    pub id: i64,
    /// Path.
    pub path: String,
    /// Content fingerprint at the last inspection.
    pub fingerprint: String,
    /// When it was last inspected (seconds since 1970).
    pub inspected: i64,
    /// Automatic facts.
    pub attrs: BTreeMap<String, String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Number of installed packages.
    pub packages: usize,
    /// Hypervisor drivers.
    pub drivers: Vec<String>,
    /// The inspection report (`show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// Catalog storage.
pub trait Store {
    /// Records an image (replacing an earlier record of the same path, keeping its user tags);
    /// returns its id.
    fn upsert(&mut self, r: &Record, now: i64) -> Result<i64>;
    /// Every entry, by id.
    fn list(&self) -> Result<Vec<Entry>>;
    /// One entry by id or path, with its report.
    fn get(&self, id_or_path: &str) -> Result<Option<Entry>>;
    /// Removes an entry; false if there was none.
    fn remove(&mut self, id: i64) -> Result<bool>;
    /// Sets a user tag.
    fn tag(&mut self, id: i64, key: &str, value: &str) -> Result<()>;
    /// Removes a user tag; false if it was not set.
    fn untag(&mut self, id: i64, key: &str) -> Result<bool>;
    /// Entries matching every term.
    fn search(&self, terms: &[query::Term]) -> Result<Vec<Entry>>;
}
