//! Push: a source that can notify wakes the pod layer at once instead of at the next poll,
//! but never more often than a bound.
//!
//! ```text
//!  source events ──► (burst) ──► rate_limited(min_interval) ──► Wake ──► pod layer polls now
//!                                 first event: at once
//!                                 events inside the window: coalesced into one wake at its end
//! ```
//!
//! A wake carries no value: the pod layer reacts by polling the trigger, so a wake can never
//! disagree with the metric the HPA reads. The bound protects the HPA, the API server and the
//! source from a hot queue producing thousands of notifications per second.

use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// ScaledObject annotation that turns push off for the object when `"false"`: it then waits
/// for its `pollingInterval`, as KEDA does.
pub const ANNOTATION: &str = "tandem.dev/push";

/// Default bound: at most one wake per second per trigger.
pub const DEFAULT_MIN_WAKE_INTERVAL: Duration = Duration::from_secs(1);

/// "Poll this trigger now."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// What the source reported, for logs and metrics, e.g. `keyspace-event`.
    pub reason: &'static str,
}

/// A stream of wake-ups; ends when the source is gone for good.
pub type WakeStream = Pin<Box<dyn Stream<Item = Wake> + Send>>;

/// The pure part of the limiter: given event and timer instants, when may a wake go out?
#[derive(Debug, Clone)]
pub struct Limiter {
    min_interval: Duration,
    last_emit: Option<Instant>,
    pending: Option<Wake>,
}

/// What the limiter says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Emit it now.
    Now(Wake),
    /// Held; a wake will go out at this instant (earlier held events are merged into it).
    At(Instant),
}

impl Limiter {
    /// At most one wake per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Limiter {
            min_interval,
            last_emit: None,
            pending: None,
        }
    }

    fn next_allowed(&self) -> Option<Instant> {
        self.last_emit.map(|t| t + self.min_interval)
    }

    /// An event arrived at `now`.
    pub fn offer(&mut self, wake: Wake, now: Instant) -> Admit {
        match self.next_allowed() {
            Some(at) if now < at => {
                self.pending = Some(wake);
                Admit::At(at)
            }
            _ => {
                self.last_emit = Some(now);
                self.pending = None;
                Admit::Now(wake)
            }
        }
    }

    /// The instant a held wake is due, if one is held.
    pub fn due(&self) -> Option<Instant> {
        self.pending.and(self.next_allowed())
    }

    /// The timer fired at `now`: releases the held wake if it is due.
    pub fn fire(&mut self, now: Instant) -> Option<Wake> {
        match (self.pending, self.next_allowed()) {
            (Some(w), Some(at)) if now >= at => {
                self.pending = None;
                self.last_emit = Some(now);
                Some(w)
            }
            _ => None,
        }
    }
}

/// Starts `source` now, on a task of the current tokio runtime, instead of when the stream
/// is first polled: a subscription (keyspace channel, gRPC stream, baseline probe) must be in
/// place the moment [`crate::Scaler::watch`] returns, or an event that happens before the
/// caller's first poll would be missed. Events the caller has not taken yet are coalesced
/// (a wake carries no data). The task ends when the returned stream is dropped. Outside a
/// runtime the stream stays lazy.
pub fn eager<S>(source: S) -> WakeStream
where
    S: Stream<Item = Wake> + Send + 'static,
{
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return Box::pin(source);
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Wake>(1);
    rt.spawn(async move {
        let mut source = Box::pin(source);
        loop {
            tokio::select! {
                () = tx.closed() => return,
                item = source.next() => match item {
                    // Full means a wake is already waiting: this one merges into it.
                    Some(w) => if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(w) {
                        return;
                    },
                    None => return,
                },
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Wraps `source` so that at most one wake per `min_interval` comes out; a burst yields one
/// wake at once and one more at the end of the window. The source is started at once
/// ([`eager`]).
pub fn rate_limited<S>(source: S, min_interval: Duration) -> WakeStream
where
    S: Stream<Item = Wake> + Send + 'static,
{
    struct St {
        source: WakeStream,
        limiter: Limiter,
        ended: bool,
    }
    let init = St {
        source: eager(source),
        limiter: Limiter::new(min_interval),
        ended: false,
    };
    Box::pin(futures::stream::unfold(init, |mut st| async move {
        loop {
            if st.ended {
                // Flush a held wake once the window closes, then end.
                let at = st.limiter.due()?;
                tokio::time::sleep_until(at).await;
                let w = st.limiter.fire(at.max(Instant::now()))?;
                return Some((w, st));
            }
            let due = st.limiter.due();
            tokio::select! {
                item = st.source.next() => match item {
                    None => st.ended = true,
                    Some(w) => if let Admit::Now(w) = st.limiter.offer(w, Instant::now()) {
                        return Some((w, st));
                    },
                },
                () = sleep_until_opt(due) => {
                    if let Some(w) = st.limiter.fire(Instant::now()) {
                        return Some((w, st));
                    }
                }
            }
        }
    }))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A probe the poll watcher calls: the source's current value.
pub type Probe =
    std::sync::Arc<dyn Fn() -> futures::future::BoxFuture<'static, Option<f64>> + Send + Sync>;

/// For sources without notifications: probes every `interval` (much faster than the pod
/// layer's poll, and cheap: one small request) and wakes when the value grows or becomes
/// active. The first probe is the baseline and wakes nothing; failed probes are skipped
/// (the pod layer's poll reports errors).
pub fn poll_changes(
    interval: Duration,
    activation: f64,
    probe: Probe,
) -> impl Stream<Item = Wake> + Send {
    futures::stream::unfold((probe, None::<f64>), move |(probe, mut prev)| async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(v) = probe().await else { continue };
            let woke = match prev {
                Some(p) => v > p || (p <= activation && v > activation),
                None => false,
            };
            prev = Some(v);
            if woke {
                return Some((
                    Wake {
                        reason: "value-changed",
                    },
                    (probe, prev),
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Wake = Wake { reason: "test" };

    #[test]
    fn limiter_emits_first_holds_the_rest_and_releases_at_window_end() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(1));
        assert_eq!(l.offer(W, t0), Admit::Now(W));
        let at = t0 + Duration::from_secs(1);
        assert_eq!(l.offer(W, t0 + Duration::from_millis(10)), Admit::At(at));
        assert_eq!(l.offer(W, t0 + Duration::from_millis(20)), Admit::At(at));
        assert_eq!(l.fire(t0 + Duration::from_millis(500)), None);
        assert_eq!(l.fire(at), Some(W));
        assert_eq!(l.due(), None);
        // The next window starts at the release.
        assert_eq!(
            l.offer(W, at + Duration::from_millis(1)),
            Admit::At(at + Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_wakes_at_most_once_per_interval() {
        let (tx, rx) = tokio::sync::mpsc::channel(2000);
        let mut wakes = rate_limited(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Duration::from_secs(1),
        );
        let start = Instant::now();
        // 1000 events spread over 2.5 s.
        tokio::spawn(async move {
            for _ in 0..1000 {
                let _ = tx.send(W).await;
                tokio::time::sleep(Duration::from_micros(2500)).await;
            }
        });
        let mut times = Vec::new();
        while let Some(_w) = wakes.next().await {
            times.push(Instant::now() - start);
        }
        // At once, then at 1 s, 2 s and the flush at 3 s: four wakes for a thousand events.
        assert_eq!(times.len(), 4, "{times:?}");
        assert_eq!(times[0], Duration::ZERO, "the first event wakes at once");
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(1), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_event_is_not_delayed() {
        let mut wakes = rate_limited(futures::stream::iter([W]), Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(wakes.next().await, Some(W));
        assert_eq!(Instant::now(), start);
        assert_eq!(wakes.next().await, None);
    }
}
