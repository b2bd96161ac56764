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

/// One problem found in the instances file, reported with all the others before anything is
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Row of the file, as in a spreadsheet: the header is row 1, the first instance row 2.
    pub row: usize,
    /// The columns involved (empty when the row as a whole is wrong).
    pub columns: Vec<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.columns.as_slice() {
            [] => write!(f, "row {}: {}", self.row, self.reason),
            [c] => write!(f, "row {}, column {c}: {}", self.row, self.reason),
            cs => write!(
                f,
                "row {}, columns {}: {}",
                self.row,
                cs.join(", "),
                self.reason
            ),
        }
    }
}

/// At most this many problems are listed in one error.
pub const MAX_LISTED: usize = 100;

/// One usage error (exit 2) listing every problem, by row.
pub fn problems_error(mut problems: Vec<Problem>) -> Error {
    problems.sort_by_key(|p| p.row);
    let n = problems.len();
    let mut msg = format!(
        "the instances file has {n} problem{}; nothing was written:",
        if n == 1 { "" } else { "s" }
    );
    for p in problems.iter().take(MAX_LISTED) {
        msg.push_str(&format!("\n  {p}"));
    }
    if n > MAX_LISTED {
        msg.push_str(&format!("\n  ... and {} more", n - MAX_LISTED));
    }
    Error::Invalid(msg)
}

fn problem(row: usize, columns: Vec<String>, reason: impl Into<String>) -> Problem {
    Problem {
        row,
        columns,
        reason: reason.into(),
    }
}

/// The variables of a template that are not columns of the header.
fn unknown_vars(template: &str, headers: &[String]) -> Vec<String> {
    let op = Op {
        name: String::new(),
        arg: template.to_string(),
    };
    op.variables()
        .into_iter()
        .filter(|v| !headers.contains(v))
        .collect()
}

/// The header and the usable rows of an instances file, with the problems of the others.
struct Rows {
    headers: Vec<String>,
    insts: Vec<Instance>,
    problems: Vec<Problem>,
}

fn read_headers(r: &mut csv::Reader<&[u8]>) -> Result<Vec<String>> {
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
    Ok(headers)
}

/// Reads every row, collecting problems instead of stopping at the first; only a bad header,
/// too many rows or no rows at all stop the reading.
fn read_rows(text: &str, name_template: &str) -> Result<Rows> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = read_headers(&mut r)?;
    let mut problems = Vec::new();
    let name_cols = Op {
        name: String::new(),
        arg: name_template.to_string(),
    }
    .variables();
    let missing = unknown_vars(name_template, &headers);
    let names_ok = missing.is_empty();
    for v in missing {
        problems.push(problem(
            1,
            vec![v.clone()],
            format!("the name template {name_template:?} uses {{{{{v}}}}}, which is not a column of the header"),
        ));
    }
    let mut insts = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut rows = 0usize;
    for (i, rec) in r.records().enumerate() {
        rows += 1;
        if rows > MAX_INSTANCES {
            return Err(Error::Invalid(format!(
                "more than {MAX_INSTANCES} instances"
            )));
        }
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                let row = e.position().map_or(i + 2, |p| p.line() as usize);
                problems.push(problem(row, vec![], e.to_string()));
                continue;
            }
        };
        let line = rec.position().map_or(i + 2, |p| p.line() as usize);
        if rec.len() != headers.len() {
            if rec.len() < headers.len() {
                problems.push(problem(
                    line,
                    headers[rec.len()..].to_vec(),
                    format!(
                        "missing value (the row has {} of the header's {} columns)",
                        rec.len(),
                        headers.len()
                    ),
                ));
            } else {
                problems.push(problem(
                    line,
                    vec![],
                    format!(
                        "{} values, but the header has {} columns",
                        rec.len(),
                        headers.len()
                    ),
                ));
            }
            continue;
        }
        let vars: BTreeMap<String, String> = headers
            .iter()
            .cloned()
            .zip(rec.iter().map(String::from))
            .collect();
        if !names_ok {
            continue;
        }
        let name = match render(name_template, &vars) {
            Ok(n) => n,
            Err(e) => {
                problems.push(problem(line, name_cols.clone(), e.to_string()));
                continue;
            }
        };
        if let Err(e) = check_hostname(&name) {
            problems.push(problem(
                line,
                name_cols.clone(),
                format!("clone name {name:?} is not usable: {e}"),
            ));
            continue;
        }
        if let Some(prev) = names.insert(name.to_ascii_lowercase(), line) {
            problems.push(problem(
                line,
                name_cols.clone(),
                format!("name {name:?} is already used on row {prev}"),
            ));
            continue;
        }
        insts.push(Instance { line, name, vars });
    }
    if rows == 0 {
        return Err(Error::Invalid("the instances file has no rows".into()));
    }
    Ok(Rows {
        headers,
        insts,
        problems,
    })
}

/// Parses the CSV; every row must have every column; names must be unique host names. Every
/// bad row is reported, in one error.
pub fn parse(text: &str, name_template: &str) -> Result<Vec<Instance>> {
    let rows = read_rows(text, name_template)?;
    if !rows.problems.is_empty() {
        return Err(problems_error(rows.problems));
    }
    Ok(rows.insts)
}

/// Parses the CSV and renders `ops` (the per-instance operations, with `{{column}}`
/// templates) for every row, then checks across all rows; every problem of every row
/// (bad or duplicate names, missing values, templates naming a missing column, invalid host
/// names or addresses, addresses outside their network or used twice) is reported in one
/// error, as `row N, column C: reason` lines.
pub fn prepare(text: &str, name_template: &str, ops: &[Op]) -> Result<Vec<(Instance, Vec<Op>)>> {
    let rows = read_rows(text, name_template)?;
    let mut problems = rows.problems;
    // Operations naming a missing column are reported once (row 1, the header); the others
    // are still checked on every row.
    let mut usable = Vec::new();
    for o in ops {
        let unknown = unknown_vars(&o.arg, &rows.headers);
        if unknown.is_empty() {
            usable.push(o.clone());
        }
        for v in unknown {
            problems.push(problem(
                1,
                vec![v.clone()],
                format!(
                    "--{} {:?} uses {{{{{v}}}}}, which is not a column of the header",
                    o.name, o.arg
                ),
            ));
        }
    }
    let mut all = Vec::new();
    for inst in rows.insts {
        match usable
            .iter()
            .map(|o| o.render(&inst.vars))
            .collect::<Result<Vec<_>>>()
        {
            Ok(r) => all.push((inst, r)),
            Err(e) => problems.push(problem(inst.line, vec![], e.to_string())),
        }
    }
    problems.extend(bulk_problems(&all, Some(&usable)));
    if !problems.is_empty() {
        return Err(problems_error(problems));
    }
    Ok(all)
}

/// The ops of one instance, rendered.
pub fn render_ops(ops: &[Op], inst: &Instance) -> Result<Vec<Op>> {
    ops.iter()
        .map(|o| o.render(&inst.vars))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            Error::Invalid(format!(
                "instances file row {} ({}): {e}",
                inst.line, inst.name
            ))
        })
}

/// Checks across all instances: every templated `--hostname` valid, static addresses valid,
/// inside their networks and not used twice. Every problem is reported, in one error.
pub fn bulk_check(all: &[(Instance, Vec<Op>)]) -> Result<()> {
    let problems = bulk_problems(all, None);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems_error(problems))
    }
}

/// The problems across all instances; `templates` (the unrendered ops, in the same order)
/// name the columns involved.
fn bulk_problems(all: &[(Instance, Vec<Op>)], templates: Option<&[Op]>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut addrs: HashMap<std::net::IpAddr, usize> = HashMap::new();
    for (inst, ops) in all {
        for (j, o) in ops.iter().enumerate() {
            let cols = || {
                templates
                    .and_then(|t| t.get(j))
                    .map(Op::variables)
                    .unwrap_or_default()
            };
            let mut report = |reason: String| problems.push(problem(inst.line, cols(), reason));
            match o.name.as_str() {
                "hostname" => {
                    if let Err(e) = check_hostname(&o.arg) {
                        report(format!("--hostname: {e}"));
                    }
                }
                "network-static" => match parse_static(&o.arg) {
                    Err(e) => report(format!("--network-static {:?}: {e}", o.arg)),
                    Ok(n) => {
                        if let Some(prev) = addrs.insert(n.addr, inst.line) {
                            report(format!("address {} is also used on row {prev}", n.addr));
                        }
                    }
                },
                _ => {}
            }
        }
    }
    problems
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
        assert!(e.to_string().contains("row 3, column name"), "{e}");
        let e = parse("name,ip\nweb1\n", "{{name}}").unwrap_err();
        assert!(e.to_string().contains("row 2, column ip"), "{e}");
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
            e.to_string().contains("row 3") && e.to_string().contains("row 2"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_row_and_column() {
        let csv = "name,ip\nok1,10.0.0.2\nbad_name,10.0.0.3\nok1,10.0.0.4\nshort\nok4,192.168.9.9\nok5,10.0.0.2\nok6,10.0.0.7\n";
        let op = Op::new("network-static", "eth0:{{ip}}/24:10.0.0.1").unwrap();
        let e = prepare(csv, "{{name}}", std::slice::from_ref(&op))
            .unwrap_err()
            .to_string();
        for want in [
            "row 3, column name: clone name \"bad_name\"",
            "row 4, column name: name \"ok1\" is already used on row 2",
            "row 5, column ip: missing value",
            "row 6, column ip: --network-static",
            "row 7, column ip: address 10.0.0.2 is also used on row 2",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
        assert!(e.contains("5 problems"), "{e}");
        assert!(!e.contains("row 8"), "{e}");
        let bad = Op::new("hostname", "{{host}}").unwrap();
        let e = prepare(csv, "{{name}}", &[bad]).unwrap_err().to_string();
        assert!(e.contains("row 1, column host: --hostname"), "{e}");
    }
}
