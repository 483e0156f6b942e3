//! `tandem check`: cross-layer lints over manifest files or a live cluster (the shell around
//! `tandem_manifest::check`, which holds the rules).

mod live;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use serde_json::{Value, json};
use tandem_manifest::check::{self, CheckFinding, Severity as CheckSeverity};

/// Lint KEDA, Karpenter and workload manifests across the two layers: a NodePool's
/// `consolidateAfter` against a ScaledObject's cooldown and HPA window
/// (`cooldown-vs-consolidate-after`), `maxReplicaCount` × requests against NodePool limits
/// (`replicas-exceed-nodepool-limits`), pods no NodePool admits (`no-matching-nodepool`) or no
/// allowed instance type holds (`unfittable-pod`), scaled targets without requests
/// (`missing-requests`) and served targets scaled to zero (`scale-to-zero-without-headroom`).
/// Each finding names every object involved (file:line) and a concrete fix.
///
/// With `--kubeconfig`, checks what the cluster holds instead of files; with `--prometheus`
/// too, also compares each NodePool's `consolidateAfter` with the gaps between the events its
/// pods served (`consolidate-after-vs-event-period`, from `keda_scaler_active` history).
///
/// Exit code 0 when no finding is an error, 1 when one is, 2 when some input cannot be read or
/// is not valid (`tandem validate` shows why).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (directories are walked for *.yaml, *.yml, *.json);
    /// `-` reads standard input.
    #[arg(
        required_unless_present = "kubeconfig",
        conflicts_with = "kubeconfig",
        value_name = "FILE|DIR|-"
    )]
    pub inputs: Vec<String>,
    /// Check the cluster this kubeconfig reaches (NodePools, ScaledObjects, Deployments,
    /// StatefulSets, Services) instead of files.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The Prometheus that scrapes the pod layer's metrics (KEDA's or Tandem's
    /// `keda_scaler_active`), for the rules that need history.
    #[arg(long, value_name = "URL", requires = "kubeconfig")]
    pub prometheus: Option<String>,
    /// How much history to read from Prometheus.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = live::parse_history)]
    pub history: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per finding, then a summary on standard error.
    Text,
    /// A JSON list of findings (`rule`, `severity`, `objects`, `message`, `fix`).
    Json,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(kubeconfig) = &args.kubeconfig {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?;
        return runtime.block_on(run_live(&args, kubeconfig));
    }
    let (files, report) = match super::valid_inputs(&args.inputs) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let findings = match check::check(&files) {
        Ok(f) => f,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    print_findings(
        &findings,
        args.format,
        &format!("{} file(s), {} object(s)", report.files, report.objects),
    )
}

/// `--kubeconfig`: the cluster's objects, and with `--prometheus` their history.
async fn run_live(args: &Args, kubeconfig: &PathBuf) -> anyhow::Result<ExitCode> {
    let client = super::run::client(Some(kubeconfig)).await?;
    let listed = live::objects(&client).await?;
    // An object that does not convert is named and left out: the others are still checked.
    let files: Vec<_> = listed
        .into_iter()
        .filter(|f| match check::Inputs::read(std::slice::from_ref(f)) {
            Ok(_) => true,
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                false
            }
        })
        .collect();
    let inputs = match check::Inputs::read(&files) {
        Ok(i) => i,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let findings = match &args.prometheus {
        Some(url) => {
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let activity = live::activity(url, args.history, now_s).await?;
            check::check_live(&inputs, &activity)
        }
        None => {
            eprintln!(
                "note: consolidate-after-vs-event-period needs the metrics history: add \
                 --prometheus URL"
            );
            check::check_inputs(&inputs)
        }
    };
    print_findings(
        &findings,
        args.format,
        &format!("{} object(s) from the cluster", files.len()),
    )
}

/// Prints the findings; exit code 1 when one is an error.
fn print_findings(
    findings: &[CheckFinding],
    format: Format,
    what: &str,
) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&to_json(findings))?),
        Format::Text => {
            for (i, f) in findings.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("{f}");
            }
            let count = |s| findings.iter().filter(|f| f.severity == s).count();
            eprintln!(
                "{what}: {} error(s), {} warning(s), {} info",
                count(CheckSeverity::Error),
                count(CheckSeverity::Warning),
                count(CheckSeverity::Info)
            );
        }
    }
    let failed = findings.iter().any(|f| f.severity == CheckSeverity::Error);
    Ok(ExitCode::from(u8::from(failed)))
}

fn to_json(findings: &[CheckFinding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "rule": f.rule.id(),
                    "severity": f.severity.as_str(),
                    "objects": f.objects.iter().map(|o| json!({
                        "kind": o.kind,
                        "namespace": o.namespace,
                        "name": o.name,
                        "file": o.file,
                        "line": o.line,
                    })).collect::<Vec<_>>(),
                    "message": f.message,
                    "fix": f.fix,
                })
            })
            .collect(),
    )
}
