//! The provisioning batch window (upstream `pkg/controllers/provisioning/batcher.go`): a batch
//! opens when a pod becomes pending and closes after `idle` without a new one, or after `max`
//! at the latest. With `close_when_settled` it also closes as soon as the state says no pod of
//! the pending pods' ReplicaSets is still coming (`tandem_state::settled`). Pure: time comes in
//! as an argument.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Batch timings; defaults are upstream's BATCH_IDLE_DURATION / BATCH_MAX_DURATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Close after this long without a new pending pod (1 s).
    pub idle: Duration,
    /// Close after this long at the latest (10 s).
    pub max: Duration,
    /// A pod still pending this long after its batch counts as new again, so pods whose claim
    /// failed (capacity, limits freed) are planned again (10 s).
    pub retry: Duration,
    /// Close at once when the pending pods are settled (off: upstream's timers only).
    pub close_when_settled: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            idle: Duration::from_secs(1),
            max: Duration::from_secs(10),
            retry: Duration::from_secs(10),
            close_when_settled: false,
        }
    }
}

/// The window state.
#[derive(Debug, Default)]
pub struct Batcher {
    options: BatchOptions,
    opened: Option<(Instant, Instant)>,
    seen: BTreeMap<String, Instant>,
}

impl Batcher {
    /// A closed window.
    pub fn new(options: BatchOptions) -> Self {
        Batcher {
            options,
            opened: None,
            seen: BTreeMap::new(),
        }
    }

    /// Feeds the currently pending pod UIDs and whether they are settled; true when the batch
    /// closes now and a plan should run.
    pub fn observe<'a>(
        &mut self,
        pending: impl IntoIterator<Item = &'a str>,
        settled: bool,
        now: Instant,
    ) -> bool {
        let mut next = BTreeMap::new();
        let mut fresh = false;
        for uid in pending {
            let at = match self.seen.get(uid) {
                Some(t) if now.duration_since(*t) < self.options.retry => *t,
                _ => {
                    fresh = true;
                    now
                }
            };
            next.insert(uid.to_owned(), at);
        }
        self.seen = next;
        if fresh {
            let first = self.opened.map_or(now, |(first, _)| first);
            self.opened = Some((first, now));
        }
        let settled = settled && self.options.close_when_settled;
        match self.opened {
            Some((first, last))
                if settled
                    || now.duration_since(last) >= self.options.idle
                    || now.duration_since(first) >= self.options.max =>
            {
                self.opened = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_after_idle_or_max_and_replans_stale_pods() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut b = Batcher::new(BatchOptions::default());
        // (pending, offset, fires)
        let table: &[(&[&str], Duration, bool)] = &[
            (&[], s(0), false),
            (&["a"], s(0), false),
            (&["a"], ms(500), false),
            (&["a", "b"], ms(900), false),
            (&["a", "b"], ms(1800), false),
            (&["a", "b"], ms(1900), true),
            (&["a", "b"], s(5), false),
            (&["a", "b"], ms(10_500), false), // a re-armed: new window
            (&["a", "b"], ms(11_500), false), // b re-armed: the window stays open
            (&["a", "b"], ms(12_500), true),
        ];
        for (pending, at, fires) in table {
            assert_eq!(
                b.observe(pending.iter().copied(), false, t0 + *at),
                *fires,
                "at {at:?} with {pending:?}"
            );
        }
        // A steady trickle still closes at max.
        let mut b = Batcher::new(BatchOptions::default());
        let mut fired = None;
        for i in 0..30u32 {
            let name = format!("p{i}");
            if b.observe([name.as_str()], false, t0 + ms(500) * i) {
                fired = Some(i);
                break;
            }
        }
        assert_eq!(fired, Some(20));
    }

    #[test]
    fn settled_pods_close_the_window_at_once_when_asked() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut upstream = Batcher::new(BatchOptions::default());
        assert!(!upstream.observe(["a", "b"], true, t0));
        assert!(!upstream.observe(["a", "b"], true, t0 + ms(500)));
        assert!(upstream.observe(["a", "b"], true, t0 + ms(1000)));
        let mut b = Batcher::new(BatchOptions {
            close_when_settled: true,
            ..BatchOptions::default()
        });
        assert!(!b.observe(["a"], false, t0), "more are coming");
        assert!(b.observe(["a", "b"], true, t0 + ms(100)));
        // Nothing new: nothing to close.
        assert!(!b.observe(["a", "b"], true, t0 + ms(200)));
    }
}
