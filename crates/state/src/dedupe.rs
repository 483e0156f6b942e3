//! The dedupe window both layers' Event recorders share: an Event identical to one published
//! within the window (upstream: two minutes per object, reason and message) is dropped.
//!
//! Lives here because both the node layer (`tandem-controllers`) and the pod layer
//! (`tandem-podcontrollers`) depend on this crate; it holds no cluster state. Time is passed
//! in, so the window is tested without a clock.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often expired entries are swept. Sweeping on every Event made a burst of thousands (a
/// large scale-out names every claim and pod) quadratic in the burst's size.
const SWEEP: Duration = Duration::from_secs(15);

/// Keys published within the window, and when expired ones were last dropped.
#[derive(Debug)]
pub struct DedupeWindow {
    window: Duration,
    at: BTreeMap<String, Instant>,
    swept: Instant,
}

impl DedupeWindow {
    /// An empty window of length `window`, starting at `now`.
    #[must_use]
    pub fn new(window: Duration, now: Instant) -> Self {
        DedupeWindow {
            window,
            at: BTreeMap::new(),
            swept: now,
        }
    }

    /// Records `key` at `now` and says whether it is new (not seen within the window), i.e.
    /// whether the Event should go out.
    pub fn first_within_window(&mut self, key: String, now: Instant) -> bool {
        if now.duration_since(self.swept) >= SWEEP {
            let window = self.window;
            self.at.retain(|_, t| now.duration_since(*t) < window);
            self.swept = now;
        }
        if self
            .at
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < self.window)
        {
            return false;
        }
        self.at.insert(key, now);
        true
    }

    /// Keys currently held (expired ones linger until the next sweep).
    #[must_use]
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

/// A [`DedupeWindow`] behind a lock and read with the clock: what a recorder shared by many
/// tasks holds.
#[derive(Debug)]
pub struct SharedDedupe(Mutex<DedupeWindow>);

impl SharedDedupe {
    /// An empty window of length `window`, starting now.
    #[must_use]
    pub fn new(window: Duration) -> Self {
        SharedDedupe(Mutex::new(DedupeWindow::new(window, Instant::now())))
    }

    /// Whether an Event with `key` should go out now (see
    /// [`DedupeWindow::first_within_window`]).
    pub fn first_now(&self, key: String) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first_within_window(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_repeats_only_after_the_window() {
        let window = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut seen = DedupeWindow::new(window, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(seen.first_within_window("a".into(), t0));
        assert!(!seen.first_within_window("a".into(), at(5)));
        assert!(seen.first_within_window("b".into(), at(5)));
        // Past the window: published again, and again held for a window.
        assert!(seen.first_within_window("a".into(), at(121)));
        assert!(!seen.first_within_window("a".into(), at(122)));
        // A sweep drops what expired ("a" at 121 and "b" at 5) and keeps the new key.
        assert!(seen.first_within_window("c".into(), at(246)));
        assert_eq!(seen.len(), 1);
    }
}
