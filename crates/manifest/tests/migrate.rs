//! `tandem migrate` on seed 001: the output equals the checked-in expected file, and that file
//! is a valid v1 NodePool + EC2NodeClass for `tandem validate` (the control-plane tests also
//! dry-run it against the real API server).

use std::path::{Path, PathBuf};
use tandem_manifest::migrate::{NodeIdentity, migrate, to_yaml};
use tandem_manifest::{Severity, read_inputs, validate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn seed_001_migrates_to_the_expected_v1_objects() {
    let seed = root().join("examples/seeds/001_51459dee51fdb46a");
    let files = read_inputs(&[seed.to_string_lossy().into_owned()]).unwrap();
    // Seed 001 installs Karpenter with settings.aws.defaultInstanceProfile=KarpenterInstanceNodeRole.
    let m = migrate(
        &files,
        Some(&NodeIdentity::InstanceProfile(
            "KarpenterInstanceNodeRole".into(),
        )),
    );
    assert!(!m.has_errors(), "{:#?}", m.findings);
    let got = to_yaml(&m.objects);
    let expected_path = root().join("examples/migrate/seed-001/expected.yaml");
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        got,
        expected,
        "migrated seed 001 differs from {}; if the change is intended, regenerate with \
         `cargo run -p tandem -- migrate examples/seeds/001_51459dee51fdb46a --instance-profile KarpenterInstanceNodeRole -o examples/migrate/seed-001/expected.yaml`",
        expected_path.display()
    );
}

#[test]
fn the_expected_output_validates() {
    let path = root().join("examples/migrate/seed-001/expected.yaml");
    let files = read_inputs(&[path.to_string_lossy().into_owned()]).unwrap();
    let report = validate(&files);
    let errors: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report.objects, 2);
}
