//! The instances file of `stamp`: a CSV with a header row whose columns are template
//! variables, one clone per row. Checked in bulk before anything is written.

use crate::network::parse_static;
use crate::ops::{render, Op};
use crate::system::check_hostname;
use diskfab_storage::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// Most rows accepted.
pub const MAX_INSTANCES: usize = 1_000_000;

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Line number in the file (the header is line 1).
    pub line: usize,
    /// The clone's name (from the name template).
    pub name: String,
    /// Column values.
    pub vars: BTreeMap<String, String>,
}

/// Parses the CSV; every row must have every column; names must be unique host names.
pub fn parse(text: &str, name_template: &str) -> Result<Vec<Instance>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| Error::Invalid(format!("instances file header: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    if headers.is_empty() || headers.iter().any(|h| h.is_empty()) {
        return Err(Error::Invalid(
            "instances file: the header row has an empty column name".into(),
        ));
    }
    let mut seen_cols = HashMap::new();
    for h in &headers {
        if seen_cols.insert(h.clone(), ()).is_some() {
            return Err(Error::Invalid(format!(
                "instances file: column {h:?} appears twice"
            )));
        }
    }
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::Invalid(format!("instances file line {line}: {e}")))?;
        if out.len() >= MAX_INSTANCES {
            return Err(Error::Invalid(format!(
                "more than {MAX_INSTANCES} instances"
            )));
        }
        let vars: BTreeMap<String, String> = headers
            .iter()
            .cloned()
            .zip(rec.iter().map(String::from))
            .collect();
        let name = render(name_template, &vars)
            .map_err(|e| Error::Invalid(format!("instances file line {line}: {e}")))?;
        check_hostname(&name).map_err(|e| {
            Error::Invalid(format!(
                "instances file line {line}: clone name {name:?} is not usable: {e}"
            ))
        })?;
        if let Some(prev) = names.insert(name.to_ascii_lowercase(), line) {
            return Err(Error::Invalid(format!(
                "instances file line {line}: name {name:?} is already used on line {prev}"
            )));
        }
        out.push(Instance { line, name, vars });
    }
    if out.is_empty() {
        return Err(Error::Invalid("the instances file has no rows".into()));
    }
    Ok(out)
}

/// The ops of one instance, rendered.
pub fn render_ops(ops: &[Op], inst: &Instance) -> Result<Vec<Op>> {
    ops.iter()
        .map(|o| o.render(&inst.vars))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            Error::Invalid(format!(
                "instances file line {} ({}): {e}",
                inst.line, inst.name
            ))
        })
}

/// Checks across all instances: every templated `--hostname` valid, static addresses valid,
/// inside their networks and not used twice.
pub fn bulk_check(all: &[(Instance, Vec<Op>)]) -> Result<()> {
    let mut addrs: HashMap<std::net::IpAddr, usize> = HashMap::new();
    for (inst, ops) in all {
        let at = |e: Error| {
            Error::Invalid(format!(
                "instances file line {} ({}): {e}",
                inst.line, inst.name
            ))
        };
        for o in ops {
            match o.name.as_str() {
                "hostname" => check_hostname(&o.arg).map_err(at)?,
                "network-static" => {
                    let n = parse_static(&o.arg).map_err(at)?;
                    if let Some(prev) = addrs.insert(n.addr, inst.line) {
                        return Err(at(Error::Invalid(format!(
                            "address {} is also used on line {prev}",
                            n.addr
                        ))));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_named_instances() {
        let v = parse("name,ip\nweb1,10.0.0.1\n web2 , 10.0.0.2\n", "{{name}}").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "web2");
        assert_eq!(v[1].vars["ip"], "10.0.0.2");
        assert_eq!(v[1].line, 3);
    }

    #[test]
    fn bad_rows_are_named_in_the_error() {
        let e = parse("name,ip\nweb1,10.0.0.1\nweb1,10.0.0.2\n", "{{name}}").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse("name,ip\nweb1\n", "{{name}}").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("name\n../x\n", "{{name}}").unwrap_err();
        assert!(e.to_string().contains("not usable"), "{e}");
        assert!(
            parse("ip\n1.2.3.4\n", "{{name}}").is_err(),
            "missing column"
        );
        assert!(parse("name\n", "{{name}}").is_err(), "no rows");
    }

    #[test]
    fn duplicate_addresses_are_refused_in_bulk() {
        let insts = parse("name,ip\na,10.0.0.5\nb,10.0.0.5\n", "{{name}}").unwrap();
        let op = Op::new("network-static", "eth0:{{ip}}/24:10.0.0.1").unwrap();
        let all: Vec<_> = insts
            .iter()
            .map(|i| (i.clone(), render_ops(std::slice::from_ref(&op), i).unwrap()))
            .collect();
        let e = bulk_check(&all).unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("line 2"),
            "{e}"
        );
    }
}
