//! The checked-in CRDs under `config/crds/` are exactly what the types generate.

use std::collections::BTreeSet;
use std::path::Path;

const REGENERATE: &str = "cargo run -p tandem -- crds --out config/crds";

#[test]
fn checked_in_crds_match_generated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crds");
    let mut expected = BTreeSet::new();
    for crd in tandem_api::crds::all() {
        let name = tandem_api::crds::file_name(&crd);
        let path = dir.join(&name);
        let generated = tandem_api::crds::to_yaml_document(&crd);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("config/crds/{name} is missing ({e}); regenerate with `{REGENERATE}`")
        });
        assert!(
            on_disk == generated,
            "config/crds/{name} differs from the generated CRD; regenerate with `{REGENERATE}` \
             and review the diff"
        );
        expected.insert(name);
    }
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .expect("config/crds is readable")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !expected.contains(n))
        .collect();
    assert!(
        stale.is_empty(),
        "config/crds has files no type generates: {stale:?}; delete them and regenerate with `{REGENERATE}`"
    );
}
