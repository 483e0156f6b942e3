//! Fencing: a leader that may have lost its Lease sends no more writes.
//!
//! Leader election alone leaves a window: a leader paused (SIGSTOP, a stalled VM, a long GC in
//! other runtimes) past the lease duration resumes with its controllers mid-pass, and they can
//! write before its elector's next round notices that another replica leads now. Upstream
//! (client-go) has that window. Here the elector records, after each renewal, until when this
//! replica may still act (the start of the renewing round plus the renew deadline, which is
//! shorter than the lease duration others wait for); the client's layer
//! ([`ApiClientLayer::with_fence`](crate::api_client::ApiClientLayer::with_fence)) refuses every
//! write past that instant. The monotonic clock keeps running while a process is stopped, so
//! the first write after a pause is refused, not sent.
//!
//! A replica that never led is not fenced (followers label their own pod); writes to the
//! election's own Lease are never fenced (the elector must be able to renew). Other Leases are:
//! the kwok provider's kubelets renew node Leases through a fenced client, and a resumed
//! leader's kubelet renewing a node Lease its successor now keeps is a write in another tenure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Until when this replica may write; shared by the elector and the client layer.
#[derive(Debug)]
pub struct Fence {
    epoch: Instant,
    armed: AtomicBool,
    /// Milliseconds after `epoch`.
    valid_until_ms: AtomicU64,
    /// The election Lease's collection path (its create) and its own path (its updates).
    leases: String,
    lease: String,
}

impl Fence {
    /// A fence for the election on Lease `namespace/name`, allowing everything until the first
    /// renewal arms it.
    #[must_use]
    pub fn new(namespace: &str, name: &str) -> Self {
        let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases");
        Fence {
            epoch: Instant::now(),
            armed: AtomicBool::new(false),
            valid_until_ms: AtomicU64::new(0),
            lease: format!("{leases}/{name}"),
            leases,
        }
    }

    /// Whether a request to `path` is the elector's own (never fenced).
    #[must_use]
    pub fn is_election_lease(&self, path: &str) -> bool {
        path == self.lease || path == self.leases
    }

    /// The round that started at `started` renewed the lease: writes are allowed until
    /// `started + renew_deadline`.
    pub fn renewed(&self, started: Instant, renew_deadline: Duration) {
        let until = started.saturating_duration_since(self.epoch) + renew_deadline;
        let ms = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.valid_until_ms.fetch_max(ms, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Leadership is gone: no more writes, whatever the last renewal allowed.
    pub fn revoke(&self) {
        self.armed.store(true, Ordering::SeqCst);
        self.valid_until_ms.store(0, Ordering::SeqCst);
    }

    /// Whether a write may go out at `now`.
    #[must_use]
    pub fn allows_writes(&self, now: Instant) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return true;
        }
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        ms < self.valid_until_ms.load(Ordering::SeqCst)
    }
}

/// The error a fenced write fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "write refused: this replica's leadership lapsed (no lease renewal within the renew deadline)"
)]
pub struct Fenced;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_stop_at_the_renew_deadline_and_on_revocation() {
        let fence = Fence::new("ns", "tandem");
        let deadline = Duration::from_secs(10);
        assert!(fence.allows_writes(Instant::now()), "never led: not fenced");
        let round = Instant::now();
        fence.renewed(round, deadline);
        assert!(fence.allows_writes(round + Duration::from_secs(9)));
        // Paused past the deadline: refused, before any round could notice.
        assert!(!fence.allows_writes(round + Duration::from_secs(10)));
        // A later renewal extends; an older one never shortens.
        fence.renewed(round + Duration::from_secs(8), deadline);
        fence.renewed(round, deadline);
        assert!(fence.allows_writes(round + Duration::from_secs(17)));
        fence.revoke();
        assert!(!fence.allows_writes(round + Duration::from_secs(9)));
    }
}
