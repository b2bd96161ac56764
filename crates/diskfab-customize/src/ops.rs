//! The customization operations, defined once: name, argument syntax and help (the CLI, the
//! `--spec` TOML file and the docs are all derived from [`OPS`]), `{{var}}` templates, and the
//! dispatcher that plans one operation into a [`Staged`] change set.

use crate::staged::Staged;
use crate::{accounts, files, network, system, Ctx};
use diskfab_storage::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// One operation's definition.
#[derive(Debug, Clone, Copy)]
pub struct OpDef {
    /// Flag name without dashes, e.g. `hostname`.
    pub name: &'static str,
    /// Argument syntax, e.g. `FILE:CONTENT`; empty for a flag without argument.
    pub value: &'static str,
    /// One-line help.
    pub help: &'static str,
}

/// Every operation, in the order help lists them (virt-customize's names and syntax).
pub const OPS: &[OpDef] = &[
    OpDef { name: "hostname", value: "HOSTNAME", help: "Set the hostname (/etc/hostname, /etc/hosts and the distribution's own files)" },
    OpDef { name: "root-password", value: "SELECTOR", help: "Set root's password: password:P, file:F, random, disabled, locked, locked:SELECTOR" },
    OpDef { name: "password", value: "USER:SELECTOR", help: "Set a user's password (selectors as for --root-password)" },
    OpDef { name: "ssh-inject", value: "USER[:string:KEY|:file:F]", help: "Add an SSH public key to USER's ~/.ssh/authorized_keys (default: the host user's ~/.ssh/id_*.pub)" },
    OpDef { name: "user-add", value: "NAME[:uid=N,groups=G,...,shell=S,home=H]", help: "Add a user (passwd, shadow, group, gshadow; home from /etc/skel)" },
    OpDef { name: "write", value: "FILE:CONTENT", help: "Write CONTENT to FILE (taken literally, no newline added)" },
    OpDef { name: "append-line", value: "FILE:LINE", help: "Append LINE to FILE (adding a missing final newline first; creates FILE)" },
    OpDef { name: "upload", value: "HOSTFILE:DEST", help: "Copy a host file to DEST (a file, or into a directory)" },
    OpDef { name: "copy-in", value: "HOSTPATH:DIR", help: "Copy a host file or directory tree into guest directory DIR" },
    OpDef { name: "mkdir", value: "DIR", help: "Create a directory and its parents" },
    OpDef { name: "delete", value: "PATH", help: "Delete a file or directory tree" },
    OpDef { name: "move", value: "SRC:DEST", help: "Move or rename a path" },
    OpDef { name: "link", value: "TARGET:LINK[:LINK...]", help: "Create symbolic links LINK pointing at TARGET" },
    OpDef { name: "chmod", value: "PERMS:FILE", help: "Change permissions (octal)" },
    OpDef { name: "chown", value: "UID.GID:FILE", help: "Change owner (numeric, or names from the guest's passwd/group)" },
    OpDef { name: "touch", value: "FILE", help: "Create an empty file, or set its modification time" },
    OpDef { name: "truncate", value: "FILE", help: "Truncate a file to zero length" },
    OpDef { name: "timezone", value: "TZ", help: "Set the timezone, e.g. Europe/Paris (/etc/localtime, /etc/timezone)" },
    OpDef { name: "network-static", value: "IFACE:ADDR/PREFIX:GW[:DNS,...]", help: "Static IPv4/IPv6 address in the guest's own format (netplan, ifupdown, NetworkManager, networkd, ifcfg)" },
    OpDef { name: "firstboot-command", value: "CMD", help: "Run CMD once, as root, when the guest first boots (systemd unit or SysV script)" },
    OpDef { name: "run-command", value: "CMD", help: "Run CMD now with the guest's root as / in a sandbox (namespaces, seccomp; no network unless --network; guest arch must match the host)" },
    OpDef { name: "install", value: "PKG,...", help: "Install packages with the guest's package manager (apt, dnf, yum, zypper, apk, pacman) in the sandbox, with the host's network" },
    OpDef { name: "uninstall", value: "PKG,...", help: "Remove packages with the guest's package manager in the sandbox" },
    OpDef { name: "update", value: "", help: "Upgrade every package with the guest's package manager in the sandbox, with the host's network" },
    OpDef { name: "install-file", value: "PATH.deb|PATH.rpm,...", help: "Install host package files offline (dpkg -i / rpm -i in the sandbox, no network)" },
    OpDef { name: "selinux-relabel", value: "", help: "Make the guest relabel every file on its next boot (creates /.autorelabel). Without it, files diskfab creates or replaces already get the label the guest's SELinux policy gives their path" },
    OpDef { name: "reset", value: "OPS", help: "Reset machine state, virt-sysprep names, comma-separated: machine-id, ssh-hostkeys, logfiles, bash-history, udev-persistent-net, dhcp-client-state, tmp-files, package-manager-cache, or all" },
];

/// One operation with its (possibly templated) argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    /// The operation name from [`OPS`].
    pub name: String,
    /// Its argument.
    pub arg: String,
}

impl Op {
    /// Validates the name.
    pub fn new(name: &str, arg: &str) -> Result<Op> {
        if !OPS.iter().any(|d| d.name == name) {
            return Err(Error::Invalid(format!(
                "unknown operation --{name} (see `diskfab customize --help`)"
            )));
        }
        Ok(Op {
            name: name.to_string(),
            arg: arg.to_string(),
        })
    }

    /// True when the argument uses `{{var}}` templates.
    pub fn is_templated(&self) -> bool {
        self.arg.contains("{{")
    }

    /// True when every application gives a different result even with the same argument
    /// (random passwords): such operations are per instance in `stamp`.
    pub fn is_random(&self) -> bool {
        (self.name == "root-password" || self.name == "password")
            && self.arg.rsplit(':').next() == Some("random")
    }

    /// The variables the argument uses.
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.arg.as_str();
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else { break };
            out.push(after[..j].trim().to_string());
            rest = &after[j + 2..];
        }
        out
    }

    /// The operation with `{{var}}` replaced from `vars`.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<Op> {
        Ok(Op {
            name: self.name.clone(),
            arg: render(&self.arg, vars)?,
        })
    }
}

/// Replaces every `{{var}}` in `s`; an unknown variable or an unclosed `{{` is an error.
pub fn render(s: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| Error::Invalid(format!("unclosed '{{{{' in {s:?}")))?;
        let key = after[..j].trim();
        let v = vars.get(key).ok_or_else(|| {
            Error::Invalid(format!(
                "template variable {{{{{key}}}}} is not a column of the instances file"
            ))
        })?;
        out.push_str(v);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits `A:B` at the first colon.
pub fn two<'a>(op: &str, arg: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    arg.split_once(':')
        .ok_or_else(|| Error::Invalid(format!("--{op} {arg:?}: expected {what}")))
}

/// Plans one (rendered) operation into `st`.
pub fn plan(op: &Op, st: &mut Staged, ctx: &mut Ctx) -> Result<()> {
    let a = op.arg.as_str();
    let r = match op.name.as_str() {
        "hostname" => system::hostname(st, ctx, a),
        "root-password" => accounts::set_password(st, ctx, "root", a),
        "password" => {
            let (u, sel) = two("password", a, "USER:SELECTOR")?;
            accounts::set_password(st, ctx, u, sel)
        }
        "ssh-inject" => accounts::ssh_inject(st, ctx, a),
        "user-add" => accounts::user_add(st, ctx, a),
        "write" => files::write(st, a),
        "append-line" => files::append_line(st, a),
        "upload" => files::upload(st, ctx, a),
        "copy-in" => files::copy_in(st, ctx, a),
        "mkdir" => st.mkdir_p(a, crate::staged::Meta::root(0o755)),
        "delete" => st.delete(a).map(|_| ()),
        "move" => {
            let (s, d) = two("move", a, "SRC:DEST")?;
            st.rename(s, d)
        }
        "link" => files::link(st, a),
        "chmod" => files::chmod(st, a),
        "chown" => files::chown(st, a),
        "touch" => files::touch(st, a),
        "truncate" => st.write(a, Vec::new(), None),
        "timezone" => system::timezone(st, a),
        "network-static" => network::network_static(st, ctx, a),
        "firstboot-command" => system::firstboot(st, ctx, a),
        "run-command" | "install" | "uninstall" | "update" | "install-file" => {
            Err(Error::Unsupported(format!(
                "--{} is performed by the runner, not planned",
                op.name
            )))
        }
        "reset" => system::reset(st, a),
        "selinux-relabel" => st.write(
            "/.autorelabel",
            Vec::new(),
            Some(crate::staged::Meta::root(0o644)),
        ),
        other => Err(Error::Invalid(format!("unknown operation --{other}"))),
    };
    let shown = if op.name.ends_with("password") {
        "(argument hidden)".to_string()
    } else {
        short(a)
    };
    r.map_err(|e| e.context(format!("--{} {shown}", op.name)))
}

fn short(a: &str) -> String {
    if a.chars().count() > 60 {
        format!("{}…", a.chars().take(60).collect::<String>())
    } else {
        a.to_string()
    }
}
