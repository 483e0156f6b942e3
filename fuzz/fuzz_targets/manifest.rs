//! The YAML loader and everything after it: any text as a manifest file goes through
//! `tandem validate` and `tandem check` without a panic (bad input gets findings).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let file = tandem_manifest::source::from_text("fuzz.yaml", text);
    let files = [file];
    let _ = tandem_manifest::validate(&files);
    let _ = tandem_manifest::check::check(&files);
});
