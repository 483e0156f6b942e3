//! Node selector requirements as a NodePool or a pod spells them (JSON, any operator, any
//! values): normalising, intersecting and matching never panic, and a set that admits
//! something is compatible with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_model::requirements::{Requirements, SelectorRequirement};

fuzz_target!(|data: &[u8]| {
    let Ok((a, b)) =
        serde_json::from_slice::<(Vec<SelectorRequirement>, Vec<SelectorRequirement>)>(data)
    else {
        return;
    };
    let (Ok(a), Ok(b)) = (Requirements::from_api(&a), Requirements::from_api(&b)) else {
        return;
    };
    let both = a.intersect(&b);
    let _ = (a.intersects(&b), a.compatible(&b), both.to_string());
    let _ = both.compatible(&a);
});
