//! The search language: space-separated terms that must all hold.
//!
//! ```text
//! distro=debian            attribute equals (any automatic fact or user tag)
//! distro=debian,ubuntu     any of several values
//! version>=12  arch!=i386  comparisons (versions ordered as dpkg/rpm do)
//! package=openssh-server   package installed;  package=openssh-server>=1:9.2  at a version
//! driver=virtio_blk        hypervisor driver available in a kernel of the image
//! !package=telnetd         negation of any term
//! ```

use diskfab_storage::{Error, Result};

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
}

impl Op {
    /// Applies the operator to an ordering of (value, wanted).
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => o == Equal,
            Op::Ne => o != Equal,
            Op::Ge => o != Less,
            Op::Le => o != Greater,
            Op::Gt => o == Greater,
            Op::Lt => o == Less,
        }
    }
}

/// One term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// An attribute (fact or tag) compared with one of `values`.
    Attr {
        /// Key.
        key: String,
        /// Operator.
        op: Op,
        /// Alternatives (any may match; for `!=` none may).
        values: Vec<String>,
    },
    /// A package is installed (optionally at a version).
    Package {
        /// Name.
        name: String,
        /// Version constraint.
        version: Option<(Op, String)>,
    },
    /// A hypervisor driver is available.
    Driver {
        /// Driver name.
        name: String,
    },
    /// The negation of a term.
    Not(Box<Term>),
}

const OPS: [(&str, Op); 6] = [
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("!=", Op::Ne),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
];

fn split_op(s: &str) -> Option<(&str, Op, &str)> {
    let (i, len, op) = OPS
        .iter()
        .filter_map(|(t, op)| s.find(t).map(|i| (i, t.len(), *op)))
        .min_by_key(|(i, len, _)| (*i, std::cmp::Reverse(*len)))?;
    Some((&s[..i], op, &s[i + len..]))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// Parses one term.
pub fn parse_term(t: &str) -> Result<Term> {
    if let Some(rest) = t.strip_prefix('!') {
        return Ok(Term::Not(Box::new(parse_term(rest)?)));
    }
    let (key, op, value) = split_op(t).ok_or_else(|| {
        Error::Invalid(format!(
            "search term {t:?}: expected KEY=VALUE, KEY>=VERSION, package=NAME, driver=NAME"
        ))
    })?;
    if !valid_key(key) || value.is_empty() {
        return Err(Error::Invalid(format!(
            "search term {t:?}: bad key or empty value"
        )));
    }
    match key {
        "package" | "pkg" => {
            if op != Op::Eq {
                return Err(Error::Invalid(format!(
                    "{t:?}: use package=NAME or package=NAME>=VERSION"
                )));
            }
            let (name, version) = match split_op(value) {
                Some((n, o, v)) if !n.is_empty() && !v.is_empty() => {
                    (n.to_string(), Some((o, v.to_string())))
                }
                Some(_) => {
                    return Err(Error::Invalid(format!(
                        "{t:?}: bad package version constraint"
                    )))
                }
                None => (value.to_string(), None),
            };
            Ok(Term::Package { name, version })
        }
        "driver" => {
            if op != Op::Eq {
                return Err(Error::Invalid(format!(
                    "{t:?}: use driver=NAME or !driver=NAME"
                )));
            }
            Ok(Term::Driver {
                name: value.to_string(),
            })
        }
        _ => Ok(Term::Attr {
            key: key.to_string(),
            op,
            values: value.split(',').map(String::from).collect(),
        }),
    }
}

/// Parses a whole query (empty = everything).
pub fn parse(q: &str) -> Result<Vec<Term>> {
    q.split_whitespace().map(parse_term).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_with_the_longest_operator() {
        let t = parse("distro=debian,ubuntu version>=12 !package=telnetd package=openssh-server>=1:9.2 driver=virtio_blk arch!=i386").unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(
            t[1],
            Term::Attr {
                key: "version".into(),
                op: Op::Ge,
                values: vec!["12".into()]
            }
        );
        assert_eq!(
            t[3],
            Term::Package {
                name: "openssh-server".into(),
                version: Some((Op::Ge, "1:9.2".into()))
            }
        );
        assert!(matches!(&t[2], Term::Not(b) if matches!(**b, Term::Package { .. })));
        assert_eq!(
            t[5],
            Term::Attr {
                key: "arch".into(),
                op: Op::Ne,
                values: vec!["i386".into()]
            }
        );
        assert!(parse("=x").is_err());
        assert!(parse("nothing").is_err());
        assert!(parse("package>=x").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
