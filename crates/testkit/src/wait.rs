//! Bounded waits: every wait here has a timeout; none polls forever.

use crate::error::{Error, Result};
use kube::Api;
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// First pause between two polls; doubles up to [`MAX_POLL_INTERVAL`].
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest pause between two polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Calls `check` until it returns `Some`, or fails with [`Error::Timeout`] once `timeout` has
/// passed. Polls start 50 ms apart and back off to 1 s; a `check` call that is still running at
/// the deadline is cancelled.
///
/// Use it for conditions a watch cannot express (lists, events, several objects at once).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = MIN_POLL_INTERVAL;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(_) => break,
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep((deadline - now).min(interval)).await;
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
    Err(Error::Timeout {
        what: what.to_owned(),
        after: timeout,
    })
}

/// Watches the object `name` through `api` until `condition` holds, bounded by `timeout`.
///
/// `condition` sees `None` while the object does not exist, so this also waits for creation
/// or deletion. Returns the object as it was when the condition first held (`None` if it held
/// for an absent object).
pub async fn wait_for_object<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: impl Condition<K>,
) -> Result<Option<K>>
where
    K: Clone + Debug + Send + DeserializeOwned + kube::Resource + 'static,
    K::DynamicType: Default,
{
    let what = || format!("{} {name}", K::kind(&Default::default()));
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(source)) => Err(Error::Watch {
            what: what(),
            source,
        }),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: timeout,
        }),
    }
}
