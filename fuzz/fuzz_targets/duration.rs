//! Go durations (`consolidateAfter: 1m30s`, `expireAfter`, `--history`): parsing never
//! panics or overflows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = tandem_api::duration::parse_go_duration(text);
});
