//! `c360 config show`: the effective configuration, with where each value came from.

use anyhow::Result;
use clap::Subcommand;

use super::Origin;
use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print every setting's value (secrets as ***) and its source: flag, env, file or default.
    Show,
}

pub fn run(s: &Settings, cmd: ConfigCmd, o: &Origin) -> Result<()> {
    match cmd {
        ConfigCmd::Show => {
            print!(
                "{}",
                crate::config::show(s, &o.matches, o.file.as_deref(), &o.from_file)
            );
            Ok(())
        }
    }
}
