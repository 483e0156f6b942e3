//! `advanced.scalingModifiers.formula`: parsing any text and evaluating what parses, with
//! trigger values that include zero, negatives, huge numbers and NaN, never panics.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tandem_podscaler::modifiers::Formula;

fuzz_target!(|text: &str| {
    if let Ok(formula) = Formula::parse(text) {
        for (a, b) in [
            (1.0, 2.0),
            (0.0, -0.0),
            (-3.5, f64::MAX),
            (f64::NAN, f64::INFINITY),
        ] {
            let env = BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]);
            let _ = formula.eval(&env);
        }
    }
});
