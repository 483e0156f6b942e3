//! The triggers against real servers on loopback, started by the tests through
//! `tandem_testkit::services`. Each server is tested for the value, the activation, a wrong
//! credential (a clear error naming the trigger, with no secret in it) and a source that is
//! down. A missing server binary fails the test with "install … with hack/services.sh".

mod external;
mod kafka;
mod metrics_api;
mod postgresql;
mod prometheus;
mod rabbitmq;
mod redis;
mod sqs;

use std::collections::BTreeMap;
use std::time::Duration;
use tandem_scalers::auth::ResolvedAuth;
use tandem_scalers::{Measurement, Scaler, ScalerError, Secret, TriggerParams, WakeStream};

/// Trigger parameters from metadata pairs and authentication pairs.
pub fn params(kind: &str, metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerParams {
    let md: BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut resolved = ResolvedAuth::default();
    for (k, v) in auth {
        resolved.params.insert((*k).to_owned(), Secret::from(*v));
    }
    TriggerParams::new(kind, 0, &md)
        .with_owner("shop", "orders")
        .with_auth(resolved)
}

/// Builds the scaler, panicking with the error text.
pub async fn build(p: TriggerParams) -> Box<dyn Scaler> {
    match tandem_scalers::build(p).await {
        Ok(s) => s,
        Err(e) => panic!("build failed: {e}"),
    }
}

/// One measurement of the scaler's first metric, now.
pub async fn measure(s: &dyn Scaler) -> Result<Measurement, ScalerError> {
    let specs = s.metric_specs().await?;
    let name = specs
        .first()
        .map(|m| m.name().to_owned())
        .unwrap_or_default();
    s.measure(&name, jiff::Timestamp::now()).await
}

/// The value of the first metric, panicking on error.
pub async fn value(s: &dyn Scaler) -> (f64, bool) {
    match measure(s).await {
        Ok(m) => (m.values.first().map_or(f64::NAN, |v| v.value), m.active),
        Err(e) => panic!("measure failed: {e}"),
    }
}

/// Polls until the first metric equals `want` (bounded).
pub async fn value_eventually(s: &dyn Scaler, want: f64, timeout: Duration) -> (f64, bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = measure(s).await;
        if let Ok(m) = &got
            && m.values.first().is_some_and(|v| v.value == want)
        {
            return (want, m.active);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "value never became {want}: last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asserts that `err` has `category`, names the trigger, and carries none of `secrets`.
pub fn assert_clean(err: &ScalerError, category: &str, trigger: &str, secrets: &[&str]) {
    let text = format!("{err} || {err:?}");
    assert_eq!(err.category(), category, "{text}");
    assert!(
        text.contains(trigger),
        "error does not name {trigger:?}: {text}"
    );
    for s in secrets {
        assert!(!text.contains(s), "error leaks a secret: {text}");
    }
    eprintln!("  error as reported: {err}");
}

/// Waits (bounded) for the next wake from a push watch; returns how long it took.
pub async fn next_wake(w: &mut WakeStream, timeout: Duration) -> Duration {
    use futures::StreamExt as _;
    let start = tokio::time::Instant::now();
    match tokio::time::timeout(timeout, w.next()).await {
        Ok(Some(_)) => start.elapsed(),
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no wake within {timeout:?}"),
    }
}

/// An address nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a port")
}

/// Unwraps a testkit result with its full message (servers missing → a clear failure).
pub fn started<T>(r: tandem_testkit::services::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
