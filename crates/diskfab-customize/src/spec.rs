//! `--spec FILE`: the same operations and settings as the command line, in TOML.
//!
//! ```toml
//! password-crypto = "sha512"          # optional settings
//! network-format = "ifupdown"
//! name-template = "{{name}}"
//! ops = [
//!   { hostname = "{{name}}" },
//!   { root-password = "password:{{password}}" },
//!   { write = "/etc/motd:Managed by diskfab" },
//! ]
//! ```

use crate::ops::Op;
use diskfab_storage::{Error, Result};

/// A parsed spec file.
#[derive(Debug, Default, Clone)]
pub struct Spec {
    /// Operations, in order.
    pub ops: Vec<Op>,
    /// `password-crypto`.
    pub password_crypto: Option<String>,
    /// `network-format`.
    pub network_format: Option<String>,
    /// `name-template` (stamp).
    pub name_template: Option<String>,
    /// `seed`.
    pub seed: Option<String>,
}

/// Parses a spec file's text.
pub fn parse(text: &str) -> Result<Spec> {
    let v: toml::Table = text
        .parse()
        .map_err(|e| Error::Invalid(format!("spec file: {e}")))?;
    let mut s = Spec::default();
    for (k, val) in v {
        let str_of = |what: &str| -> Result<String> {
            val.as_str()
                .map(String::from)
                .ok_or_else(|| Error::Invalid(format!("spec file: {what} must be a string")))
        };
        match k.as_str() {
            "password-crypto" => s.password_crypto = Some(str_of(&k)?),
            "network-format" => s.network_format = Some(str_of(&k)?),
            "name-template" => s.name_template = Some(str_of(&k)?),
            "seed" => s.seed = Some(str_of(&k)?),
            "ops" => {
                let arr = val
                    .as_array()
                    .ok_or_else(|| Error::Invalid("spec file: ops must be an array".into()))?;
                for (i, item) in arr.iter().enumerate() {
                    let t = item.as_table().filter(|t| t.len() == 1).ok_or_else(|| {
                        Error::Invalid(format!(
                            "spec file: ops[{i}] must be one `{{ operation = \"argument\" }}`"
                        ))
                    })?;
                    for (name, arg) in t {
                        let arg = arg.as_str().ok_or_else(|| {
                            Error::Invalid(format!("spec file: ops[{i}].{name} must be a string"))
                        })?;
                        s.ops.push(Op::new(name, arg)?);
                    }
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "spec file: unknown key {other:?} (ops, password-crypto, network-format, name-template, seed)"
                )))
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_keeps_operation_order() {
        let s = parse(
            "password-crypto = \"md5\"\nops = [ { hostname = \"{{name}}\" }, { write = \"/etc/motd:hi\" } ]\n",
        )
        .unwrap();
        assert_eq!(s.ops.len(), 2);
        assert_eq!(s.ops[0].name, "hostname");
        assert_eq!(s.ops[1].arg, "/etc/motd:hi");
        assert_eq!(s.password_crypto.as_deref(), Some("md5"));
        assert!(parse("ops = [ { nonsense = \"x\" } ]").is_err());
        assert!(parse("colour = \"blue\"").is_err());
    }
}
