//! `tandem validate`: check manifests before they reach a cluster.

use std::process::ExitCode;
use tandem_manifest::{Severity, read_inputs, validate};

/// Check KEDA, Karpenter and workload manifests beyond their schema: quantities, durations,
/// cron and time zones, requirement operators, trigger metadata, and references between the
/// objects of the input. Prints one line per finding:
/// `path:line: Kind namespace/name: field.path: what is wrong (and what would be right)`.
///
/// Exit code 0 when valid (warnings allowed), 1 when some object is invalid, 2 when some input
/// cannot be read or is not YAML.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (directories are walked for *.yaml, *.yml, *.json);
    /// `-` reads standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    /// Also print notes (skipped documents, repeated definitions).
    #[arg(long)]
    pub notes: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = match read_inputs(&args.inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = validate(&files);
    for f in &report.findings {
        let shown = match f.severity {
            Severity::Error => true,
            Severity::Warning => !args.quiet,
            Severity::Note => args.notes && !args.quiet,
        };
        if shown {
            println!("{f}");
        }
    }
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    if !args.quiet {
        eprintln!(
            "{} file(s), {} object(s): {errors} error(s), {warnings} warning(s)",
            report.files, report.objects
        );
    }
    Ok(ExitCode::from(if report.unreadable {
        2
    } else if errors > 0 {
        1
    } else {
        0
    }))
}
