//! diskfab customization: virt-customize-style operations on a guest filesystem without a
//! helper VM, and `stamp`, which makes thousands of customized clones by analysing the
//! customization once and replaying its block-level writes per clone (seed 000's method).
//!
//! Operations are *planned* into path-level [`staged::Action`]s against a read-only view of
//! the guest ([`staged::Staged`]), then applied to a writable filesystem. Planning never writes,
//! so `--dry-run` is exact and stamp can compute each instance's changes in memory.
#![deny(missing_docs)]

pub mod accounts;
pub mod crypt;
pub mod export;
pub mod files;
pub mod guest;
pub mod instances;
pub mod labels;
pub mod network;
pub mod ops;
pub mod packages;
pub mod planfile;
pub mod record;
pub mod replay;
pub mod runcmd;
pub mod selinux;
pub mod spec;
pub mod staged;
pub mod system;

use crypt::Crypto;
use diskfab_fs::{Filesystem, Timespec};
use diskfab_storage::{Error, Result};
use guest::{Guest, NetStyle};
use ops::Op;
use serde::Serialize;
use staged::{Action, Staged};
use std::collections::BTreeMap;

/// Largest host file read by `--upload`, `--copy-in` or a `file:` selector.
pub const MAX_HOST_FILE: u64 = 4 << 30;

/// Which guest programs get the host's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetPolicy {
    /// Package operations that download (`--install`, `--update`, `--uninstall`) get the
    /// host's network; `--run-command` and `--install-file` get none (the default).
    #[default]
    PackagesOnly,
    /// `--network`: every command gets the host's network.
    Always,
    /// `--no-network`: nothing does; operations that must download are refused.
    Never,
}

/// Settings shared by all operations of one run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--password-crypto`; default: what the guest uses.
    pub crypto: Option<Crypto>,
    /// `--network-format`; default: detected.
    pub net_style: Option<NetStyle>,
    /// `--seed`: derive salts and random passwords from this string (reproducible output).
    pub seed: Option<String>,
    /// Timestamp for every change; default: now.
    pub clock: Option<Timespec>,
    /// `--network` / `--no-network`.
    pub network: NetPolicy,
}

/// Per-run state the operations use.
pub struct Ctx {
    /// Password hashing override.
    pub crypto_override: Option<Crypto>,
    /// Network style override.
    pub net_style: Option<NetStyle>,
    seed: Option<String>,
    instance: String,
    counter: u64,
    /// The run's clock.
    pub clock: Timespec,
    /// Generated secrets (random passwords) by user.
    pub secrets: BTreeMap<String, String>,
    guest: Option<Guest>,
}

impl Ctx {
    /// A context for `instance` (its name feeds seeded salts).
    pub fn new(s: &Settings, instance: &str) -> Ctx {
        Ctx {
            crypto_override: s.crypto,
            net_style: s.net_style,
            seed: s.seed.clone(),
            instance: instance.to_string(),
            counter: 0,
            clock: s.clock.unwrap_or_else(staged::real_now),
            secrets: BTreeMap::new(),
            guest: None,
        }
    }

    /// The guest's facts (read once).
    pub fn guest(&mut self, st: &mut Staged) -> Result<Guest> {
        if self.guest.is_none() {
            self.guest = Some(guest::detect(st)?);
        }
        self.guest
            .clone()
            .ok_or_else(|| Error::Failed("guest detection".into()))
    }

    /// Uses facts detected earlier (stamp detects once for all instances).
    pub fn set_guest(&mut self, g: Guest) {
        self.guest = Some(g);
    }

    /// The password hashing to use.
    pub fn crypto(&mut self, st: &mut Staged) -> Result<Crypto> {
        match self.crypto_override {
            Some(c) => Ok(c),
            None => Ok(self.guest(st)?.crypto),
        }
    }

    /// 16 bytes of entropy: random, or derived from the seed, instance and `label`.
    pub fn entropy(&mut self, label: &str) -> Result<[u8; 16]> {
        self.counter += 1;
        let mut out = [0u8; 16];
        match &self.seed {
            Some(seed) => {
                let mut h = blake3::Hasher::new_derive_key("diskfab customize seed v1");
                for part in [seed.as_str(), &self.instance, label] {
                    h.update(&(part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
                h.update(&self.counter.to_le_bytes());
                out.copy_from_slice(&h.finalize().as_bytes()[..16]);
            }
            None => getrandom::fill(&mut out)
                .map_err(|e| Error::Failed(format!("the system random generator failed: {e}")))?,
        }
        Ok(out)
    }

    /// Reads a host file named by an operation.
    pub fn host_read(&mut self, p: &str) -> Result<Vec<u8>> {
        let m = std::fs::metadata(p).map_err(|e| Error::io(format!("host file {p}"), e))?;
        if m.len() > MAX_HOST_FILE {
            return Err(Error::Unsupported(format!(
                "host file {p} is larger than 4 GiB"
            )));
        }
        std::fs::read(p).map_err(|e| Error::io(format!("host file {p}"), e))
    }
}

/// Plans `ops` (none may be a runner operation, see [`packages::RUNNER_OPS`]) against `fs`, returning the actions in order.
pub fn plan(fs: &mut dyn Filesystem, ops: &[Op], ctx: &mut Ctx) -> Result<Vec<Action>> {
    let mut st = Staged::new(fs);
    for op in ops {
        ops::plan(op, &mut st, ctx)?;
    }
    Ok(st.into_actions())
}

/// What `customize` did.
#[derive(Debug, Clone, Serialize)]
pub struct CustomizeReport {
    /// The changes, in order (file contents shown as sizes).
    pub actions: Vec<Action>,
    /// Generated random passwords, by user.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub random_passwords: BTreeMap<String, String>,
    /// Output of `--run-command`s and package operations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command_output: Vec<String>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// True for operations performed by running guest programs in the sandbox.
pub fn is_runner(op: &Op) -> bool {
    packages::RUNNER_OPS.contains(&op.name.as_str())
}

/// Applies `ops` in order to a writable `fs` (planning each stretch between runner operations
/// first, so a bad argument in it writes nothing; runner operations' arguments and the network
/// policy are checked before anything is written). With `dry_run`, only plans.
pub fn customize(
    fs: &mut dyn Filesystem,
    ops: &[Op],
    settings: &Settings,
    dry_run: bool,
) -> Result<CustomizeReport> {
    for op in ops.iter().filter(|o| is_runner(o)) {
        packages::validate(op, settings.network == NetPolicy::Never)?;
    }
    let mut ctx = Ctx::new(settings, "");
    let pinned = settings.clock.is_some().then_some(ctx.clock);
    fs.set_clock(pinned);
    let mut report = CustomizeReport {
        actions: Vec::new(),
        random_passwords: BTreeMap::new(),
        command_output: Vec::new(),
        dry_run,
    };
    for chunk in ops.split_inclusive(is_runner) {
        let (plain, cmd) = match chunk.split_last() {
            Some((last, rest)) if is_runner(last) => (rest, Some(last)),
            _ => (chunk, None),
        };
        let actions = plan(fs, plain, &mut ctx)?;
        if !dry_run {
            staged::apply(fs, &actions, Some(ctx.clock))?;
        }
        report.actions.extend(actions);
        if let Some(c) = cmd {
            if dry_run {
                report
                    .command_output
                    .push(format!("(dry run: would run --{} {:?})", c.name, c.arg));
                continue;
            }
            let (out, actions) = runcmd::run_op(fs, c, settings.network)?;
            staged::apply(fs, &actions, Some(ctx.clock))?;
            report.command_output.push(out);
            report.actions.extend(actions);
        }
    }
    if !dry_run {
        fs.sync()?;
    }
    report.random_passwords = ctx.secrets;
    Ok(report)
}
