//! Subcommands, one module each.

pub mod crds;
pub mod migrate;
pub mod plan;
pub mod simulate;
pub mod up;
pub mod validate;

use clap::Subcommand;
use std::process::ExitCode;

/// Every subcommand of `tandem`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a local control plane (etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler) with Tandem's CRDs and keep it running until Ctrl-C.
    Up(up::Args),
    /// Check manifests beyond their schema and print one line per finding.
    Validate(validate::Args),
    /// Convert v1alpha5 Provisioners and v1alpha1 AWSNodeTemplates to v1 NodePools and EC2NodeClasses.
    Migrate(migrate::Args),
    /// Show what both layers would decide for the given manifests and metric values.
    Plan(plan::Args),
    /// Print the CRDs Tandem serves, or write them one file each with --out.
    Crds(crds::Args),
    /// Simulate a scenario (manifests + workload) on a virtual clock: pods, nodes, pending
    /// time and cost, as a table, JSON or an HTML report.
    Simulate(simulate::Args),
}

impl Command {
    /// Runs the subcommand and returns the process exit code.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Up(args) => up::run(args),
            Command::Validate(args) => validate::run(args),
            Command::Migrate(args) => migrate::run(args),
            Command::Plan(args) => plan::run(args),
            Command::Crds(args) => crds::run(args),
            Command::Simulate(args) => simulate::run(args),
        }
    }
}
