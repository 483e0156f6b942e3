//! Creating a NodeClaim exactly once through an API server that may fail mid-request.
//!
//! A create whose answer is lost (the API server killed after etcd committed it, a `504`
//! while etcd is slow, a reset connection) leaves the caller not knowing whether the claim
//! exists. With `generateName`, as upstream creates claims, the only retry is a second claim
//! under a new name: the pods get two nodes. So the name is chosen here, before the first
//! request, the way the API server would (`<base><5 random characters>`), and an uncertain
//! create is sent again with the same name until the server answers: created, or
//! `AlreadyExists`, which after an uncertain attempt means the lost one landed.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use tandem_api::karpenter::NodeClaim;

/// How long an uncertain create is retried before the caller is told it may exist.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Why a claim was not (known to be) created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The API server refused it: it does not exist.
    #[error("refused: {0}")]
    Refused(#[source] kube::Error),
    /// No answer within the patience: claim `name` may exist, and if so shows in the watch.
    #[error("no answer for nodeclaim {name} within {PATIENCE:?} (it may exist): {source}")]
    Uncertain {
        /// The name every attempt used.
        name: String,
        /// The last attempt's error.
        #[source]
        source: kube::Error,
    },
}

/// The characters the API server draws generated names from (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Generated names keep 63 characters at most: the base is cut to leave room for the suffix.
const MAX_BASE: usize = 58;

/// `base` (cut to 58 characters, leaving a name of 63 at most) and five random characters, as
/// `generateName` would.
pub fn generated_name(base: &str) -> String {
    let mut name: String = base.chars().take(MAX_BASE).collect();
    // A fresh SipHash key per call: enough randomness for a name suffix, no RNG dependency.
    let mut bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    for _ in 0..5 {
        name.push(char::from(
            ALPHABET[(bits % ALPHABET.len() as u64) as usize],
        ));
        bits /= ALPHABET.len() as u64;
    }
    name
}

/// Whether the request may have reached etcd although it failed: a transport error or a
/// server-side failure. A `4xx` (other than `429`) is a definite no.
fn uncertain(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        _ => true,
    }
}

/// Creates `claim` (whose `generateName` is the name's base) under a name chosen here, and
/// retries with that name while the outcome is uncertain; returns the claim as stored.
pub async fn create_claim(
    api: &Api<NodeClaim>,
    mut claim: NodeClaim,
) -> Result<NodeClaim, CreateError> {
    let base = claim.metadata.generate_name.take().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut name = generated_name(&base);
    // Whether an earlier request for `name` may have been stored.
    let mut maybe_stored = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        claim.metadata.name = Some(name.clone());
        let e = match api.create(&PostParams::default(), &claim).await {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        match &e {
            kube::Error::Api(s) if s.code == 409 && maybe_stored => {
                tracing::info!(nodeclaim = %name, "an uncertain nodeclaim create had landed");
                return Ok(api.get(&name).await.unwrap_or(claim));
            }
            // Another claim has that name (1 in 27⁵ per name): draw another.
            kube::Error::Api(s) if s.code == 409 => name = generated_name(&base),
            _ if !uncertain(&e) && !maybe_stored => return Err(CreateError::Refused(e)),
            _ if !uncertain(&e) || tokio::time::Instant::now() >= deadline => {
                return Err(CreateError::Uncertain { name, source: e });
            }
            _ => {
                tracing::debug!(error = %e, nodeclaim = %name, "nodeclaim create uncertain; sending it again");
                maybe_stored = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_the_api_servers() {
        let a = generated_name("default-");
        assert_eq!(a.len(), "default-".len() + 5);
        assert!(a.starts_with("default-"));
        assert!(a[8..].bytes().all(|b| ALPHABET.contains(&b)), "{a}");
        let long = generated_name(&"p".repeat(80));
        assert_eq!(long.len(), 63);
        let names: std::collections::BTreeSet<String> =
            (0..100).map(|_| generated_name("x-")).collect();
        assert!(names.len() > 95, "names repeat: {names:?}");
    }

    #[test]
    fn only_definite_refusals_are_certain() {
        let api =
            |code| kube::Error::Api(kube::core::Status::failure("", "").with_code(code).boxed());
        assert!(!uncertain(&api(422)));
        assert!(!uncertain(&api(403)));
        assert!(uncertain(&api(429)));
        assert!(uncertain(&api(500)));
        assert!(uncertain(&api(504)));
        assert!(uncertain(&kube::Error::LinesCodecMaxLineLengthExceeded));
    }
}
