//! The customization operation flags, generated from `diskfab_customize::ops::OPS` (defined
//! once there), collected in the order the user gave them.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use diskfab_core::customize::ops::OPS;

/// Operations in command-line order, as (name, argument).
#[derive(Debug, Clone, Default)]
pub struct OpArgs {
    /// The operations.
    pub ops: Vec<(String, String)>,
}

impl FromArgMatches for OpArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut v: Vec<(usize, String, String)> = Vec::new();
        for d in OPS {
            if d.value.is_empty() {
                // A flag without argument (--update): its positions only (a count has an
                // implicit default, which must not count as given).
                if m.value_source(d.name) != Some(clap::parser::ValueSource::CommandLine) {
                    continue;
                }
                if let Some(idx) = m.indices_of(d.name) {
                    v.extend(idx.map(|i| (i, d.name.to_string(), String::new())));
                }
                continue;
            }
            if let (Some(idx), Some(vals)) = (m.indices_of(d.name), m.get_many::<String>(d.name)) {
                v.extend(
                    idx.zip(vals)
                        .map(|(i, a)| (i, d.name.to_string(), a.clone())),
                );
            }
        }
        v.sort_by_key(|x| x.0);
        Ok(OpArgs {
            ops: v.into_iter().map(|(_, n, a)| (n, a)).collect(),
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for OpArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for d in OPS {
            if d.value.is_empty() {
                cmd = cmd.arg(
                    Arg::new(d.name)
                        .long(d.name)
                        .help(d.help)
                        .action(ArgAction::Count)
                        .help_heading("Operations (applied in the order given)"),
                );
                continue;
            }
            cmd = cmd.arg(
                Arg::new(d.name)
                    .long(d.name)
                    .value_name(d.value)
                    .help(d.help)
                    .action(ArgAction::Append)
                    .allow_hyphen_values(true)
                    .help_heading("Operations (applied in the order given)"),
            );
        }
        cmd
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
