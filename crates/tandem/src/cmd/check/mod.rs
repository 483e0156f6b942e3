//! `tandem check`: cross-layer lints over manifest files (the shell around
//! `tandem_manifest::check`, which holds the rules).

use std::process::ExitCode;

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
/// Exit code 0 when no finding is an error, 1 when one is, 2 when some input cannot be read or
/// is not valid (`tandem validate` shows why).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (directories are walked for *.yaml, *.yml, *.json);
    /// `-` reads standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
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
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&to_json(&findings))?),
        Format::Text => {
            for (i, f) in findings.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("{f}");
            }
            let count = |s| findings.iter().filter(|f| f.severity == s).count();
            eprintln!(
                "{} file(s), {} object(s): {} error(s), {} warning(s), {} info",
                report.files,
                report.objects,
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
