//! The interruption queue's messages (EventBridge events on SQS, which anyone allowed to send
//! to the queue can write): parsing any body never panics, and a notice always names the
//! instances it is about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_cloud::eventbridge::{Parsed, parse};

fuzz_target!(|body: &str| {
    if let Parsed::Notice { instance_ids, .. } = parse(body) {
        assert!(!instance_ids.is_empty(), "a notice about no instance");
    }
});
