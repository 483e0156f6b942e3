//! Subcommands, one module each.

use clap::Subcommand;
use std::process::ExitCode;

/// Every subcommand of `tandem`.
#[derive(Debug, Subcommand)]
pub enum Command {}

impl Command {
    /// Runs the subcommand and returns the process exit code.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {}
    }
}
