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

/// All seed manifests concatenated, as one realistic input to cut and mutate.
fn seed_text() -> String {
    let mut text = String::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("examples/seeds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        for f in files_in(&d, "yaml") {
            text.push_str("---\n");
            text.push_str(&std::fs::read_to_string(f).unwrap());
        }
    }
    text
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Truncated input never panics anywhere in validate (parse, schema, typed, rules, references).
    #[test]
    fn truncated_manifests_never_panic(cut in 0usize..20_000) {
        let text = seed_text();
        let cut = text.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
        let _ = validate(&[tandem_manifest::source::from_text("cut.yaml", &text[..cut])]);
    }

    /// Random edits (a byte replaced by YAML-significant characters) never panic either.
    #[test]
    fn mutated_manifests_never_panic(edits in proptest::collection::vec((0usize..20_000, 0usize..12), 1..8)) {
        let mut bytes = seed_text().into_bytes();
        const SPICE: &[u8] = b":-[]{}&*!|>'\"#";
        for (at, what) in edits {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = SPICE[what % SPICE.len()];
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = validate(&[tandem_manifest::source::from_text("mutated.yaml", &text)]);
    }
}
