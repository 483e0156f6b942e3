//! `tandem migrate`: v1alpha5 Provisioner + v1alpha1 AWSNodeTemplate to v1 NodePool + EC2NodeClass.

use std::process::ExitCode;
use tandem_manifest::migrate::{NodeIdentity, migrate, to_yaml};
use tandem_manifest::read_inputs;

/// Convert karpenter.sh/v1alpha5 Provisioners and karpenter.k8s.aws/v1alpha1 AWSNodeTemplates
/// to karpenter.sh/v1 NodePools and karpenter.k8s.aws/v1 EC2NodeClasses. Prints the new objects
/// as YAML on stdout and a line on stderr for every field with no v1 equivalent.
///
/// Behaviour is kept, not only shape: without ttlSecondsUntilExpired the NodePool gets
/// `expireAfter: Never`, and without ttlSecondsAfterEmpty/consolidation `consolidateAfter: Never`.
///
/// Exit code 0 when everything converted, 1 when some field could not be, 2 on unreadable input.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories holding the v1alpha5/v1alpha1 objects; `-` reads standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    /// The node IAM role for the EC2NodeClasses (v1 creates the instance profile for it).
    #[arg(long, conflicts_with = "instance_profile")]
    pub role: Option<String>,
    /// The existing instance profile v1alpha5 used (its settings.aws.defaultInstanceProfile).
    #[arg(long)]
    pub instance_profile: Option<String>,
    /// Write the YAML to this file instead of stdout.
    #[arg(long, short)]
    pub out: Option<std::path::PathBuf>,
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
    let identity = match (args.role, args.instance_profile) {
        (Some(r), _) => Some(NodeIdentity::Role(r)),
        (None, Some(p)) => Some(NodeIdentity::InstanceProfile(p)),
        (None, None) => None,
    };
    let m = migrate(&files, identity.as_ref());
    for f in &m.findings {
        eprintln!("{f}");
    }
    if m.objects.is_empty() {
        eprintln!(
            "nothing to migrate: no karpenter.sh/v1alpha5 Provisioner or karpenter.k8s.aws/v1alpha1 AWSNodeTemplate in the input"
        );
    }
    let yaml = to_yaml(&m.objects);
    match args.out {
        Some(path) => std::fs::write(&path, yaml)?,
        None => print!("{yaml}"),
    }
    Ok(ExitCode::from(if m.has_errors() { 1 } else { 0 }))
}
