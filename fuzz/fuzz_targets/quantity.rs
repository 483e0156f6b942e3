//! Kubernetes quantities (`100m`, `1.5Gi`, `2e3`): parsing never panics, and whatever parses
//! prints back to a text that parses to the same amount.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_model::quantity::Quantity;

fuzz_target!(|text: &str| {
    if let Ok(q) = text.parse::<Quantity>() {
        let _ = (q.as_milli(), q.as_value(), q.as_nanos());
        let again: Quantity = q.to_string().parse().expect("a printed quantity parses");
        assert_eq!(again.as_nanos(), q.as_nanos(), "{text:?} -> {q}");
    }
});
