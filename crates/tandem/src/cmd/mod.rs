//! Subcommands, one module each.

pub mod check;
pub mod crds;
pub mod migrate;
pub mod plan;
pub mod run;
pub mod serving;
pub mod simulate;
pub mod up;
pub mod validate;

use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

/// Every subcommand of `tandem`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers against a cluster: the node layer (Karpenter's job) with leader
    /// election, probes on :8081 and metrics on :8080, as upstream's deployments do.
    Run(Box<run::Args>),
    /// Start a local control plane (etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler) with Tandem's CRDs and keep it running until Ctrl-C.
    Up(up::Args),
    /// Check manifests beyond their schema and print one line per finding.
    Validate(validate::Args),
    /// Lint manifests across the two layers (timers, NodePool fit and limits, requests) and
    /// print each finding with the objects involved and a fix.
    Check(check::Args),
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
            Command::Run(args) => run::run(*args),
            Command::Up(args) => up::run(args),
            Command::Validate(args) => validate::run(args),
            Command::Check(args) => check::run(args),
            Command::Migrate(args) => migrate::run(args),
            Command::Plan(args) => plan::run(args),
            Command::Crds(args) => crds::run(args),
            Command::Simulate(args) => simulate::run(args),
        }
    }
}

/// Parses a duration flag: a whole number and one of ms, s, m, h (`15s`, `500ms`, `5m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. 15s, 500ms or 5m"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "unknown unit `{unit}` in `{text}`; use ms, s, m or h"
        )),
    }
}

/// The input files of a command that needs valid manifests (`plan`, `check`): read, validated,
/// and refused with exit code 2 — the errors printed — when unreadable or invalid, so every
/// such command refuses bad input the same way. The validation report comes along for summaries.
fn valid_inputs(
    inputs: &[String],
) -> Result<(Vec<tandem_manifest::SourceFile>, tandem_manifest::Report), ExitCode> {
    let files = tandem_manifest::read_inputs(inputs).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let report = tandem_manifest::validate(&files);
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == tandem_manifest::Severity::Error)
        .collect();
    if !errors.is_empty() || report.unreadable {
        for f in errors {
            eprintln!("{f}");
        }
        eprintln!("error: the input is not valid; `tandem validate` shows every finding");
        return Err(ExitCode::from(2));
    }
    Ok((files, report))
}
