//! The SQLite catalog: one file, indexed tables for facts, packages and drivers, and a per-image
//! summary row so listing 10,000 results is one query.

use crate::query::{Op, Term};
use crate::version::{compare, Scheme};
use crate::{Entry, Record, Store};
use diskfab_storage::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SCHEMA: &str = "
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS images(
  id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, fingerprint TEXT NOT NULL,
  inspected INTEGER NOT NULL, scheme TEXT NOT NULL, summary TEXT NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attrs(
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  key TEXT NOT NULL, value TEXT NOT NULL, user INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attrs_kv ON attrs(key, value);
CREATE INDEX IF NOT EXISTS attrs_img ON attrs(image_id);
CREATE TABLE IF NOT EXISTS packages(
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  name TEXT NOT NULL, version TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS packages_name ON packages(name);
CREATE INDEX IF NOT EXISTS packages_img ON packages(image_id);
CREATE TABLE IF NOT EXISTS drivers(
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS drivers_name ON drivers(name);
CREATE INDEX IF NOT EXISTS drivers_img ON drivers(image_id);
PRAGMA user_version = 1;
";

fn db(e: rusqlite::Error) -> Error {
    Error::Failed(format!("catalog database: {e}"))
}

/// A catalog in an SQLite file.
pub struct SqliteStore {
    c: Connection,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Summary {
    attrs: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    packages: usize,
    drivers: Vec<String>,
}

impl SqliteStore {
    /// Opens (creating) the catalog at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d.display().to_string(), e))?;
        }
        let c = Connection::open(path).map_err(db)?;
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if v > 1 {
            return Err(Error::Unsupported(format!(
                "{}: catalog schema {v} is newer than this diskfab",
                path.display()
            )));
        }
        c.execute_batch(SCHEMA).map_err(db)?;
        rusqlite::vtab::array::load_module(&c).map_err(db)?;
        Ok(SqliteStore { c })
    }

    /// An in-memory catalog (tests).
    pub fn memory() -> Result<SqliteStore> {
        let c = Connection::open_in_memory().map_err(db)?;
        c.execute_batch(SCHEMA).map_err(db)?;
        rusqlite::vtab::array::load_module(&c).map_err(db)?;
        Ok(SqliteStore { c })
    }

    /// Adds many records in one transaction (bulk loads).
    pub fn upsert_many(&mut self, rs: &[Record], now: i64) -> Result<()> {
        let tx = self.c.transaction().map_err(db)?;
        for r in rs {
            upsert_in(&tx, r, now)?;
        }
        tx.commit().map_err(db)
    }

    fn refresh_summary(&self, id: i64) -> Result<()> {
        SqliteStoreRef(&self.c).refresh(id)
    }

    fn entries(&self, ids: Option<&BTreeSet<i64>>) -> Result<Vec<Entry>> {
        let row = |r: &rusqlite::Row| -> rusqlite::Result<Entry> {
            let s: Summary = serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default();
            Ok(Entry {
                id: r.get(0)?,
                path: r.get(1)?,
                fingerprint: r.get(2)?,
                inspected: r.get(3)?,
                attrs: s.attrs,
                tags: s.tags,
                packages: s.packages,
                drivers: s.drivers,
                report: None,
            })
        };
        let cols = "SELECT id, path, fingerprint, inspected, summary FROM images";
        match ids {
            None => {
                let mut q = self
                    .c
                    .prepare_cached(&format!("{cols} ORDER BY id"))
                    .map_err(db)?;
                let v = q
                    .query_map([], row)
                    .map_err(db)?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db)?;
                Ok(v)
            }
            Some(ids) => {
                let arr = std::rc::Rc::new(
                    ids.iter()
                        .map(|i| rusqlite::types::Value::Integer(*i))
                        .collect::<Vec<_>>(),
                );
                let mut q = self
                    .c
                    .prepare_cached(&format!("{cols} WHERE id IN rarray(?) ORDER BY id"))
                    .map_err(db)?;
                let v = q
                    .query_map([arr], row)
                    .map_err(db)?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db)?;
                Ok(v)
            }
        }
    }

    fn all_ids(&self) -> Result<BTreeSet<i64>> {
        let mut q = self.c.prepare_cached("SELECT id FROM images").map_err(db)?;
        let ids = q
            .query_map([], |r| r.get(0))
            .map_err(db)?
            .collect::<std::result::Result<_, _>>()
            .map_err(db)?;
        Ok(ids)
    }

    fn schemes(&self) -> Result<BTreeMap<i64, Scheme>> {
        let mut q = self
            .c
            .prepare_cached("SELECT id, scheme FROM images")
            .map_err(db)?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        rows.map(|r| {
            r.map(|(i, s)| {
                (
                    i,
                    if s == "rpm" {
                        Scheme::Rpm
                    } else {
                        Scheme::Dpkg
                    },
                )
            })
            .map_err(db)
        })
        .collect()
    }

    /// Ids among `within` for which `t` holds.
    fn matches(
        &self,
        t: &Term,
        schemes: &std::cell::OnceCell<BTreeMap<i64, Scheme>>,
        within: &BTreeSet<i64>,
    ) -> Result<BTreeSet<i64>> {
        let all = within;
        let needs_versions = matches!(
            t,
            Term::Package {
                version: Some(_),
                ..
            } | Term::Attr {
                op: Op::Ge | Op::Le | Op::Gt | Op::Lt,
                ..
            }
        );
        if needs_versions && schemes.get().is_none() {
            let _ = schemes.set(self.schemes()?);
        }
        let scheme = |id: &i64| {
            schemes
                .get()
                .and_then(|m| m.get(id))
                .copied()
                .unwrap_or(Scheme::Dpkg)
        };
        Ok(match t {
            Term::Not(inner) => all
                .difference(&self.matches(inner, schemes, all)?)
                .copied()
                .collect(),
            Term::Driver { name } => {
                let mut q = self
                    .c
                    .prepare_cached("SELECT image_id FROM drivers WHERE name = ?")
                    .map_err(db)?;
                let ids = q
                    .query_map([name], |r| r.get(0))
                    .map_err(db)?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db)?;
                ids
            }
            Term::Package { name, version } => {
                let mut q = self
                    .c
                    .prepare_cached("SELECT image_id, version FROM packages WHERE name = ?")
                    .map_err(db)?;
                let rows = q
                    .query_map([name], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db)?;
                let mut out = BTreeSet::new();
                for row in rows {
                    let (id, v) = row.map_err(db)?;
                    if !within.contains(&id) {
                        continue;
                    }
                    if version
                        .as_ref()
                        .is_none_or(|(op, want)| op.holds(compare(scheme(&id), &v, want)))
                    {
                        out.insert(id);
                    }
                }
                out
            }
            Term::Attr {
                key,
                op: Op::Ne,
                values,
            } => {
                let eq = Term::Attr {
                    key: key.clone(),
                    op: Op::Eq,
                    values: values.clone(),
                };
                all.difference(&self.matches(&eq, schemes, all)?)
                    .copied()
                    .collect()
            }
            Term::Attr {
                key,
                op: Op::Eq,
                values,
            } => {
                let vals = std::rc::Rc::new(
                    values
                        .iter()
                        .map(|v| rusqlite::types::Value::Text(v.clone()))
                        .collect::<Vec<_>>(),
                );
                let mut q = self
                    .c
                    .prepare_cached(
                        "SELECT image_id FROM attrs WHERE key = ? AND value IN rarray(?)",
                    )
                    .map_err(db)?;
                let ids = q
                    .query_map(params![key, vals], |r| r.get(0))
                    .map_err(db)?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db)?;
                ids
            }
            Term::Attr { key, op, values } => {
                let mut q = self
                    .c
                    .prepare_cached("SELECT image_id, value FROM attrs WHERE key = ?")
                    .map_err(db)?;
                let rows = q
                    .query_map([key], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                    .map_err(db)?;
                let mut out = BTreeSet::new();
                for row in rows {
                    let (id, v) = row.map_err(db)?;
                    if !within.contains(&id) {
                        continue;
                    }
                    let hit = values
                        .iter()
                        .any(|want| op.holds(compare(scheme(&id), &v, want)));
                    if hit {
                        out.insert(id);
                    }
                }
                out
            }
        })
    }
}

fn upsert_in(c: &Connection, r: &Record, now: i64) -> Result<i64> {
    let scheme = if r.scheme == Scheme::Rpm {
        "rpm"
    } else {
        "dpkg"
    };
    let report = serde_json::to_string(&r.report).map_err(|e| Error::Failed(e.to_string()))?;
    let existing: Option<i64> = c
        .query_row("SELECT id FROM images WHERE path = ?", [&r.path], |x| {
            x.get(0)
        })
        .optional()
        .map_err(db)?;
    let id = match existing {
        Some(id) => {
            c.execute("UPDATE images SET fingerprint = ?, inspected = ?, scheme = ?, report = ? WHERE id = ?", params![r.fingerprint, now, scheme, report, id]).map_err(db)?;
            for t in [
                "DELETE FROM attrs WHERE image_id = ? AND user = 0",
                "DELETE FROM packages WHERE image_id = ?",
                "DELETE FROM drivers WHERE image_id = ?",
            ] {
                c.execute(t, [id]).map_err(db)?;
            }
            id
        }
        None => {
            c.execute("INSERT INTO images(path, fingerprint, inspected, scheme, summary, report) VALUES (?, ?, ?, ?, '{}', ?)", params![r.path, r.fingerprint, now, scheme, report]).map_err(db)?;
            c.last_insert_rowid()
        }
    };
    {
        let mut q = c
            .prepare_cached("INSERT INTO attrs(image_id, key, value, user) VALUES (?, ?, ?, 0)")
            .map_err(db)?;
        for (k, v) in &r.attrs {
            q.execute(params![id, k, v]).map_err(db)?;
        }
        let mut q = c
            .prepare_cached("INSERT INTO packages(image_id, name, version) VALUES (?, ?, ?)")
            .map_err(db)?;
        for (n, v) in &r.packages {
            q.execute(params![id, n, v]).map_err(db)?;
        }
        let mut q = c
            .prepare_cached("INSERT INTO drivers(image_id, name) VALUES (?, ?)")
            .map_err(db)?;
        for d in r.drivers.iter().collect::<BTreeSet<_>>() {
            q.execute(params![id, d]).map_err(db)?;
        }
    }
    let tmp = SqliteStoreRef(c);
    tmp.refresh(id)?;
    Ok(id)
}

/// Summary refresh on a borrowed connection (inside transactions).
struct SqliteStoreRef<'a>(&'a Connection);

impl SqliteStoreRef<'_> {
    fn refresh(&self, id: i64) -> Result<()> {
        let c = self.0;
        let mut s = Summary::default();
        let mut q = c
            .prepare_cached("SELECT key, value, user FROM attrs WHERE image_id = ?")
            .map_err(db)?;
        for row in q
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(db)?
        {
            let (k, v, user) = row.map_err(db)?;
            if user {
                s.tags.insert(k, v)
            } else {
                s.attrs.insert(k, v)
            };
        }
        s.packages = c
            .query_row(
                "SELECT count(*) FROM packages WHERE image_id = ?",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db)? as usize;
        let mut q = c
            .prepare_cached("SELECT name FROM drivers WHERE image_id = ? ORDER BY name")
            .map_err(db)?;
        s.drivers = q
            .query_map([id], |r| r.get(0))
            .map_err(db)?
            .collect::<std::result::Result<_, _>>()
            .map_err(db)?;
        let j = serde_json::to_string(&s).map_err(|e| Error::Failed(e.to_string()))?;
        c.execute("UPDATE images SET summary = ? WHERE id = ?", params![j, id])
            .map_err(db)?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn upsert(&mut self, r: &Record, now: i64) -> Result<i64> {
        let tx = self.c.transaction().map_err(db)?;
        let id = upsert_in(&tx, r, now)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    fn list(&self) -> Result<Vec<Entry>> {
        self.entries(None)
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let id: Option<i64> = match key.parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                let p = std::fs::canonicalize(key)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| key.to_string());
                self.c
                    .query_row("SELECT id FROM images WHERE path = ?", [p], |r| r.get(0))
                    .optional()
                    .map_err(db)?
            }
        };
        let Some(id) = id else { return Ok(None) };
        let one: BTreeSet<i64> = [id].into();
        let Some(mut e) = self.entries(Some(&one))?.pop() else {
            return Ok(None);
        };
        let rep: String = self
            .c
            .query_row("SELECT report FROM images WHERE id = ?", [id], |r| r.get(0))
            .map_err(db)?;
        e.report = serde_json::from_str(&rep).ok();
        Ok(Some(e))
    }

    fn remove(&mut self, id: i64) -> Result<bool> {
        Ok(self
            .c
            .execute("DELETE FROM images WHERE id = ?", [id])
            .map_err(db)?
            > 0)
    }

    fn tag(&mut self, id: i64, key: &str, value: &str) -> Result<()> {
        if !self.all_ids()?.contains(&id) {
            return Err(Error::NotFound(format!("no catalog entry {id}")));
        }
        self.c
            .execute(
                "DELETE FROM attrs WHERE image_id = ? AND key = ? AND user = 1",
                params![id, key],
            )
            .map_err(db)?;
        self.c
            .execute(
                "INSERT INTO attrs(image_id, key, value, user) VALUES (?, ?, ?, 1)",
                params![id, key, value],
            )
            .map_err(db)?;
        self.refresh_summary(id)
    }

    fn untag(&mut self, id: i64, key: &str) -> Result<bool> {
        let n = self
            .c
            .execute(
                "DELETE FROM attrs WHERE image_id = ? AND key = ? AND user = 1",
                params![id, key],
            )
            .map_err(db)?;
        self.refresh_summary(id)?;
        Ok(n > 0)
    }

    fn search(&self, terms: &[Term]) -> Result<Vec<Entry>> {
        let all = self.all_ids()?;
        let schemes = std::cell::OnceCell::new();
        let mut set = all;
        // Equality terms first: they are indexed and usually the most selective.
        let mut order: Vec<&Term> = terms.iter().collect();
        order.sort_by_key(|t| !matches!(t, Term::Attr { op: Op::Eq, .. } | Term::Driver { .. }));
        for t in order {
            let m = self.matches(t, &schemes, &set)?;
            set = set.intersection(&m).copied().collect();
            if set.is_empty() {
                break;
            }
        }
        self.entries(Some(&set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    fn rec(
        path: &str,
        distro: &str,
        version: &str,
        pkgs: &[(&str, &str)],
        drivers: &[&str],
        scheme: Scheme,
    ) -> Record {
        Record {
            path: path.into(),
            fingerprint: "f".into(),
            attrs: vec![
                ("os".into(), "linux".into()),
                ("distro".into(), distro.into()),
                ("version".into(), version.into()),
                ("arch".into(), "x86_64".into()),
            ],
            packages: pkgs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            drivers: drivers.iter().map(|d| d.to_string()).collect(),
            scheme,
            report: serde_json::json!({}),
        }
    }

    #[test]
    fn search_combines_facts_versions_packages_drivers_and_tags() {
        let mut s = SqliteStore::memory().unwrap();
        let a = s
            .upsert(
                &rec(
                    "/a",
                    "debian",
                    "12",
                    &[("openssh-server", "1:9.2p1-2+deb12u3")],
                    &["virtio_blk", "virtio_net"],
                    Scheme::Dpkg,
                ),
                1,
            )
            .unwrap();
        let b = s
            .upsert(
                &rec(
                    "/b",
                    "debian",
                    "11",
                    &[("openssh-server", "1:8.4p1-5")],
                    &["virtio_blk"],
                    Scheme::Dpkg,
                ),
                1,
            )
            .unwrap();
        let c = s
            .upsert(
                &rec(
                    "/c",
                    "fedora",
                    "39",
                    &[("openssh-server", "9.3p1-10.fc39")],
                    &[],
                    Scheme::Rpm,
                ),
                1,
            )
            .unwrap();
        fn ids_of(s: &SqliteStore, q: &str) -> Vec<i64> {
            s.search(&parse(q).unwrap())
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect()
        }
        assert_eq!(ids_of(&s, "distro=debian"), vec![a, b]);
        assert_eq!(ids_of(&s, "distro=debian version>=12"), vec![a]);
        assert_eq!(ids_of(&s, "version<12"), vec![b]);
        assert_eq!(
            ids_of(&s, "distro=debian,fedora !driver=virtio_net"),
            vec![b, c]
        );
        assert_eq!(ids_of(&s, "package=openssh-server>=1:9"), vec![a]);
        assert_eq!(
            ids_of(&s, "package=openssh-server<1:0"),
            vec![c],
            "epochs order first"
        );
        assert_eq!(ids_of(&s, "!package=openssh-server"), Vec::<i64>::new());
        assert_eq!(ids_of(&s, "arch!=x86_64"), Vec::<i64>::new());
        s.tag(c, "owner", "team-a").unwrap();
        assert_eq!(ids_of(&s, "owner=team-a"), vec![c]);
        // Re-recording keeps user tags; untag removes them.
        s.upsert(&rec("/c", "fedora", "40", &[], &[], Scheme::Rpm), 2)
            .unwrap();
        assert_eq!(ids_of(&s, "owner=team-a version=40"), vec![c]);
        assert!(s.untag(c, "owner").unwrap());
        assert!(ids_of(&s, "owner=team-a").is_empty());
        assert!(s.remove(b).unwrap());
        assert_eq!(s.list().unwrap().len(), 2);
        assert_eq!(s.get(&a.to_string()).unwrap().unwrap().packages, 1);
    }
}
