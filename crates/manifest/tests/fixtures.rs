//! The golden tests of `tandem validate`: every seed manifest is valid, and every deliberately
//! broken manifest gives exactly the lines its `.expected` file holds.

use std::path::{Path, PathBuf};
use tandem_manifest::{Severity, read_inputs, validate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// Runs from the repository root, so finding lines carry the same paths a user sees.
fn run(path: &Path) -> (tandem_manifest::Report, Vec<String>) {
    let rel = path
        .strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace("/crates/../", "/");
    std::env::set_current_dir(root()).unwrap();
    let files = read_inputs(&[rel]).unwrap();
    let report = validate(&files);
    let lines = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
        .map(ToString::to_string)
        .collect();
    (report, lines)
}

#[test]
fn every_seed_manifest_is_valid() {
    let (report, lines) = run(&root().join("examples/seeds"));
    assert_eq!(report.count(Severity::Error), 0, "{lines:#?}");
    assert!(
        report.objects >= 15,
        "seed objects found: {}",
        report.objects
    );
    assert!(!report.unreadable);
    // v1alpha5 objects are accepted with a warning that points at `tandem migrate`.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Provisioner default") && l.contains("tandem migrate")),
        "{lines:#?}"
    );
}

#[test]
fn every_broken_manifest_gives_its_expected_findings() {
    let mut checked = 0;
    for dir in ["examples/broken/api", "examples/broken/semantic"] {
        for yaml in files_in(&root().join(dir), "yaml") {
            let (report, lines) = run(&yaml);
            let expected_path = yaml.with_extension("expected");
            let expected = std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|_| panic!("{} has no .expected file", yaml.display()));
            let expected: Vec<&str> = expected.lines().collect();
            assert_eq!(lines, expected, "findings of {}", yaml.display());
            assert!(
                report.count(Severity::Error) > 0 || report.unreadable,
                "{} must be refused",
                yaml.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} broken fixtures");
}
