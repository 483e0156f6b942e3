//! `tandem crds`: print or write the CustomResourceDefinitions Tandem serves.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate the CRDs (KEDA, Karpenter, the NodeClasses and the deprecated v1alpha5 kinds) from
/// Tandem's API types. Without `--out` they are printed to standard output as one
/// multi-document YAML stream, ready for `kubectl apply -f -`; with `--out DIR` each CRD is
/// written to `DIR/<group>_<plural>.yaml`, which is how `config/crds/` is regenerated.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write one file per CRD into (created if missing); files of CRDs Tandem
    /// no longer generates are left alone.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let crds = tandem_api::crds::all();
    match args.out {
        None => {
            let mut stdout = std::io::stdout().lock();
            let written = stdout.write_all(tandem_api::crds::to_yaml(&crds).as_bytes());
            match written {
                // `tandem crds | head` closing the pipe early is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing CRDs to standard output")?,
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(tandem_api::crds::file_name(crd));
                std::fs::write(&path, tandem_api::crds::to_yaml_document(crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!("wrote {} CRDs to {}", crds.len(), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
